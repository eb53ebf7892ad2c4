"""EchoBench leaderboard: the Streamlit page over the results store (read-only).

Run it with ``harness leaderboard [--db URL] [--port P]`` (or ``streamlit run leaderboard/app.py -- --db URL``).
Without ``--db`` it reads ``ECHOBENCH_DB`` or ``sqlite:///echobench.db``. Tabs: the leaderboard, a generator's
detail, the human evaluation and metric ↔ clinician agreement. Nothing that the store holds is recomputed
here; the human-evaluation statistics come from :mod:`human_eval.stats`.
"""

from __future__ import annotations

import re
import sys
import urllib.parse

import pandas as pd
import streamlit as st

from harness.errors import EchoBenchError
from harness.formatting import format_frame, sig
from harness.store import resolve_url
from harness.webapp import db_arg
from leaderboard import charts, data, human, thumbs
from leaderboard import table as tbl

FIRST_RUN = ("No results yet: run `harness quickstart` (scores the `real` and `labelmap` baselines on the "
             "built-in phantom, offline) or `harness run --generator G --task fid --features radiomics`, "
             "then reload this page.")
NO_STUDY = ("No human-evaluation study in this database yet: `harness human import ratings.csv "
            "--participants participants.csv --study NAME` (try the synthetic example: "
            "`python -m human_eval.examples.make_study --out study`).")


STYLE_MAX_CELLS = 5000
THUMBS = 3  # thumbnails per row of the main table
GALLERY_ROWS = 4


@st.cache_resource(show_spinner=False)
def _engine(url: str):
    return data.connect(url)


@st.cache_data(ttl=30, show_spinner=False)
def _results(url: str) -> pd.DataFrame:
    return data.load_results(_engine(url))


@st.cache_data(ttl=30, show_spinner=False)
def _study(url: str, name: str | None):
    return data.load_study(_engine(url), name)


@st.cache_data(ttl=300, show_spinner="Running the human-evaluation statistics…")
def _human_stats(url: str, name: str) -> dict[str, pd.DataFrame]:
    study = _study(url, name)
    return human.study_statistics(study)


# ----------------------------------------------------------------------------------------------- sidebar
def sidebar_filters(results: pd.DataFrame) -> tbl.Filters:
    st.sidebar.header("Filters")
    sources = sorted(results["data"].unique())
    spaces = sorted(results["feature_space"].unique())
    chosen_data = st.sidebar.multiselect("Data source", sources, default=sources)
    chosen_spaces = st.sidebar.multiselect("Feature space", spaces, default=spaces,
                                           help="FID is reported only in the Inception space; others are FD_<space>.")
    n_lo, n_hi = int(results["run_n"].min()), int(results["run_n"].max())
    n_range = st.sidebar.slider("N (generated images)", n_lo, n_hi, (n_lo, n_hi)) if n_lo < n_hi else None
    days = results["started_at"].dt.date
    d_lo, d_hi = days.min(), days.max()
    dates = st.sidebar.date_input("Run date", (d_lo, d_hi), min_value=d_lo, max_value=d_hi) if d_lo < d_hi else None
    if isinstance(dates, (tuple, list)) and len(dates) != 2:
        dates = None  # half-picked range
    demo = st.sidebar.checkbox("Show demo runs", value=False, key="demo",
                               help="Runs made with stand-ins (a random-weight feature space, a tiny preset, the tiny "
                                    "random SD base): their numbers demonstrate the pipeline, they rank nothing.")
    return tbl.Filters(data=chosen_data, feature_space=chosen_spaces, n=n_range,
                       dates=tuple(dates) if dates else None, include_demo=demo)


# ----------------------------------------------------------------------------------------------- tabs
@st.cache_data(ttl=300, show_spinner=False)
def _strip(imageset_path: str | None) -> str | None:
    return thumbs.data_uri(thumbs.strip_for(imageset_path, k=THUMBS))


REFERENCE_STYLE = "color: #555; background-color: #f3f3f3; font-style: italic"
DEMO_STYLE = "color: #8a5a00; background-color: #fff6e0"


def board_frame(table: tbl.Table, all_metrics: bool, fractions: bool) -> tuple[pd.DataFrame, dict, list[str]]:
    """The frame the main table shows, its column config and column order (default view: rank, generator,
    samples, the headline metrics, N, detail link; all metrics adds checkpoint and data)."""
    cols = table.columns if all_metrics else table.headline
    shown = table.display(cols, fractions)
    shown.insert(2, "samples", [_strip(p) for p in table.info["imageset_path"]])
    shown["detail"] = ["?" + urllib.parse.urlencode({"generator": g, "checkpoint": c}) for g, c in table.value.index]
    config = {
        "rank": st.column_config.TextColumn("rank", width=110, help="1, 2, … ranked by the first column; baselines "
                                            "are reference rows (noise floor: real images; no-learning floor: "
                                            "untranslated label maps), never ranked"),
        "generator": st.column_config.TextColumn("generator", width=120, help="the generator adapter; 'demo': made "
                                                 "with stand-ins, not a result"),
        "samples": st.column_config.ImageColumn("samples", width=150, help=f"the first {THUMBS} images of the run's "
                                                "image set (Gallery tab: side by side)"),
        "checkpoint": st.column_config.TextColumn("checkpoint", width=100, help="sha256 of the checkpoint (first 12)"),
        "data": st.column_config.TextColumn("data", width=90, help="data source of the run"),
        "N": st.column_config.NumberColumn("N", width=60, format="%d", help="generated images of the latest run"),
        "detail": st.column_config.LinkColumn("detail", width=60, display_text="open ↗",
                                              help="open this generator's detail view"),
    }
    for c in cols:
        config[c.header] = st.column_config.TextColumn(c.label, help=c.help, width=130)
    after = {}
    for c, key, label, help_ in table.real_fraction_columns(cols):
        config[key] = st.column_config.TextColumn(label, help=help_, width=90)
        after[c.header] = key
    metric_keys = [k for c in cols for k in (c.header, after.get(c.header)) if k]
    order = ["rank", "generator", "samples", *metric_keys, *(["checkpoint", "data"] if all_metrics else []), "N", "detail"]
    return shown, config, order


def leaderboard_tab(table: tbl.Table) -> None:
    if table.empty:
        hidden = (f" {table.hidden_demo} demo result(s) are hidden: tick *Show demo runs* in the sidebar (›)."
                  if table.hidden_demo else "")
        st.warning("No results match the filters." + hidden)
        return
    left, right = st.columns(2)
    all_metrics = left.toggle("All metrics", key="all_metrics",
                              help="Default: one headline metric per task, in order of importance (FID/FD, utility, "
                                   "CMMD, diversity, colour shift, memorisation).")
    fractions = right.toggle("Fraction of the way", key="fractions",
                             help="Beside each value: where the generator lies between the no-learning floor (0%) "
                                  "and the noise floor (100%) on that metric, when both baselines have a value.")
    shown, config, order = board_frame(table, all_metrics, fractions)
    role = ["ref" if isinstance(b, str) else ("demo" if isinstance(d, str) else "") for b, d in
            zip(table.info["baseline"], table.info["demo"])]

    def style(row: pd.Series) -> list[str]:
        css = REFERENCE_STYLE if role[row.name] == "ref" else DEMO_STYLE if role[row.name] == "demo" else ""
        return [css] * len(row)

    styled = shown.style.apply(style, axis=1) if shown.size <= STYLE_MAX_CELLS else shown
    event = st.dataframe(styled, hide_index=True, width="stretch", key="board", on_select="rerun",
                         selection_mode="single-row", column_config=config, column_order=order, row_height=52)
    rows = event.selection.rows if event is not None else []
    if rows:
        r = table.value.index[rows[0]]
        st.session_state["detail"] = r
        st.info(f"Selected **{r[0]}**: see the *Generator detail* tab.")
    n_ranked = int(table.ranked.sum())
    notes = ["Cells: value ± half-width of the 95% CI (value [low, high] when asymmetric), 3 significant digits; "
             "hover a column header for what it measures, which direction is better (↓ / ↑), the feature space and N.",
             "Gray rows are **reference rows** (baselines), not competitors: the *noise floor* (real images against "
             "real images) is the best a generator can reach, the *no-learning floor* what a model that learned "
             "nothing scores." + ("" if n_ranked else " No generator is ranked yet: train one (`harness train "
                                                          "--generator cyclegan --preset paper --out ck/cyclegan`) "
                                                          "and `harness run` it.")]
    if (table.info["demo"].notna()).any():
        notes.append("Orange rows are **demo** runs (stand-ins: " + "; ".join(sorted(set(table.info["demo"].dropna())))
                     + "): they show the pipeline works, not how good a model is.")
    elif table.hidden_demo:
        notes.append(f"{table.hidden_demo} demo result(s) hidden (made with stand-ins: a random-weight feature space, "
                     "a tiny preset, the tiny random SD base): *Show demo runs* in the sidebar (›).")
    st.caption(" ".join(notes))
    st.download_button("Download CSV", table.to_csv, file_name="echobench_leaderboard.csv", mime="text/csv",
                       on_click="ignore")


def gallery_tab(table: tbl.Table) -> None:
    """The same condition rendered by every generator, beside a real image."""
    if table.empty:
        st.info("No generator matches the filters.")
        return
    sets, real = thumbs.gallery_sets(table.value.index, table.info["imageset_path"], table.info["baseline"])
    names, rows, uncond = thumbs.gallery(sets, real, rows=GALLERY_ROWS)
    if not rows:
        st.caption("No image set of these runs is on this machine (moved, or the runs were made elsewhere).")
        return
    st.caption("Each row: one phantom condition (label map) as every generator renders it, the real image of that "
               "condition first." + (f" Unconditional generators ({', '.join(uncond)}): their i-th image." if uncond
                                     else "") if "condition" in rows[0] else
               "Each row: image i of every generator's set (these sets record no conditions to line up).")
    header = st.columns([1] + [2] * len(names))
    header[0].markdown("**condition**")
    for h, name in zip(header[1:], names):
        h.markdown(f"**{name}**")
    for row in rows:
        cells = st.columns([1] + [2] * len(names))
        cells[0].caption(row.get("condition", ""))
        for cell, name in zip(cells[1:], names):
            if name in row:
                cell.image(str(row[name]), width="stretch")


def _gallery(paths, caption: str, width: int = 128) -> None:
    if paths:
        st.image([str(p) for p in paths], width=width, caption=[f"{caption} {p.name}" for p in paths])


def detail_tab(url: str, results: pd.DataFrame, table: tbl.Table) -> None:
    keys = list(table.value.index) if not table.empty else []
    if not keys:
        st.info("No generator matches the filters.")
        return
    labels = [f"{g} @ {c[:12]}" for g, c in keys]
    params = st.query_params
    wanted = st.session_state.get("detail") or (params.get("generator"), params.get("checkpoint"))
    index = keys.index(wanted) if wanted in keys else 0
    choice = st.selectbox("Generator (checkpoint)", range(len(keys)), index=index, format_func=lambda i: labels[i])
    generator, checkpoint = keys[choice]
    run_ids = data.runs_of(results, generator, checkpoint)
    run_id = st.selectbox("Run", run_ids, format_func=lambda r: r[:8]) if len(run_ids) > 1 else run_ids[0]
    engine = _engine(url)
    run = data.run_record(engine, run_id)
    res = data.run_results(engine, run_id)
    arts = data.run_artifacts(engine, run_id)

    cols = st.columns(4)
    cols[0].metric("generator", generator)
    cols[1].metric("N", run["n"])
    cols[2].metric("seed", run["seed"])
    cols[3].metric("git SHA", (run["git_sha"] or "—")[:10])
    st.markdown(f"**Run** `{run_id}` · **checkpoint sha256** `{run['checkpoint_hash'] or 'none (no checkpoint)'}` · "
                f"**data** `{run['data_source']}` · **reference** `{run['reference'] or '—'}` · "
                f"**feature space** `{run['feature_space'] or '—'}` · **started** {run['started_at']}")
    shown = res.drop(columns=["details"]).assign(
        metric=[tbl.metric_header(m, s, bool(h), bool(sub)) for m, s, h, sub in
                zip(res["metric"], res["feature_space"], res["higher_is_better"], res["substitute"])],
        value=[sig(v) for v in res["value"]], ci_low=[sig(v) for v in res["ci_low"]],
        ci_high=[sig(v) for v in res["ci_high"]]).drop(columns=["substitute"])
    st.dataframe(shown, hide_index=True, width="stretch")
    with st.expander("Config"):
        st.json(run["config"] or {}, expanded=False)
    with st.expander("Package versions"):
        st.json(run["versions"] or {}, expanded=False)

    st.subheader("Samples")
    samples = data.sample_images(run["imageset_path"])
    if samples:
        _gallery(samples, "sample")
    else:
        st.caption(f"Image set not found at {run['imageset_path']} (moved or on another machine).")

    groups = data.artifact_groups(arts)
    st.subheader("Colour shift: flagged images")
    flagged = [p for path in groups["color_shift"]["path"] for p in data.image_files(path)]
    if flagged:
        _gallery(flagged, "flagged")
    else:
        st.caption("No colour-shift gallery for this run (run `--task color_shift`).")
    st.subheader("Memorisation: (generated, nearest training) pairs")
    pairs = [p for path in groups["memorization"]["path"] for p in data.image_files(path)]
    if pairs:
        _gallery(pairs, "pair", width=256)
    else:
        st.caption("No memorisation pairs for this run (run `--task memorization`).")

    st.subheader("FID∞ fit")
    fits = [(m, data.fid_inf_fit(d)) for m, d in zip(res["metric"], res["details"])]
    fits = [(m, f) for m, f in fits if f is not None]
    for metric, fit in fits:
        st.altair_chart(charts.fid_inf_chart(fit, metric), width="stretch")
        se = f" ± {fit['se_a']:.3g} (fit s.e.)" if fit.get("se_a") is not None else ""
        st.caption(f"{metric} = intercept a = {fit['a']:.4g}{se}; slope k = {fit['k']:.4g}.")
    if not fits:
        st.caption("No FID∞ fit stored for this run.")

    st.subheader("Diversity")
    div = res[res["task"] == "diversity"]
    if not div.empty:
        st.altair_chart(charts.metric_bars(div, "diversity metrics (95% CI)"), width="stretch")
    _gallery([p for path in groups["diversity"]["path"] for p in data.image_files(path)], "diversity", width=320)
    if div.empty and groups["diversity"].empty:
        st.caption("No diversity results for this run (run `--task diversity`).")
    other = [p for path in groups["other"]["path"] for p in data.image_files(path)]
    if other:
        st.subheader("Other artifacts")
        _gallery(other, "", width=256)


def human_tab(url: str, study: data.StudyData | None) -> None:
    if study is None:
        st.info(NO_STUDY)
        return
    if study.synthetic:
        st.warning("This study is marked SYNTHETIC: simulated ratings, not clinician data.")
    st.markdown(f"Study **{study.name}**: {len(study.ratings)} ratings, "
                f"{study.ratings['participant_id'].nunique()} participants, {study.ratings['source'].nunique()} sources.")
    res = _human_stats(url, study.name)
    st.subheader("Descriptives per source")
    st.dataframe(format_frame(res["descriptives"]), hide_index=True)
    st.subheader("Ratings")
    st.altair_chart(charts.diverging_bars(human.diverging_frame(study.ratings, study.scale), study.scale),
                    width="stretch")
    st.subheader("Artifact flags (Wilson 95% CI)")
    flags = res["flags"].dropna(subset=["rate"]) if "rate" in res["flags"] else res["flags"]
    if not flags.empty:
        st.altair_chart(charts.flag_rates_chart(flags))
    st.subheader("Per-participant mean ratings (paper Figure 5)")
    pm = res["participants"]
    c1, c2 = st.columns(2)
    if "experience_years" in pm:
        c1.altair_chart(charts.participant_chart(pm, "experience_years"), width="stretch")
    if "weekly_readings" in pm:
        c2.altair_chart(charts.participant_chart(pm, "weekly_readings", log_x=True), width="stretch")
    st.subheader("Recommended tests (ratings are repeated within participants)")
    st.markdown("**Friedman** on per-participant means (with Kendall's W): do the sources differ?")
    st.dataframe(format_frame(res["friedman"]), hide_index=True)
    st.markdown("**Wilcoxon signed-rank post-hoc**, Holm-corrected: which sources differ?")
    st.dataframe(format_frame(res["wilcoxon"]), hide_index=True)
    st.markdown("**Participant-clustered bootstrap** of each source's difference from real:")
    st.dataframe(format_frame(res["bootstrap"]), hide_index=True)
    with st.expander("Paper analysis: Mann–Whitney U vs real (assumes independent ratings)"):
        st.dataframe(format_frame(res["mwu"]), hide_index=True)


@st.cache_data(ttl=300, show_spinner="Ranking the distances against downstream Dice…")
def _utility(results: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    return human.utility_agreement(results)


def _md_escape(text: str) -> str:
    """Stored names (metric, generator) shown as literal Markdown text."""
    return re.sub(r"([\\`*_{}\[\]()#+!|<>~$])", r"\\\1", text)


def utility_section(results: pd.DataFrame) -> None:
    """Which distance predicts downstream Dice (no clinician study needed)."""
    from human_eval.trust import UTILITY_EXPLAINED

    st.subheader("Which distance predicts downstream Dice")
    table, lines = _utility(results)
    for line in lines:
        st.markdown("**" + _md_escape(line) + "**")
    if table.empty or table["kendall_tau"].notna().sum() == 0:
        return
    st.altair_chart(charts.utility_chart(table), width="stretch")
    st.dataframe(format_frame(table[human.UTILITY_SHOWN]), hide_index=True, key="utility_table")
    st.caption(UTILITY_EXPLAINED + " Here the interval resamples the stored CIs; `harness human agreement --utility "
               "--out DIR` bootstraps over the test images where their per-image Dice files are on disk.")


def agreement_tab(url: str, table: tbl.Table, study: data.StudyData | None, results: pd.DataFrame | None = None) -> None:
    if study is None:
        st.info(NO_STUDY)
        if results is not None:
            utility_section(results)
        return
    higher = {c.header: c.higher_is_better for c in table.columns}
    scores = human.generator_scores(table, study.ratings)
    if len(scores) < 2:
        rated = ", ".join(sorted(study.ratings["source"].unique()))
        st.info(f"Fewer than 2 generators are both on the leaderboard and rated (rated sources: {rated}; "
                "generator names are matched to sources through the study's alias table).")
    else:
        ranks = human.rankings(scores, higher)
        st.subheader("Generator ranking: each metric vs mean clinician rating")
        st.altair_chart(charts.ranking_chart(ranks), width="stretch")
        st.dataframe(ranks.reset_index(), hide_index=True)
        st.markdown("**Kendall's τ** between each metric (oriented so larger = better) and the mean rating:")
        st.dataframe(format_frame(human.ranking_agreement(scores, higher)), hide_index=True)
    st.subheader("Per-image metric vs rating")
    stored = data.per_image_metrics(_engine(url))[["metric", "image", "value"]]
    saved = study.per_image if study.per_image is not None else stored.iloc[:0]
    per_image = human.per_image_scatter(pd.concat([stored, saved], ignore_index=True), study.ratings, study.images)
    if per_image.empty:
        st.caption("No per-image metric values link to the rated images yet: run `harness human agreement "
                   f"--study {study.name}` (needs the study's images.csv paths) and reload.")
    else:
        metric = st.selectbox("Metric", sorted(per_image["metric"].unique()))
        st.altair_chart(charts.per_image_chart(per_image, metric), width="stretch")
    if results is not None:
        utility_section(results)


def main() -> None:
    st.set_page_config(page_title="EchoBench leaderboard", layout="wide", initial_sidebar_state="collapsed")
    st.title("EchoBench leaderboard")
    try:
        url = resolve_url(db_arg(sys.argv[1:]))
        _engine(url)
        results = _results(url)
        studies = data.list_studies(_engine(url))
    except EchoBenchError as exc:
        st.error(str(exc))
        return
    if results.empty and not studies:
        st.info(FIRST_RUN)
        return
    study_name = st.sidebar.selectbox("Study", studies, index=len(studies) - 1) if len(studies) > 1 else None
    study = _study(url, study_name) if studies else None
    filters = sidebar_filters(results) if not results.empty else tbl.Filters()
    table = tbl.main_table(results, filters)
    shown = tbl.apply_filters(results, filters) if not results.empty else results
    tabs = st.tabs(["Leaderboard", "Gallery", "Generator detail", "Human evaluation", "Agreement"])
    with tabs[0]:
        if results.empty:
            st.info(FIRST_RUN)
        else:
            leaderboard_tab(table)
    with tabs[1]:
        gallery_tab(table)
    with tabs[2]:
        detail_tab(url, results, table)
    with tabs[3]:
        human_tab(url, study)
    with tabs[4]:
        agreement_tab(url, table, study, shown)


if __name__ == "__main__":  # streamlit runs the page as __main__; importing it (tests) does nothing
    main()
