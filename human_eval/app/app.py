"""The clinician rating app (Streamlit): a rater flow and a password-protected study-admin page.

Run it with ``harness human app [--db URL] [--port P]`` (or ``streamlit run human_eval/app/app.py -- --db URL``).
Without ``--db`` it uses ``ECHOBENCH_DB`` or ``sqlite:///echobench.db``. Raters open ``http://HOST:PORT/``; the
study team opens ``http://HOST:PORT/?page=admin`` (raters never see a link to it). The admin password comes from
``ECHOBENCH_ADMIN_PASSWORD`` or ``admin_password`` in Streamlit's secrets. Every read and write goes through
:mod:`human_eval.app.service`; this script only renders. Rater texts are in :mod:`human_eval.app.catalogues`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from harness.csvsafe import csv_bytes
from harness.errors import EchoBenchError, StoreError
from harness.store import Store, resolve_url
from harness.webapp import db_arg
from human_eval.app import service as sv
from human_eval.app.i18n import LANGUAGES, t
from human_eval.schema import FLAG_COLUMNS, canonical_source

SPECIALTIES = ("cardiology", "cardiac_surgery", "sonography", "radiology", "other")
SEXES = ("female", "male", "prefer_not")
WORK_LANGUAGES = ("ru", "kk", "en", "other")


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Store:
    return Store(url)


def _client() -> str:
    """The browser session (for sign-in back-off and the log): Streamlit's session id, and the client's address
    when a reverse proxy passes X-Forwarded-For."""
    ctx = getattr(st, "context", None)
    headers = getattr(ctx, "headers", None) or {}
    fwd = headers.get("X-Forwarded-For", "") if hasattr(headers, "get") else ""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        sid = get_script_run_ctx().session_id
    except Exception:  # noqa: BLE001 (outside a Streamlit run: tests)
        sid = "-"
    return f"session {sid}" + (f" from {fwd.split(',')[0].strip()}" if fwd else "")


def _admin_password() -> str | None:
    env = os.environ.get("ECHOBENCH_ADMIN_PASSWORD")
    if env:
        return env
    try:
        return st.secrets.get("admin_password")
    except FileNotFoundError:  # no secrets.toml (StreamlitSecretNotFoundError subclasses it)
        return None


# ------------------------------------------------------------------------------------------------ rater
def _sign_in(store: Store, lang: str) -> None:
    st.title(t(lang, "app_title"))
    with st.form("sign_in"):
        token = st.text_input(t(lang, "token_prompt"), type="password", key="token")
        if st.form_submit_button(t(lang, "sign_in"), type="primary"):
            rater = sv.sign_in(store, token, throttle=sv.TOKEN_THROTTLE, client=_client())
            st.session_state["rater"] = rater
            if rater.language in LANGUAGES:
                st.session_state["_lang_next"] = rater.language
            st.rerun()


def _consent(store: Store, rater: sv.Rater, lang: str) -> None:
    st.header(t(lang, "consent_title"))
    st.write(t(lang, "consent_text"))
    with st.form("consent"):
        agree = st.checkbox(t(lang, "consent_agree"), key="consent_agree")
        if st.form_submit_button(t(lang, "continue"), type="primary"):
            if not agree:
                st.warning(t(lang, "required"))
                return
            sv.save_answers(store, rater, "consent", {"given": True, "ui_language": lang})
            st.rerun()


def _pre(store: Store, rater: sv.Rater, lang: str) -> None:
    st.header(t(lang, "pre_title"))
    with st.form("pre"):
        age = st.number_input(t(lang, "age"), min_value=18, max_value=100, value=None, step=1, key="pre_age")
        sex = st.selectbox(t(lang, "sex"), SEXES, index=None, key="pre_sex",
                           format_func=lambda v: t(lang, "prefer_not" if v == "prefer_not" else f"sex_{v}"))
        spec = st.selectbox(t(lang, "specialty"), SPECIALTIES, index=None, key="pre_specialty",
                            format_func=lambda v: t(lang, "other" if v == "other" else f"spec_{v}"))
        years = st.number_input(t(lang, "experience_years"), min_value=0.0, max_value=70.0, value=None, step=1.0,
                                key="pre_years")
        weekly = st.number_input(t(lang, "weekly_readings"), min_value=0, max_value=1000, value=None, step=1,
                                 key="pre_weekly")
        work = st.selectbox(t(lang, "work_language"), WORK_LANGUAGES, index=None, key="pre_language",
                            format_func=lambda v: t(lang, "other" if v == "other" else f"lang_{v}"))
        if st.form_submit_button(t(lang, "continue"), type="primary"):
            values = {"age": age, "sex": sex, "specialty": spec, "experience_years": years,
                      "weekly_readings": weekly, "language": work}
            if any(v is None for v in values.values()):
                st.warning(t(lang, "required"))
                return
            sv.save_answers(store, rater, "pre", values)
            st.rerun()


def _rating(store: Store, rater: sv.Rater, lang: str) -> None:
    review = st.session_state.get("review")
    current = sv.next_item(store, rater)
    item = sv.item_at(store, rater, review) if review else current
    if item is None:
        st.session_state.pop("review", None)
        st.rerun()
    st.header(t(lang, "rating_title"))
    st.progress(min(1.0, (item.position - 1) / item.total), text=t(lang, "progress", i=item.position, n=item.total))
    if flash := st.session_state.pop("flash", None):
        st.success(t(lang, flash))
    if review:
        st.info(t(lang, "editing", i=item.position))
    if item.path and Path(item.path).is_file():
        st.image(item.path, width=480)
    else:
        st.warning(t(lang, "image_missing"))
    lo, hi = rater.scale
    options = list(range(lo, hi + 1))
    anchors = (lo, hi) == (1, 5)
    with st.form(f"rate_{item.image_pk}"):
        value = st.radio(t(lang, "likert_question"), options, key=f"rating_{item.image_pk}",
                         index=options.index(item.rating) if item.rating in options else None,
                         format_func=lambda v: t(lang, f"likert_{v}") if anchors else str(v))
        st.markdown(f"**{t(lang, 'flags_title')}**")
        flags = {f: st.checkbox(t(lang, f"flag_{f}"), value=bool(item.flags.get(f, False)),
                                key=f"{f}_{item.image_pk}") for f in FLAG_COLUMNS}
        comment = st.text_area(t(lang, "comment"), value=item.comment or "", key=f"comment_{item.image_pk}")
        submitted = st.form_submit_button(t(lang, "submit"), type="primary")
    if submitted:
        if value is None:
            st.warning(t(lang, "choose_rating"))
        else:
            result = sv.submit_rating(store, rater, item.image_id, int(value), flags, comment)
            if result.status == "updated":
                st.session_state["flash"] = "saved_update"
            if review:
                nxt = review + 1
                st.session_state["review"] = nxt if current is not None and nxt < current.position else None
            st.rerun()
    cols = st.columns(2)
    if item.position > 1 and cols[0].button(t(lang, "back"), key="back"):
        st.session_state["review"] = item.position - 1
        st.rerun()
    if review and cols[1].button(t(lang, "back_to_current"), key="to_current"):
        st.session_state["review"] = None
        st.rerun()


def _post(store: Store, rater: sv.Rater, lang: str) -> None:
    st.header(t(lang, "post_title"))
    with st.form("post"):
        difficulty = st.select_slider(t(lang, "post_difficulty"), options=[1, 2, 3, 4, 5], value=3, key="post_difficulty")
        cues = st.text_area(t(lang, "post_cues"), key="post_cues")
        comments = st.text_area(t(lang, "post_comments"), key="post_comments")
        if st.form_submit_button(t(lang, "finish"), type="primary"):
            sv.save_answers(store, rater, "post", {"difficulty": difficulty, "cues": cues, "comments": comments})
            st.rerun()


def rater_page(store: Store, lang: str) -> None:
    rater: sv.Rater | None = st.session_state.get("rater")
    if rater is None:
        _sign_in(store, lang)
        return
    st.sidebar.caption(t(lang, "signed_in_as", pid=rater.participant_id))
    if st.sidebar.button(t(lang, "sign_out"), key="sign_out"):
        for k in ("rater", "review", "flash"):
            st.session_state.pop(k, None)
        st.rerun()
    stage = sv.stage(store, rater)
    if stage == "done":
        st.success(t(lang, "done_title"))
        return
    {"consent": _consent, "pre": _pre, "rating": _rating, "post": _post}[stage](store, rater, lang)


# ------------------------------------------------------------------------------------------------ admin
def _create_study(store: Store) -> None:
    sets = sv.registered_image_sets(store)
    labels = {f"{s['generator']} · n={s['n']} · {s['path']}": s for s in sets}
    chosen = st.multiselect("Registered image sets", list(labels), key="adm_sets",
                            help="Image sets written by `harness run` (newest first).")
    sources: dict[str, str] = {}
    for label in chosen:
        s = labels[label]
        name = st.text_input(f"Source name for {s['generator']}", value=canonical_source(s["generator"]),
                             key=f"adm_src_{s['run_id']}")
        sources[name] = s["path"]
    extra = st.text_area("Other image folders, one per line as `source=path`", key="adm_extra",
                         help="An image set (with manifest.jsonl) or any folder of PNG/JPEG images.")
    with st.form("adm_create"):
        name = st.text_input("Study name", key="adm_name")
        c = st.columns(3)
        pool = c[0].number_input("Pool per source", min_value=1, value=400, step=1, key="adm_pool")
        per = c[1].number_input("Images per source per participant", min_value=1, value=10, step=1, key="adm_per")
        seed = c[2].number_input("Seed", min_value=0, value=0, step=1, key="adm_seed")
        if not st.form_submit_button("Create study", type="primary"):
            return
    for line in (extra or "").splitlines():
        if line.strip():
            src, sep, path = line.partition("=")
            if not sep or not src.strip() or not path.strip():
                st.error(f"cannot read {line.strip()!r}: write source=path")
                return
            sources[src.strip()] = path.strip()
    try:
        sv.create_study(store, name, sources, pool_per_source=int(pool), per_participant=int(per), seed=int(seed))
    except StoreError:
        raise
    except EchoBenchError as exc:
        st.error(str(exc))
        return
    st.success(f"Study {name.strip()!r} created with sources {', '.join(sorted(map(canonical_source, sources)))}.")


def _participants(store: Store, study: str) -> None:
    with st.form("adm_participants"):
        c = st.columns(3)
        n = c[0].number_input("New participants", min_value=1, max_value=500, value=1, step=1, key="adm_n")
        prefix = c[1].text_input("Id prefix", value="P", key="adm_prefix")
        lang = c[2].selectbox("Language", list(LANGUAGES), format_func=LANGUAGES.get, index=1, key="adm_lang")
        if st.form_submit_button("Create participants", type="primary"):
            try:
                pairs = sv.add_participants(store, study, int(n), prefix=prefix.strip() or "P", language=lang)
            except StoreError:
                raise
            except EchoBenchError as exc:
                st.error(str(exc))
                return
            st.session_state["adm_tokens"] = pd.DataFrame(pairs, columns=["participant_id", "token"])
    tokens = st.session_state.get("adm_tokens")
    if tokens is not None:
        st.warning("Tokens are shown only now (the database keeps only their hash): download or copy them.")
        st.dataframe(tokens, hide_index=True)
        st.download_button("invitations.csv", csv_bytes(tokens), file_name="invitations.csv",
                           mime="text/csv", on_click="ignore", key="adm_tokens_csv")


def _export(store: Store, study: str) -> None:
    ratings, parts, images = sv.export_ratings(store, study)
    history = sv.rating_history(store, study)
    st.caption(f"{len(ratings)} ratings, {len(parts)} participants, {len(history) - len(ratings)} changed answers "
               f"kept in rating_history.csv. The same files: `harness human export --study {study} --out DIR`.")
    c = st.columns(4)
    files = (("ratings.csv", ratings), ("participants.csv", parts), ("images.csv", images),
             ("rating_history.csv", history))
    for col, (fname, df) in zip(c, files):
        col.download_button(fname, csv_bytes(df), file_name=fname, mime="text/csv", on_click="ignore",
                            key=f"adm_dl_{fname}")


def admin_page(store: Store) -> None:
    st.title("Study admin")
    expected = _admin_password()
    if not expected:
        st.error("The admin page is disabled: set ECHOBENCH_ADMIN_PASSWORD (or admin_password in "
                 ".streamlit/secrets.toml) and restart the app.")
        return
    if not st.session_state.get("admin"):
        with st.form("admin_login"):
            password = st.text_input("Admin password", type="password", key="adm_password")
            if st.form_submit_button("Sign in", type="primary"):
                try:
                    ok = sv.check_admin_password(password, expected, throttle=sv.ADMIN_THROTTLE, client=_client())
                except sv.AuthError as exc:
                    st.error(t("en", exc.code, **exc.values))
                    return
                if ok:
                    st.session_state["admin"] = True
                    st.rerun()
                st.error("Wrong password.")
        return
    create, participants, prog, export = st.tabs(["Create study", "Participants", "Progress", "Export"])
    with create:
        _create_study(store)
    studies = sv.app_studies(store)
    if not studies:
        for tab in (participants, prog, export):
            tab.info("No study yet: create one first.")
        return
    study = st.sidebar.selectbox("Study", studies, index=len(studies) - 1, key="adm_study")
    with participants:
        _participants(store, study)
    with prog:
        st.dataframe(sv.progress(store, study), hide_index=True)
    with export:
        _export(store, study)


# ------------------------------------------------------------------------------------------------ main
def main() -> None:
    st.set_page_config(page_title="EchoBench rating", layout="centered")
    if "_lang_next" in st.session_state:
        st.session_state["lang"] = st.session_state.pop("_lang_next")
    lang = st.sidebar.selectbox("Language · Язык · Тіл", list(LANGUAGES), format_func=LANGUAGES.get, key="lang")
    mode = "admin" if st.query_params.get("page") == "admin" else "rater"  # admin: http://HOST:PORT/?page=admin
    try:
        store = _store(resolve_url(db_arg(sys.argv[1:])))
        if mode == "admin":
            admin_page(store)
        else:
            rater_page(store, lang)
    except sv.AuthError as exc:
        st.error(t(lang, exc.code, **exc.values))
    except StoreError as exc:
        st.error(t(lang, "db_unreachable"))
        st.caption(str(exc))


if __name__ == "__main__":  # streamlit runs the page as __main__; importing it (tests) does nothing
    main()
