"""Human-evaluation report: the paper's Tables 1-3 and Figure 5, plus the analysis the design calls for.

:func:`report_tables` runs every statistic of :mod:`human_eval.stats` on a validated study and returns
named DataFrames (the CLI's ``--json`` output); :func:`build_report` writes them as ``report.md`` or
``report.html`` with PNG figures (matplotlib, Agg backend), and one sentence per test saying which question it
answers and what the answer is.
"""

from __future__ import annotations

import html
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import UsageError
from harness.formatting import format_frame, p_value, stat
from human_eval import stats as S
from human_eval.schema import FLAG_COLUMNS, StudyTables

log = logging.getLogger(__name__)

__all__ = ["agreement_section", "build_report", "paper_tables", "report_tables"]

_TEST_NAMES = {"kolmogorov_smirnov": "Kolmogorov-Smirnov", "lilliefors": "KS with Lilliefors correction",
               "shapiro_wilk": "Shapiro-Wilk", "anderson_darling": "Anderson-Darling (A*², small-sample adjusted)"}


def report_tables(tables: StudyTables, *, reference: str = "real", seed: int = 0, n_perm: int = 9999,
                  n_boot: int = 2000, margin: float = 0.5) -> dict[str, pd.DataFrame]:
    """Run every analysis; return ``{name: DataFrame}`` (columns as documented in :mod:`human_eval.stats`).

    Keys: descriptives, normality, mann_whitney, participant_means, friedman, wilcoxon_posthoc,
    ordinal_model, cluster_bootstrap, agreement, artifact_flags, tost, and the paper layouts table1, table2,
    table3. Large studies degrade as the notes say (exact MWU p and the ordinal model are skipped above
    their size limits); nothing is subsampled.
    """
    r = tables.ratings
    if reference not in set(r["source"]):
        raise UsageError(f"reference source {reference!r} has no ratings; sources present: "
                         f"{', '.join(sorted(r['source'].unique()))} (choose one with --reference)")
    out: dict[str, pd.DataFrame] = {}
    timings = {}

    def run(name, fn, *a, **k):
        t0 = time.perf_counter()
        out[name] = fn(*a, **k)
        timings[name] = time.perf_counter() - t0

    run("descriptives", S.descriptives, r)
    run("normality", S.normality, r)
    run("mann_whitney", S.mann_whitney_vs_reference, r, reference=reference, n_perm=n_perm, seed=seed)
    run("participant_means", S.participant_means, r, tables.participants)
    run("friedman", S.friedman, r)
    run("wilcoxon_posthoc", S.wilcoxon_posthoc, r, reference=reference)
    run("ordinal_model", S.ordinal_model, r, reference=reference)
    run("cluster_bootstrap", S.cluster_bootstrap, r, reference=reference, n_boot=n_boot, seed=seed)
    run("agreement", S.agreement, r, scale=tables.scale)
    run("artifact_flags", S.artifact_flags, r, reference=reference)
    run("tost", S.tost_vs_reference, r, reference=reference, margin=margin)
    log.debug("analysis timings: %s", {k: round(v, 3) for k, v in timings.items()})
    out.update(paper_tables(out, reference=reference))
    return out


def paper_tables(res: dict[str, pd.DataFrame], reference: str = "real") -> dict[str, pd.DataFrame]:
    """The paper's Tables 1-3 layouts from :func:`report_tables` results (statistics only, rounded later)."""
    norm = res["normality"]
    t1 = norm[norm["source"] != reference].pivot(index="test", columns="source", values="statistic_adj")
    t1 = t1.reindex([t for t in _TEST_NAMES if t in t1.index]).rename(index=_TEST_NAMES).reset_index()
    mw = res["mann_whitney"]
    t2 = pd.DataFrame({"pair": mw["source"] + " vs " + mw["reference"], "U": mw["U"], "Z": mw["Z"],
                       "asymptotic p": mw["p"], "exact p (no ties)": mw["p_exact"],
                       "permutation p (ties)": mw["p_perm"], "r": mw["r"], "rated higher": mw["higher"]})
    t3 = res["descriptives"][["source", "mean", "median", "sd", "n"]]
    return {"table1": t1, "table2": t2, "table3": t3}


# ------------------------------------------------------------------------------------------- sentences
def _p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "p n/a"
    text = p_value(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _sentences(res: dict[str, pd.DataFrame], reference: str, margin: float) -> list[str]:
    out = []
    d = res["descriptives"].set_index("source")
    best = d["mean"].idxmax()
    out.append(f"**Which source looks most realistic on average?** {best} (mean {d.loc[best, 'mean']:.2f}; "
               f"{reference}: {d.loc[reference, 'mean']:.2f}).")
    mw = res["mann_whitney"]
    parts = [f"{r.source}: U = {stat(r.U)}, Z = {r.Z:.2f}, {_p(r.p)}, r = {r.r:.2f} ({r.higher} rated higher)"
             for r in mw.itertuples()
             if np.isfinite(r.U if r.U is not None else np.nan)]
    out.append("**Mann-Whitney U (paper's test; are ratings of a source and of real images from the same "
               "distribution, treating every rating as independent?)** " + "; ".join(parts) +
               ". Ratings are repeated within participants, so these p-values are too small; prefer the tests below.")
    f = res["friedman"].iloc[0]
    out.append(f"**Friedman (do participants' mean ratings differ between sources at all?)** Q = {f.Q:.2f}, "
               f"df = {f.dof}, {_p(f.p)}, Kendall's W = {f.W:.2f} (n = {f.n} participants).")
    w = res["wilcoxon_posthoc"]
    ref_rows = w[(w["A"] == reference) | (w["B"] == reference)]
    parts = [f"{r.A} vs {r.B}: mean difference {r.mean_diff:+.2f}, Holm {_p(r.p_holm)}" for r in ref_rows.itertuples()]
    out.append(f"**Wilcoxon signed-rank, Holm-corrected over all {len(w)} source pairs (which sources differ from "
               f"{reference}, participant by participant?)** " + "; ".join(parts) + ".")
    om = res["ordinal_model"]
    src = om[om["kind"] == "source"]
    if len(src):
        parts = [f"{r.term}: odds ratio {r.odds_ratio:.2f} ({_p(r.p)})" for r in src.itertuples()]
        out.append("**Cumulative-logit model with participant-clustered errors (how do the odds of a higher "
                   "rating change vs real, respecting the ordinal scale?)** " + "; ".join(parts) + ".")
    else:
        out.append(f"**Ordinal model:** {om['note'].iloc[0]}")
    cb = res["cluster_bootstrap"]
    parts = [f"{r.source}: {r.diff:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]" for r in cb.itertuples()
             if np.isfinite(r.diff)]
    out.append("**Participant-clustered bootstrap (how large is each source's mean-rating difference from "
               "real, with a CI that respects the repeated measures?)** " + "; ".join(parts) + ".")
    t = res["tost"]
    parts = [f"{r.source}: 90% CI [{r.ci90_low:+.2f}, {r.ci90_high:+.2f}], "
             f"{'equivalent' if r.equivalent else 'not shown equivalent'} ({_p(r.p)})" for r in t.itertuples()
             if np.isfinite(r.p)]
    out.append(f"**TOST equivalence, margin +/-{margin} rating points (can a source be called "
               f"indistinguishable from real?)** " + "; ".join(parts) + ".")
    a = res["agreement"]
    a_all = a[a["source"] == "all"].set_index("measure")
    if a_all["value"].notna().any():
        out.append("**Inter-rater agreement (do clinicians agree on individual images?)** "
                   + "; ".join(f"{m} = {v:.2f}" for m, v in a_all["value"].dropna().items())
                   + f" ({int(a_all['n_images'].max())} images rated more than once).")
    else:
        out.append(f"**Inter-rater agreement:** {a_all['note'].iloc[0]}.")
    fl = res["artifact_flags"]
    if len(fl):
        top = fl.sort_values("rate", ascending=False).iloc[0]
        out.append(f"**Artifact flags (what do clinicians object to?)** most frequent: {top.flag} on "
                   f"{top.source} images ({top.rate:.0%} [{top.ci_low:.0%}, {top.ci_high:.0%}], Wilson 95%).")
    return out


# --------------------------------------------------------------------------------------------- figures
def _figures(tables: StudyTables, res: dict[str, pd.DataFrame], out_dir: Path, reference: str) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    r = tables.ratings
    order = S.source_order(r, reference=reference)
    colors = dict(zip(order, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3))
    paths = {}
    pm = res["participant_means"]
    for col, fname, logx in (("experience_years", "fig5_experience.png", False),
                             ("weekly_readings", "fig5_weekly_readings.png", True)):
        if col not in pm.columns or pm[col].isna().all():
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, s in enumerate(order):
            d = pm[(pm["source"] == s) & pm[col].notna()]
            if logx and (d[col] <= 0).any():
                d = d[d[col] > 0]
            x = d[col].to_numpy(float) * (1 + 0.02 * (i - 1.5)) if logx else d[col].to_numpy(float) + 0.15 * (i - 1.5)
            err = np.vstack([d["mean"] - d["ci_low"], d["ci_high"] - d["mean"]]).clip(0)
            ax.errorbar(x, d["mean"], yerr=np.nan_to_num(err), fmt="o", ms=4, capsize=2, color=colors[s], label=s,
                        alpha=0.85)
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(col.replace("_", " ") + (" (log scale)" if logx else ""))
        ax.set_ylabel("participant's mean rating (95% CI)")
        ax.set_ylim(tables.scale[0] - 0.5, tables.scale[1] + 0.5)
        ax.legend(title="source", fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / fname, dpi=110)
        plt.close(fig)
        paths[col] = out_dir / fname
    # diverging stacked bar of the rating distribution
    lo, hi = tables.scale
    levels = list(range(lo, hi + 1))
    prop = pd.crosstab(r["source"], r["rating"], normalize="index").reindex(index=order, columns=levels, fill_value=0)
    mid = (lo + hi) / 2
    cmap = plt.get_cmap("RdYlGn", len(levels))
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(order) + 1.5))
    y = np.arange(len(order))
    neg = prop[[v for v in levels if v < mid]].sum(axis=1) + (prop[mid] / 2 if mid in levels else 0)
    left = -neg.to_numpy()
    for j, v in enumerate(levels):
        w = prop[v].to_numpy()
        ax.barh(y, w, left=left, color=cmap(j), edgecolor="white", label=str(v))
        left = left + w
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, order)
    ax.invert_yaxis()
    ax.set_xlabel("share of ratings (left of 0: below the scale midpoint)")
    ax.legend(title="rating", ncol=len(levels), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.35))
    fig.tight_layout()
    fig.savefig(out_dir / "rating_distribution.png", dpi=110)
    plt.close(fig)
    paths["distribution"] = out_dir / "rating_distribution.png"
    fl = res["artifact_flags"]
    if len(fl) and fl["count"].sum() > 0:
        flags = [f for f in FLAG_COLUMNS if f in set(fl["flag"])]
        fig, ax = plt.subplots(figsize=(8, 4))
        wdt = 0.8 / len(order)
        for i, s in enumerate(order):
            d = fl[fl["source"] == s].set_index("flag").reindex(flags)
            x = np.arange(len(flags)) + (i - (len(order) - 1) / 2) * wdt
            err = np.vstack([d["rate"] - d["ci_low"], d["ci_high"] - d["rate"]]).clip(0)
            ax.bar(x, d["rate"], wdt, yerr=np.nan_to_num(err), capsize=2, color=colors[s], label=s)
        ax.set_xticks(np.arange(len(flags)), [f.replace("_", "\n") for f in flags], fontsize=8)
        ax.set_ylabel("share of images flagged (Wilson 95% CI)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / "artifact_flags.png", dpi=110)
        plt.close(fig)
        paths["flags"] = out_dir / "artifact_flags.png"
    return paths


# ---------------------------------------------------------------------------------------------- output
def _md_table(df: pd.DataFrame) -> str:
    """A Markdown table; numbers as in a paper (:func:`harness.formatting.format_frame`)."""
    shown = format_frame(df)
    cols = [str(c) for c in shown.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines)


def _html_table(df: pd.DataFrame) -> str:
    shown = format_frame(df)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                     for row in shown.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


REPORT_CSS = """body{font:15px/1.5 Georgia,'Times New Roman',serif;color:#1d2433;max-width:1000px;margin:2em auto;padding:0 1em}
h1,h2{font-family:system-ui,sans-serif}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #d9dde5}
table{border-collapse:collapse;font:13px/1.4 system-ui,sans-serif;font-variant-numeric:tabular-nums;margin:.5em 0}
thead th{border-top:2px solid #1d2433;border-bottom:1px solid #1d2433;text-align:left;padding:3px 10px}
td{padding:3px 10px;text-align:right}td:first-child{text-align:left}tbody tr:last-child td{border-bottom:2px solid #1d2433}
nav.toc{background:#f6f7f9;padding:.5em 1.2em;border-radius:6px}nav.toc ol{columns:2;margin:.3em 0}
.warn{color:#8a3b00}img{max-width:100%;display:block;margin:1em 0}
"""


def _anchor(key: str) -> str:
    return "sec-" + "".join(ch if ch.isalnum() else "-" for ch in key)


_SECTIONS = [
    ("table3", "Table 3 equivalent: descriptives per source (SD with ddof=1)"),
    ("table1", "Table 1 equivalent: normality test statistics (synthetic sources; p-values in `normality`)"),
    ("table2", "Table 2 equivalent: Mann-Whitney U vs real (U = smaller of U1, U2; Z tie-corrected, no continuity "
               "correction; the paper's 'exact p' is the no-ties exact p)"),
    ("friedman", "Friedman test on participant means, Kendall's W"),
    ("wilcoxon_posthoc", "Wilcoxon signed-rank post-hoc (participant means), Holm-corrected"),
    ("ordinal_model", "Cumulative-logit model rating ~ source (participant-clustered SE)"),
    ("cluster_bootstrap", "Participant-clustered bootstrap of mean differences vs real"),
    ("tost", "TOST equivalence vs real (participant-level paired differences)"),
    ("agreement", "Inter-rater agreement"),
    ("artifact_flags", "Artifact flags: rate per source (Wilson 95% CI) and association with rating"),
    ("normality", "Normality tests (all statistics and p)"),
    ("mann_whitney", "Mann-Whitney U, all columns"),
]


_AGREEMENT_SECTIONS = [
    ("metric_agreement", "Agreement: per-image metric vs mean rating (Spearman, Kendall; higher_is_better = the "
                         "expected sign)"),
    ("generator_agreement", "Agreement: generator ranking by each stored metric vs by mean rating (Kendall's tau)"),
    ("generator_pairs", "Agreement: pairwise generator preferences, metric vs clinicians"),
]


def _has_paths(tables: StudyTables) -> bool:
    im = tables.images
    return im is not None and "path" in im.columns and im["path"].astype(str).str.strip().replace(
        {"None": "", "nan": ""}).ne("").any()


def agreement_section(tables: StudyTables, agreement: dict[str, pd.DataFrame] | None = None, *, store=None,
                      image_root=None) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The report's Agreement tables and sentences: ``agreement`` as given, else computed with
    :func:`human_eval.agreement.agreement_tables` when the study links images to files (or a store is given).
    An image that cannot be read turns the per-image part into a note; the report is still written."""
    from harness.errors import DataError

    notes: list[str] = []
    if agreement is None:
        agreement = {}
        if _has_paths(tables) or store is not None:
            from human_eval.agreement import agreement_tables

            try:
                agreement = agreement_tables(tables, store=store, base_dir=image_root)
            except DataError as exc:
                log.warning("agreement section skipped: %s", exc)
                notes.append(f"**Metric-human agreement** could not be computed: {exc}")
    ma = agreement.get("metric_agreement")
    if ma is not None and len(ma):
        parts = [f"{r.metric}: rho = {r.spearman_rho:.2f} ({_p(r.p_spearman)}), tau = {r.kendall_tau:.2f}, "
                 f"n = {r.n_images}" for r in ma.itertuples() if np.isfinite(r.spearman_rho)]
        if parts:
            notes.append("**Do per-image metrics agree with the clinicians' mean rating of each image?** "
                         + "; ".join(parts) + ".")
    ga = agreement.get("generator_agreement")
    if ga is not None and len(ga):
        parts = [f"{r.metric}: tau = {r.kendall_tau:+.2f}, best by metric {r.best_by_metric}, by clinicians "
                 f"{r.best_by_humans}" for r in ga.itertuples() if np.isfinite(r.kendall_tau)]
        if parts:
            notes.append("**Do metrics rank the generators as the clinicians do?** " + "; ".join(parts) + ".")
    return agreement, notes


def build_report(tables: StudyTables, out_dir, *, fmt: str = "md", figures: bool = True, reference: str = "real",
                 seed: int = 0, n_perm: int = 9999, n_boot: int = 2000, margin: float = 0.5,
                 agreement: dict[str, pd.DataFrame] | None = None, store=None, image_root=None) -> Path:
    """Write ``report.md`` or ``report.html`` (plus PNG figures) into ``out_dir``; return the report path.

    When the study links images to files (images.csv paths; relative ones under ``image_root``) or ``store``
    is given, an Agreement section is added (:func:`agreement_section`); pass precomputed ``agreement``
    tables (:func:`human_eval.agreement.agreement_tables`) to skip the computation.
    """
    if fmt not in ("md", "html"):
        raise UsageError(f"report format must be 'md' or 'html', got {fmt!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = report_tables(tables, reference=reference, seed=seed, n_perm=n_perm, n_boot=n_boot, margin=margin)
    agr, agr_notes = agreement_section(tables, agreement, store=store, image_root=image_root)
    agr_keys = [(k, t) for k, t in _AGREEMENT_SECTIONS if k in agr]
    res.update({k: agr[k] for k, _ in agr_keys})
    figs = _figures(tables, res, out_dir, reference) if figures else {}
    r = tables.ratings
    head = (f"{len(r):,} ratings, {r['participant_id'].nunique()} participants, {r['image_id'].nunique():,} images, "
            f"sources: {', '.join(S.source_order(r, reference=reference))}; reference: {reference}; "
            f"seed {seed}; study hash {tables.content_hash[:12]}")
    sentences = _sentences(res, reference, margin) + agr_notes
    if fmt == "md":
        parts = ["# Human evaluation report", "", head, ""]
        parts += [f"- warning: {w}" for w in tables.warnings] + ([""] if tables.warnings else [])
        parts += ["## Recommended analysis", ""] + [f"- {s}" for s in sentences] + [""]
        for key, title in _SECTIONS + agr_keys:
            parts += [f"## {title}", "", _md_table(res[key]), ""]
            if key == "table2":
                parts += ["The paper's exact p matches the exact null distribution of U ignoring ties "
                          "(scipy `method=\"exact\"`); the tie-aware permutation p is reported beside it.", ""]
        for name, p in figs.items():
            parts += [f"![{name}]({p.name})", ""]
        path = out_dir / "report.md"
        path.write_text("\n".join(parts), encoding="utf-8")
    else:
        sections = [("analysis", "Recommended analysis"), *_SECTIONS, *agr_keys] + (
            [("figures", "Figures")] if figs else [])
        body = [f"<h1>Human evaluation report</h1><p>{html.escape(head)}</p>"]
        body += [f"<p class='warn'>warning: {html.escape(w)}</p>" for w in tables.warnings]
        body += ["<nav class='toc'><b>Contents</b><ol>"]
        body += [f"<li><a href='#{_anchor(k)}'>{html.escape(t)}</a></li>" for k, t in sections] + ["</ol></nav>"]
        body += [f"<h2 id='{_anchor('analysis')}'>Recommended analysis</h2><ul>"]
        body += [f"<li>{html.escape(s).replace('**', '')}</li>" for s in sentences] + ["</ul>"]
        for key, title in _SECTIONS + agr_keys:
            body += [f"<h2 id='{_anchor(key)}'>{html.escape(title)}</h2>", _html_table(res[key])]
        if figs:
            body += [f"<h2 id='{_anchor('figures')}'>Figures</h2>"]
            body += [f"<img src='{p.name}' alt='{name}'>" for name, p in figs.items()]
        path = out_dir / "report.html"
        path.write_text("<!doctype html>\n<html lang='en'><meta charset='utf-8'><title>Human evaluation</title>"
                        f"<style>{REPORT_CSS}</style>\n" + "\n".join(body) + "\n</html>\n", encoding="utf-8")
    return path
