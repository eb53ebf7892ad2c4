"""The Streamlit page in-process (AppTest): the admin set-up and a complete rater session."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from harness.store import Participant, Rating, RatingRevision, Store
from human_eval.app import APP_PATH
from human_eval.app import service as sv
from human_eval.app.i18n import t


def _app(monkeypatch, url: str, page: str | None = None) -> AppTest:
    monkeypatch.setenv("ECHOBENCH_DB", url)
    at = AppTest.from_file(str(APP_PATH), default_timeout=60)
    if page:
        at.query_params["page"] = page
    at.run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    return at


def _submit(at: AppTest, index: int = 0) -> AppTest:
    at.form_submit_button[index].click().run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    return at


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'app.db'}"


def test_admin_creates_study_participants_and_exports(monkeypatch, url, sources):
    monkeypatch.setenv("ECHOBENCH_ADMIN_PASSWORD", "s3cret")
    at = _app(monkeypatch, url, page="admin")
    at.text_input(key="adm_password").set_value("wrong")
    _submit(at)
    assert any("Wrong password" in e.value for e in at.error)
    at.text_input(key="adm_password").set_value("s3cret")
    _submit(at)
    assert [tab.label for tab in at.tabs] == ["Create study", "Participants", "Progress", "Export"]
    lines = "\n".join(f"{s}={p}" for s, p in sources.items())
    at.text_area(key="adm_extra").set_value(lines)
    at.text_input(key="adm_name").set_value("pilot")
    at.number_input(key="adm_pool").set_value(20)  # each folder has 12 images: a clear error, nothing created
    at.number_input(key="adm_per").set_value(2)
    _submit(at)
    err = " ".join(e.value for e in at.error)
    assert "has 12 images but the design needs a pool of 20" in err and "'cut'" in err
    assert sv.app_studies(Store(url)) == []
    at.number_input(key="adm_pool").set_value(8)
    _submit(at)
    assert any("Study 'pilot' created" in s.value for s in at.success)
    at.number_input(key="adm_n").set_value(3)
    at.form_submit_button[1].click().run()  # the participants form
    tokens = at.session_state["adm_tokens"]
    assert list(tokens["participant_id"]) == ["P001", "P002", "P003"]
    store = Store(url)
    with store.session() as s:  # only hashes are stored
        hashes = {p.token_hash for p in s.query(Participant)}
    assert hashes == {sv.hash_token(tok) for tok in tokens["token"]} and not set(tokens["token"]) & hashes
    progress = next(d.value for d in at.dataframe if "stage" in d.value.columns)
    assert list(progress["stage"]) == ["invited"] * 3 and list(progress["planned"]) == [8] * 3
    assert [b.label for b in at.get("download_button")][-4:] == ["ratings.csv", "participants.csv", "images.csv",
                                                                  "rating_history.csv"]


def test_rater_session_start_to_finish(monkeypatch, url, sources):
    store = Store(url)
    sv.create_study(store, "s", sources, pool_per_source=4, per_participant=1, seed=3)
    (_, token), _ = sv.add_participants(store, "s", 2, language="en")
    at = _app(monkeypatch, url)
    at.text_input(key="token").set_value("not-a-token")
    _submit(at)
    assert at.error[0].value == t("en", "err_token_invalid")
    at.text_input(key="token").set_value(token)
    _submit(at)
    assert at.header[0].value == t("en", "consent_title")
    _submit(at)  # consent not ticked
    assert at.warning[0].value == t("en", "required")
    at.checkbox(key="consent_agree").check()
    _submit(at)
    assert at.header[0].value == t("en", "pre_title")
    for k, v in {"pre_age": 41, "pre_years": 12.0, "pre_weekly": 30}.items():
        at.number_input(key=k).set_value(v)
    at.selectbox(key="pre_sex").set_value("female")
    at.selectbox(key="pre_specialty").set_value("cardiac_surgery")
    at.selectbox(key="pre_language").set_value("ru")
    _submit(at)
    assert at.header[0].value == t("en", "rating_title")
    rater = sv.sign_in(store, token)
    for i, value in enumerate((2, 5, 3)):
        assert t("en", "progress", i=i + 1, n=4) in at.get("progress")[0].proto.text
        assert len(at.image) == 1
        _submit(at)  # no rating chosen: a warning, nothing stored
        assert at.warning[0].value == t("en", "choose_rating")
        at.radio[0].set_value(value)
        at.checkbox[0].check()  # walls not visible
        at.text_area[0].set_value(f"note {i}")
        _submit(at)
    # go back to image 2 and change the answer: recorded as an update (revision 2)
    at.button(key="back").click().run()
    at.button(key="back").click().run()
    assert at.info[0].value == t("en", "editing", i=2)
    assert at.radio[0].value == 5
    at.radio[0].set_value(4)
    _submit(at)
    assert at.success[0].value == t("en", "saved_update")
    assert at.info[0].value == t("en", "editing", i=3)  # review continues forward
    _submit(at)  # unchanged answer to 3 -> back to the first unrated image
    assert t("en", "progress", i=4, n=4) in at.get("progress")[0].proto.text
    at.radio[0].set_value(1)
    _submit(at)
    assert at.header[0].value == t("en", "post_title")
    at.text_area(key="post_cues").set_value("speckle")
    _submit(at)
    assert at.success[0].value == t("en", "done_title")
    with store.session() as s:
        rows = {r.position: r for r in s.query(Rating).filter(Rating.participant_pk == rater.pk)}
        p = s.get(Participant, rater.pk)
    assert {k: (r.rating, r.revision) for k, r in rows.items()} == {1: (2, 1), 2: (4, 2), 3: (3, 1), 4: (1, 1)}
    with store.session() as s:  # the first answer to image 2 (5) is kept beside the changed one (4)
        hist = [(h.revision, h.rating) for h in s.query(RatingRevision).filter(RatingRevision.rating_id == rows[2].id)
                .order_by(RatingRevision.revision)]
    assert hist == [(1, 5), (2, 4)]
    assert rows[1].walls_not_visible and rows[1].comment == "note 0" and not rows[4].walls_not_visible
    assert (p.age, p.sex, p.specialty, p.experience_years, p.weekly_readings, p.language) == (
        41, "female", "cardiac_surgery", 12.0, 30, "ru")
    assert p.answers["post"]["cues"] == "speckle" and p.finished_at is not None
    # the token is now used; the other rater's session is untouched
    at2 = _app(monkeypatch, url)
    at2.text_input(key="token").set_value(token)
    _submit(at2)
    assert at2.error[0].value == t("en", "err_token_used")
    assert sv.progress(store, "s").set_index("participant_id").loc["P002", "rated"] == 0


def test_russian_ui_and_db_unreachable_message(monkeypatch, url, sources):
    store = Store(url)
    sv.create_study(store, "s", sources, pool_per_source=4, per_participant=1, seed=3)
    [(_, token)] = sv.add_participants(store, "s", 1, language="ru")
    rater = sv.sign_in(store, token)
    sv.save_answers(store, rater, "consent", {"given": True})
    sv.save_answers(store, rater, "pre", {"age": 30})
    at = _app(monkeypatch, url)
    at.text_input(key="token").set_value(token)
    _submit(at)  # the participant's language (ru) becomes the page language
    assert at.header[0].value == t("ru", "rating_title") == "Оцените качество изображения"
    at.radio[0].set_value(4)
    _submit(at)
    assert sv.progress(store, "s")["rated"].tolist() == [1]

    def down(*args, **kwargs):
        raise sv.StoreError("the study database is unreachable while trying to save your rating (refused)")

    monkeypatch.setattr(sv, "submit_rating", down)
    at.radio[0].set_value(2)
    _submit(at)
    assert at.error[0].value == t("ru", "db_unreachable")
    assert sv.progress(store, "s")["rated"].tolist() == [1]  # the earlier answer is kept
