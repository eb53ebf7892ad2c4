"""Every key of the rater pages exists in every catalogue (en/ru/kk) with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from human_eval.app.catalogues import EN
from human_eval.app.i18n import CATALOGUES, LANGUAGES, placeholders, t
from human_eval.schema import FLAG_COLUMNS


@pytest.mark.parametrize("lang", sorted(CATALOGUES))
def test_catalogue_complete(lang):
    cat = CATALOGUES[lang]
    assert set(cat) == set(EN), (set(EN) - set(cat), set(cat) - set(EN))
    for key, text in cat.items():
        assert text.strip(), f"{lang}:{key} is empty"
        assert placeholders(text) == placeholders(EN[key]), f"{lang}:{key}"


def test_languages_and_keys_used_by_the_app_exist():
    assert set(LANGUAGES) == set(CATALOGUES) == {"en", "ru", "kk"}
    source = (Path(__file__).resolve().parents[3] / "human_eval" / "app" / "app.py").read_text(encoding="utf-8")
    used = set(re.findall(r"""t\(lang, ["']([a-z_0-9]+)["']""", source))
    assert used and used <= set(EN), used - set(EN)
    dynamic = ({f"flag_{f}" for f in FLAG_COLUMNS} | {f"likert_{i}" for i in range(1, 6)}
               | {"sex_female", "sex_male", "lang_ru", "lang_kk", "lang_en"}
               | {f"spec_{s}" for s in ("cardiology", "cardiac_surgery", "sonography", "radiology")})
    assert dynamic <= set(EN)


def test_t_formats_and_falls_back_to_english():
    assert t("ru", "progress", i=3, n=40) == "Изображение 3 из 40"
    assert t("kk", "progress", i=3, n=40) == "40 кескіннің 3-сі"
    assert t("xx", "submit") == EN["submit"]
