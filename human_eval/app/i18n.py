"""String catalogues of the rater pages: English, Russian (the paper's app), Kazakh.

Each catalogue is a flat dict ``key -> text``; ``{name}`` placeholders are filled by :func:`t`. The admin page is
for the study team and stays in English. A test checks that every key exists in every catalogue with the same
placeholders.
"""

from __future__ import annotations

import string

from human_eval.app.catalogues import EN, KK, RU

__all__ = ["CATALOGUES", "LANGUAGES", "placeholders", "t"]

CATALOGUES: dict[str, dict[str, str]] = {"en": EN, "ru": RU, "kk": KK}
#: Language code -> its own name (the language picker).
LANGUAGES = {"en": "English", "ru": "Русский", "kk": "Қазақша"}
DEFAULT = "en"


def t(lang: str | None, key: str, **values: object) -> str:
    """The text of ``key`` in ``lang`` (English when the language or, defensively, the key is missing)."""
    cat = CATALOGUES.get(lang or DEFAULT, EN)
    text = cat.get(key) or EN[key]
    return text.format(**values) if values else text


def placeholders(text: str) -> set[str]:
    """The ``{name}`` fields of a catalogue text."""
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}
