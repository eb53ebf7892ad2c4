"""Which automatic metric should an echo researcher trust? One table across feature spaces and distances.

For every (feature space, metric) stored for a study's generators (``FD_dinov2``, ``CMMD``, ``FID``,
``KD_radiomics``, ``FD_radiomics_rel``, ``precision[dinov2]`` ...):

* **ranking agreement** — Kendall's tau between the metric's ranking of the generators and the clinicians',
  with a bootstrap CI over raters (:func:`human_eval.agreement.generator_ranking_ci`);
* **spread at small N** (:func:`small_n_spread`) — the metric on random subsets of N = 50, 100, 200, 400, 800
  generated images (reference fixed): its relative spread over draws, and how often the generator ranking at
  that N equals the ranking at the largest N (``stable_n``: the smallest N where it does in ≥ 90 % of draws);
* **response to faults** (:func:`fault_response`) — the metric for phantom images with increasing blur and
  speckle (the ladders of ``harness validate-metrics``): does it rise monotonically from the clean set?

:func:`trust_table` joins them (one row per space × metric); :func:`headline` says in one sentence which
spaces rank the generators like the clinicians and how sure that is; :func:`write_report` writes one HTML
page with the table and plots. :func:`agreement_table` (store + study name → DataFrame) is what a leaderboard
tab shows.

Numbers computed in a stand-in space (``random-*``: random-init weights) carry ``substitute=True`` in every
table and are marked in the page; they are never the published metric.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import DataError, UsageError

log = logging.getLogger(__name__)

__all__ = ["SIZES", "agreement_table", "cross_space_table", "fault_response", "headline", "metric_family",
           "results_utility_table", "small_n_spread", "spread_summary", "store_utility_table", "stored_per_image_dice", "tau_b_rows",
           "trust_table", "utility_headline", "utility_inputs", "utility_points", "utility_section", "utility_table", "write_report"]

SIZES = (50, 100, 200, 400, 800)
FAMILIES = ("FD", "KD", "MMD")  # the distances whose small-N spread and fault response are computed
_PUBLISHED = {"FID": "FD", "FID_inf": "FD_inf", "KID": "KD", "CMMD": "MMD"}


# naming ------------------------------------------------------------------------------------------------
def metric_family(metric: str, space: str | None) -> str:
    """The metric's family independent of its space: ``FID``/``FD_dinov2`` → ``FD``, ``FD_clip_rel`` → ``FD_rel``,
    ``KID`` → ``KD``, ``CMMD``/``MMD_radiomics`` → ``MMD``, ``precision[dinov2]`` → ``precision``."""
    if metric in _PUBLISHED:
        return _PUBLISHED[metric]
    base = metric.split("[", 1)[0]
    if space and f"_{space}" in base:
        return base.replace(f"_{space}", "", 1)
    return base


def _substitute(space: str) -> bool:
    """Whether ``space`` is a stand-in, from the extractor's own ``substitute`` flag (never guessed from the name)."""
    from harness.registry import features

    if not space or space not in features:
        return False
    try:
        return bool(getattr(features.get(space), "substitute", False))
    except UsageError:
        return False


# ranking agreement -----------------------------------------------------------------------------------------
def cross_space_table(store, tables, *, rng: np.random.Generator, n_boot: int = 1000, ci: float = 0.95,
                      exclude: tuple[str, ...] = ("real",)) -> pd.DataFrame:
    """Kendall's tau (with its rater-bootstrap CI) of every metric stored for the study's generators, by space.

    Only metrics computed in a feature space are ranked (the utility tasks' Dice/HD95 rows are the *targets* of
    :func:`utility_table`, not candidates here), and values describing the reference set rather than the
    generator (``vendi_reference``, ``ms_ssim_intra_reference``: same for every generator) are left out.

    Returns ``space, family, metric, substitute, n_generators, kendall_tau, ci_low, ci_high, p, n_raters,
    best_by_metric, best_by_humans, verdict, note``; ``verdict`` is ``agrees`` (CI above 0), ``disagrees``
    (CI below 0), ``unclear`` (CI includes 0) or ``n/a`` (fewer than 2 generators).
    """
    from human_eval.agreement import generator_ranking_ci, latest_metric_values

    cols = ["space", "family", "metric", "substitute", "n_generators", "kendall_tau", "ci_low", "ci_high", "p",
            "n_raters", "best_by_metric", "best_by_humans", "verdict", "note"]
    rated = sorted(set(tables.ratings["source"]) - set(exclude))
    values = latest_metric_values(store, rated)
    in_space = values["feature_space"].fillna("").astype(str) != ""
    of_reference = [metric_family(m, s).endswith("_reference") for m, s in zip(values["metric"], values["feature_space"])]
    values = values[in_space & ~np.asarray(of_reference, dtype=bool)]
    if values.empty:
        return pd.DataFrame(columns=cols)
    tau = generator_ranking_ci(values[["source", "metric", "value", "higher_is_better"]], tables.ratings, rng=rng,
                               n_boot=n_boot, ci=ci, exclude=tuple(exclude))
    space = values.drop_duplicates("metric").set_index("metric")["feature_space"].fillna("").astype(str)
    tau.insert(0, "space", tau["metric"].map(space))
    tau.insert(1, "family", [metric_family(m, s) for m, s in zip(tau["metric"], tau["space"])])
    subs = {s: _substitute(s) for s in tau["space"].unique()}
    tau.insert(3, "substitute", tau["space"].map(subs).astype(bool))
    tau["verdict"] = np.where(tau["kendall_tau"].isna(), "n/a", np.where(
        tau["ci_low"] > 0, "agrees", np.where(tau["ci_high"] < 0, "disagrees", "unclear")))
    return tau[cols].sort_values(["space", "family"]).reset_index(drop=True)


def agreement_table(store, study: str, *, seed: int = 0, n_boot: int = 1000,
                    exclude: tuple[str, ...] = ("real",)) -> pd.DataFrame:
    """The cross-space ranking table of a stored study (:func:`cross_space_table`), e.g. for a leaderboard tab."""
    from human_eval.db import load_study

    return cross_space_table(store, load_study(store, study), rng=np.random.default_rng(seed), n_boot=n_boot,
                             exclude=exclude)


# the distances on feature arrays -------------------------------------------------------------------------
def distance(family: str, gen: np.ndarray, ref: np.ndarray, *, ref_stats: Mapping | None = None) -> float:
    """One number of ``family`` (``FD``, ``KD`` or ``MMD``) without an interval (the tasks' pure functions)."""
    from tasks import cmmd as cmmd_mod
    from tasks import fid as fid_mod

    if family == "FD":
        return fid_mod.fid_from_features(gen, ref_stats if ref_stats is not None else ref, n_boot=0).value
    if family == "KD":
        return fid_mod.kid(gen, ref, subsets=20, n_boot=0).value
    if family == "MMD":
        return cmmd_mod.cmmd(gen, ref, n_boot=0).value
    raise UsageError(f"unknown distance family {family!r}; use one of {', '.join(FAMILIES)}")


def small_n_spread(gen: Mapping[str, np.ndarray], ref: np.ndarray, *, rng: np.random.Generator,
                   sizes: Sequence[int] = SIZES, draws: int = 5, families: Sequence[str] = FAMILIES) -> pd.DataFrame:
    """Each distance for random subsets of each generator's features at each size (reference fixed).

    Sizes above a generator's number of images are skipped for it. Returns ``family, source, n, draw, value``.
    """
    from tasks.fid import reference_stats

    if draws < 1:
        raise UsageError(f"small_n_spread: draws must be ≥ 1 (got {draws})")
    stats = reference_stats(ref) if "FD" in families else None
    rows = []
    for source, feats in sorted(gen.items()):
        feats = np.asarray(feats, np.float64)
        for n in sorted(set(int(s) for s in sizes)):
            if n > feats.shape[0] or n < 2:
                continue
            for draw in range(1 if n == feats.shape[0] else draws):
                sub = feats[np.sort(rng.choice(feats.shape[0], n, replace=False))]
                for fam in families:
                    rows.append({"family": fam, "source": source, "n": n, "draw": draw,
                                 "value": distance(fam, sub, ref, ref_stats=stats)})
    return pd.DataFrame(rows, columns=["family", "source", "n", "draw", "value"])


def spread_summary(long: pd.DataFrame, *, stable: float = 0.9) -> pd.DataFrame:
    """Per family and N: ``rel_spread`` (std / mean over draws, averaged over sources), ``ranking_stability`` (the
    fraction of draws whose source ranking equals the ranking of the mean values at the largest N), and per
    family ``stable_n``: the smallest N from which the stability stays ≥ ``stable`` (NaN if never)."""
    cols = ["family", "n", "rel_spread", "ranking_stability", "stable_n"]
    if long.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for fam, g in long.groupby("family"):
        top = g["n"].max()
        final = g[g["n"] == top].groupby("source")["value"].mean().sort_values().index.tolist()
        rows = []
        for n, gn in g.groupby("n"):
            stats = gn.groupby("source")["value"].agg(["mean", "std"])
            rel = float((stats["std"] / stats["mean"].abs().where(stats["mean"] != 0)).mean()) if len(gn) > 1 else np.nan
            same = []
            for _, gd in gn.groupby("draw"):
                if set(gd["source"]) == set(final):
                    same.append(gd.sort_values("value")["source"].tolist() == final)
            rows.append({"family": fam, "n": int(n), "rel_spread": rel,
                         "ranking_stability": float(np.mean(same)) if same else np.nan})
        frame = pd.DataFrame(rows).sort_values("n")
        ok = frame["ranking_stability"].fillna(0) >= stable
        stable_n = np.nan
        for i in range(len(frame)):
            if ok.iloc[i:].all():
                stable_n = float(frame["n"].iloc[i])
                break
        frame["stable_n"] = stable_n
        out.append(frame)
    return pd.concat(out, ignore_index=True)[cols]


def fault_response(space: str, *, n: int = 200, n_ref: int | None = None, size: int = 64, seed: int = 0,
                   blur: Sequence[float] = (0.5, 1.0, 2.0), speckle: Sequence[float] = (1.5, 2.0, 3.0),
                   families: Sequence[str] = FAMILIES, device: str = "auto",
                   extract: Callable[[list[np.ndarray]], np.ndarray] | None = None) -> pd.DataFrame:
    """Each distance between phantom sets with increasing blur / speckle and the clean reference set, in ``space``.

    The fault ladders are those of ``harness validate-metrics`` (the phantom's ``blur:<σ>`` and ``speckle:<s>``
    faults, clean first). Returns ``space, family, metric, fault, strength, value, monotone`` (``monotone``: the
    ladder, clean first, rises strictly; the same for every row of one fault).
    """
    from harness.data.phantom import PhantomSource
    from harness.registry import features
    from tasks.validation import _render

    ext = features.get(space)(device=device)
    if extract is None:
        ext.prepare()

        def extract(images):
            return np.asarray(ext.extract_batch(images), np.float64)

    def render(*inject, split="test", count=n):
        return _render(PhantomSource(size=size, seed=seed, inject=list(inject)), split, count)[0]

    ref = extract(render(split="reference", count=n_ref or n))
    clean = extract(render())
    rows = []
    for fault, ladder, clean_strength in (("blur", blur, 0.0), ("speckle", speckle, 1.0)):
        sets = [(clean_strength, clean)] + [(s, extract(render(f"{fault}:{s:g}"))) for s in ladder]
        for fam in families:
            vals = [(s, distance(fam, f, ref)) for s, f in sets]
            mono = bool(all(b[1] > a[1] for a, b in zip(vals, vals[1:])))
            rows += [{"space": space, "family": fam, "metric": ext.metric_name(fam), "fault": fault, "strength": s,
                      "value": v, "monotone": mono} for s, v in vals]
    return pd.DataFrame(rows, columns=["space", "family", "metric", "fault", "strength", "value", "monotone"])


def stored_features(store, sources: Sequence[str], space: str, *, reference_images: list[np.ndarray] | None = None,
                    max_n: int = max(SIZES), device: str = "auto") -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Features in ``space`` of the newest stored image set of each source's generator (``sd-lora`` counts as
    ``sd``), up to ``max_n`` images, and of the reference (``reference_images``, else the reference data spec
    recorded with those runs, first ``max_n`` images). Features go through the feature cache (keyed by the files'
    hashes and the extractor's fingerprint), so a second report re-extracts nothing. Sources without a stored image
    set are left out; the reference is None when neither is available."""
    from harness.data.base import open_data_spec
    from harness.io import list_images, read_image
    from harness.registry import features
    from human_eval.agreement import _features
    from human_eval.schema import canonical_source

    ext = features.get(space)(device=device)
    ext.prepare()
    latest = {}
    for run in store.runs():  # oldest first: the newest run of a source wins
        src = canonical_source(run.generator)
        if src in sources and run.imageset_path and (Path(run.imageset_path) / "images").is_dir():
            latest[src] = run
    gen = {}
    for src, run in sorted(latest.items()):
        files = list_images(Path(run.imageset_path) / "images")[:max_n]
        if len(files) >= 2:
            gen[src] = np.asarray(_features(ext, [read_image(f, mode="rgb") for f in files], files, True), np.float64)
    ref = None
    if reference_images is not None:
        ref = np.asarray(_features(ext, list(reference_images), None, False), np.float64)
    else:
        spec = next((r.reference for r in latest.values() if r.reference), None)
        if spec:
            source, split = open_data_spec(spec)
            images = [im for b in source.iter_batches(split, max_n) for im in b.images]
            ref = np.asarray(_features(ext, images, None, False), np.float64)
    return gen, ref


# the joined table and its headline -----------------------------------------------------------------------
def trust_table(ranking: pd.DataFrame, spread: Mapping[str, pd.DataFrame] | None = None,
                faults: pd.DataFrame | None = None, per_image: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`cross_space_table` joined with, per (space, family), ``stable_n`` and ``rel_spread_min_n`` (the
    relative spread at the smallest N) from ``spread`` (space → :func:`spread_summary`), ``monotone_blur`` /
    ``monotone_speckle`` from ``faults`` (:func:`fault_response` rows), and per space the best per-image
    Spearman rho with the ratings from ``per_image`` (``space, metric, spearman_rho``)."""
    t = ranking.copy()
    t["stable_n"] = np.nan
    t["rel_spread_min_n"] = np.nan
    t["monotone_blur"] = pd.Series([pd.NA] * len(t), dtype="boolean")
    t["monotone_speckle"] = pd.Series([pd.NA] * len(t), dtype="boolean")
    for i, row in t.iterrows():
        s = (spread or {}).get(row["space"])
        if s is not None and not s.empty:
            fs = s[s["family"] == row["family"]]
            if not fs.empty:
                t.at[i, "stable_n"] = fs["stable_n"].iloc[0]
                t.at[i, "rel_spread_min_n"] = fs.sort_values("n")["rel_spread"].iloc[0]
        if faults is not None and not faults.empty:
            ff = faults[(faults["space"] == row["space"]) & (faults["family"] == row["family"])]
            for fault in ("blur", "speckle"):
                fv = ff[ff["fault"] == fault]
                if not fv.empty:
                    t.at[i, f"monotone_{fault}"] = bool(fv["monotone"].iloc[0])
    if per_image is not None and not per_image.empty:
        best = per_image.dropna(subset=["spearman_rho"]).groupby("space")["spearman_rho"].max()
        t["per_image_best_rho"] = t["space"].map(best)
    return t


def headline(table: pd.DataFrame, n_raters: int | None = None) -> str:
    """One sentence: which spaces rank the generators like the clinicians, and how sure that is."""
    t = table[table["n_generators"] >= 2].dropna(subset=["kendall_tau"])
    if t.empty:
        return ("No stored metric covers two or more of the study's rated generators, so no ranking can be compared "
                "with the clinicians' yet: run `harness run` for the study's generators first.")
    raters = f" over {int(t['n_raters'].iloc[0])} raters" if "n_raters" in t and len(t) else ""
    gens = int(t["n_generators"].max())

    def label(r):
        return f"{r['metric']}{' (substitute space)' if r['substitute'] else ''}"

    agree = t[t["verdict"] == "agrees"].sort_values("kendall_tau", ascending=False)
    best = t.sort_values(["kendall_tau", "ci_low"], ascending=False).iloc[0]
    sure = (f"τ = {best['kendall_tau']:.2f}, 95% CI [{best['ci_low']:.2f}, {best['ci_high']:.2f}]{raters}, "
            f"{gens} generators")
    if not agree.empty:
        spaces = sorted(set(agree["space"]))
        names = ", ".join(label(r) for _, r in agree.head(4).iterrows())
        return (f"Ranking the generators like the clinicians (τ's rater-bootstrap CI above 0): {names} — in the "
                f"{', '.join(spaces)} space{'s' if len(spaces) > 1 else ''}; best {label(best)} ({sure}).")
    against = t[t["verdict"] == "disagrees"]
    tail = (f" {len(against)} metric(s) rank them against the clinicians ({', '.join(label(r) for _, r in against.head(3).iterrows())})."
            if not against.empty else "")
    return (f"No stored metric ranks the generators like the clinicians with confidence (every τ CI includes 0); "
            f"closest: {label(best)} ({sure}).{tail}")


# the page -----------------------------------------------------------------------------------------------
def _tau_forest(ax, t: pd.DataFrame, colour: str) -> None:
    """One row per metric of ``t`` (sorted by the caller): Kendall τ with its CI; substitute spaces grey and starred."""
    y = np.arange(len(t))
    lo = (t["kendall_tau"] - t["ci_low"]).clip(lower=0).fillna(0)
    hi = (t["ci_high"] - t["kendall_tau"]).clip(lower=0).fillna(0)
    colors = ["tab:grey" if s else colour for s in t["substitute"]]
    for yi, x, l_, h_, c in zip(y, t["kendall_tau"], lo, hi, colors):
        ax.errorbar([x], [yi], xerr=[[l_], [h_]], fmt="none", ecolor=c, capsize=3)
    ax.scatter(t["kendall_tau"], y, c=colors, zorder=3)
    ax.set_yticks(y, [f"{m}{' *' if s else ''}" for m, s in zip(t["metric"], t["substitute"])], fontsize=8)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlim(-1.05, 1.05)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _plots(table: pd.DataFrame, spread_long: Mapping[str, pd.DataFrame], faults: pd.DataFrame | None) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = []
    t = table.dropna(subset=["kendall_tau"])
    if not t.empty:
        t = t.sort_values("kendall_tau")
        fig, ax = plt.subplots(figsize=(7, 0.32 * len(t) + 1.2))
        _tau_forest(ax, t, "tab:blue")
        ax.set_xlabel("Kendall τ: metric ranking vs clinicians (95% CI over raters); * substitute space")
        out.append(("Ranking agreement per metric", _png(fig)))
    for space, long in (spread_long or {}).items():
        if long is None or long.empty:
            continue
        fams = list(long["family"].unique())
        fig, axes = plt.subplots(1, len(fams), figsize=(4 * len(fams), 3.2), squeeze=False)
        for ax, fam in zip(axes[0], fams):
            g = long[long["family"] == fam]
            for src, gs in g.groupby("source"):
                m = gs.groupby("n")["value"].agg(["mean", "min", "max"])
                ax.plot(m.index, m["mean"], marker="o", label=src)
                ax.fill_between(m.index, m["min"], m["max"], alpha=0.2)
            ax.set_xscale("log")
            ax.set_xlabel("N generated images")
            ax.set_title(f"{fam} [{space}]", fontsize=9)
        axes[0][0].legend(fontsize=7)
        out.append((f"Spread at small N ({space}): mean and range over subsets", _png(fig)))
    if faults is not None and not faults.empty:
        keys = list(faults.groupby(["space", "family"]).groups)
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), squeeze=False)
        for ax, fault in zip(axes[0], ("blur", "speckle")):
            for space, fam in keys:
                g = faults[(faults["space"] == space) & (faults["family"] == fam) & (faults["fault"] == fault)]
                if g.empty:
                    continue
                v = g["value"].to_numpy(float)
                scale = np.nanmax(np.abs(v)) or 1.0
                ax.plot(g["strength"], v / scale, marker="o", label=g["metric"].iloc[0])
            ax.set_xlabel(f"{fault} strength (first point: clean)")
            ax.set_ylabel("value / max")
        axes[0][0].legend(fontsize=7)
        out.append(("Response to phantom faults (normalised per metric)", _png(fig)))
    return out


def write_report(out_dir: Path, table: pd.DataFrame | None, *, title: str, headline_text: str,
                 spread_long: Mapping[str, pd.DataFrame] | None = None, faults: pd.DataFrame | None = None,
                 extra_tables: Mapping[str, pd.DataFrame] | None = None,
                 utility: pd.DataFrame | None = None, utility_points: pd.DataFrame | None = None) -> Path:
    """One self-contained HTML page (``trust.html``: headline, the table, plots embedded as PNG) plus
    ``trust_table.csv``; with ``utility`` (:func:`utility_table` rows, possibly empty) a section "Which distance
    predicts downstream Dice" (headline per target, table, tau plot, and with ``utility_points`` the headline
    distance against the Dice per generator) and ``utility_table.csv``. ``table=None``:
    the utility section alone (no clinician study). Written to temporary files and renamed. Returns the page's
    path."""
    from harness.csvsafe import csv_bytes
    from harness.io import atomic_write_bytes

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the report folder {out_dir}: {exc.strerror or exc}") from exc
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;"
             "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}.sub{color:#777}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><p><b>{html.escape(headline_text)}</b></p>"]
    if table is not None:
        parts += _trust_section(table, spread_long, faults, extra_tables)
    if utility is not None:
        parts += utility_section(utility, utility_points)
    parts.append("</body></html>")
    page = out_dir / "trust.html"
    if table is not None:
        atomic_write_bytes(out_dir / "trust_table.csv", table.to_csv(index=False).encode())
    if utility is not None:
        atomic_write_bytes(out_dir / "utility_table.csv", csv_bytes(utility))
    atomic_write_bytes(page, "\n".join(parts).encode())
    return page


def _fmt(table: pd.DataFrame) -> dict:
    return {c: (lambda v: "" if pd.isna(v) else f"{v:.3g}") for c in table.columns
            if pd.api.types.is_float_dtype(table[c])}


def _trust_section(table, spread_long, faults, extra_tables) -> list[str]:
    parts = ["<p>τ: Kendall's tau-b between the generator ranking by the metric and by the clinicians' mean rating; CI: "
             "percentile bootstrap over raters. <i>stable_n</i>: smallest N from which ≥ 90% of random subsets rank the "
             "generators as the largest N does. <i>monotone_*</i>: the metric rises strictly with phantom blur / "
             "speckle strength. Rows with substitute = True are computed with random-init stand-in networks: NOT the "
             "published metric.</p>",
             table.to_html(index=False, formatters=_fmt(table), escape=True, na_rep="")]
    for name, df in (extra_tables or {}).items():
        parts += [f"<h2>{html.escape(name)}</h2>", df.to_html(index=False, escape=True, na_rep="", float_format="%.4g")]
    for caption, png in _plots(table, spread_long or {}, faults):
        parts += [f"<h2>{html.escape(caption)}</h2>", f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{png}'>"]
    return parts


UTILITY_EXPLAINED = (
    "τ: Kendall's tau-b between the generators' ranking by the distance (oriented: +1 = the generator the distance "
    "calls better has the higher Dice) and by their stored mean Dice. p: scipy's exact two-sided p; min_p: the "
    "smallest p any ranking of n generators can reach (2 / n!), so with few generators no τ can be significant. "
    "CI: percentile bootstrap of τ over the measurement noise of these generators' numbers (Dice resampled as the "
    "uncertainty column says; distances from their stored CIs): how sure the ranking of these generators is, not "
    "how τ would carry over to other generators. The baselines real (trained on real images) and labelmap (no "
    "learning) are generators with a Dice too and are included (column baselines). Rows with substitute = True "
    "are computed in stand-in spaces (random-init networks): NOT the published metric.")


def utility_section(utility: pd.DataFrame, points: pd.DataFrame | None = None) -> list[str]:
    """The HTML of "Which distance predicts downstream Dice": one headline per target, the table, the tau plot and
    (with ``points``, :func:`utility_points`) each headline distance against the Dice, one point per generator."""
    parts = ["<h2 id='utility'>Which distance predicts downstream Dice</h2>"]
    targets = [t for t in UTILITY_TASKS if not utility.empty and t in set(utility["target"])] or ["seg-utility"]
    parts += [f"<p><b>{html.escape(utility_headline(utility, t))}</b></p>" for t in targets]
    if utility.empty or not (utility["n_generators"] >= 2).any():
        return parts
    parts += [f"<p>{html.escape(UTILITY_EXPLAINED)}</p>",
              utility.to_html(index=False, formatters=_fmt(utility), escape=True, na_rep="")]
    png = _utility_plot(utility)
    if png:
        cap = "Kendall τ of each distance vs downstream Dice (95% CI over the measurement noise)"
        parts += [f"<h3>{cap}</h3>", f"<img alt='{html.escape(cap)}' src='data:image/png;base64,{png}'>"]
    if points is not None and not points.empty:
        cap = "The headline distance against the mean Dice, one point per generator (95% CIs)"
        parts += [f"<h3>{cap}</h3>", f"<img alt='{html.escape(cap)}' src='data:image/png;base64,{_points_plot(points)}'>"]
    return parts


def _points_plot(points: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    groups = list(points.groupby(["target", "metric"], sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.8), squeeze=False)
    for ax, ((target, metric), g) in zip(axes[0], groups):
        x, y = g["value"].to_numpy(float), g["dice"].to_numpy(float)
        xe = np.abs(np.stack([x - g["ci_low"].to_numpy(float), g["ci_high"].to_numpy(float) - x]))
        ye = np.abs(np.stack([y - g["dice_low"].to_numpy(float), g["dice_high"].to_numpy(float) - y]))
        ax.errorbar(x, y, xerr=np.nan_to_num(xe), yerr=np.nan_to_num(ye), fmt="o", capsize=3)
        for src, xi, yi in zip(g["source"], x, y):
            ax.annotate(str(src), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(str(metric))
        ax.set_ylabel(f"{target} mean Dice")
    fig.tight_layout()
    return _png(fig)


def _utility_plot(utility: pd.DataFrame) -> str | None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    t = utility.dropna(subset=["kendall_tau"])
    if t.empty:
        return None
    targets = list(dict.fromkeys(t["target"]))
    fig, axes = plt.subplots(1, len(targets), figsize=(6 * len(targets), 0.32 * t.groupby("target").size().max() + 1.4),
                             squeeze=False)
    for ax, target in zip(axes[0], targets):
        g = t[t["target"] == target].sort_values("kendall_tau")
        _tau_forest(ax, g, "tab:green")
        ax.set_title(f"{target}: n = {int(g['n_generators'].max())} generators", fontsize=9)
        ax.set_xlabel("Kendall τ vs mean Dice (+1: better distance = higher Dice); * substitute space")
    return _png(fig)


# which distance predicts downstream Dice -----------------------------------------------------------------------
UTILITY_TASKS = ("seg-utility", "anatomy-faithfulness")
#: tasks whose results are outcomes (Dice, accuracy), never candidate distances
_OUTCOME_TASKS = ("seg-utility", "seg_utility", "anatomy-faithfulness", "condition-fidelity")
BASELINES = ("real", "labelmap")
UTILITY_COLUMNS = ["target", "space", "family", "metric", "substitute", "n_generators", "generators", "baselines",
                   "kendall_tau", "p", "p_method", "min_p", "ci_low", "ci_high", "n_boot_used", "uncertainty",
                   "best_by_metric", "best_by_dice", "verdict", "note"]


def tau_b_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between the rows of ``x`` and ``y`` (both (B, n)), vectorised over B; NaN where one
    row is constant. Equal to ``scipy.stats.kendalltau(x[b], y[b]).statistic`` row by row."""
    x, y = np.atleast_2d(np.asarray(x, float)), np.atleast_2d(np.asarray(y, float))
    i, j = np.triu_indices(x.shape[1], k=1)
    dx, dy = np.sign(x[:, i] - x[:, j]), np.sign(y[:, i] - y[:, j])
    n0 = i.size
    den = np.sqrt((n0 - (dx == 0).sum(axis=1)) * (n0 - (dy == 0).sum(axis=1)).astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (dx * dy).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)


def _newest(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    order = "order" if "order" in frame.columns else "created" if "created" in frame.columns else None
    if order is not None:
        frame = frame.sort_values(order, kind="stable")
    return frame.drop_duplicates(keys, keep="last")


def utility_inputs(results: pd.DataFrame, *, target: str = "seg-utility", data: str | None = None,
                   exclude: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From a long results frame (``Store.results_frame()`` or the leaderboard's ``load_results``: one row per
    stored result, oldest first), the newest ``mean_dice`` of ``target`` per generator (canonical source name, plus
    ``@<first 8 of the checkpoint hash>`` when the run has a checkpoint: each checkpoint is a point of the ranking;
    not-applicable rows have no value and are left out) and, for those generators, the newest value of every
    metric stored in a feature space (FD/FID, FD∞, KD/KID, CMMD/MMD, FD_*_rel, precision/recall/density/coverage,
    Vendi …; named as :func:`human_eval.agreement.latest_metric_values` names them) from runs on the same data
    source as the generator's Dice. ``data`` restricts both to one data source.

    Returns ``(dice, distances)``: ``source, run_id, data, value, ci_low, ci_high, n`` and ``source, metric,
    space, value, ci_low, ci_high, higher_is_better, substitute``."""
    from human_eval.agreement import _metric_label
    from human_eval.schema import canonical_source

    dcols = ["source", "run_id", "data", "value", "ci_low", "ci_high", "n"]
    mcols = ["source", "metric", "space", "value", "ci_low", "ci_high", "higher_is_better", "substitute"]
    if results is None or results.empty:
        return pd.DataFrame(columns=dcols), pd.DataFrame(columns=mcols)
    r = results[pd.to_numeric(results["value"], errors="coerce").notna()].copy()
    r["source"] = r["generator"].map(canonical_source)
    r = r[~r["source"].isin(list(exclude))]
    ck = next((c for c in ("checkpoint_hash", "checkpoint") if c in r.columns), None)
    if ck is not None:  # two checkpoints of one generator are two points of the ranking
        tag = r[ck].astype(object).where(r[ck].notna() & ~r[ck].isin(["", "—"]), None)
        r["source"] = [s if t is None else f"{s}@{str(t)[:8]}" for s, t in zip(r["source"], tag)]
    if "data" not in r.columns:
        r["data"] = ""
    r["data"] = r["data"].fillna("").astype(str)
    if data is not None:
        r = r[r["data"] == data]
    for c in ("ci_low", "ci_high", "n"):
        if c not in r.columns:
            r[c] = np.nan
    dice = _newest(r[(r["task"] == target) & (r["metric"] == "mean_dice")], ["source"])
    dice = dice[dcols].sort_values("source").reset_index(drop=True)
    space = r["feature_space"].fillna("").astype(str).replace("none", "")
    of_reference = r["metric"].astype(str).str.endswith("_reference")  # the reference set's own value: no ranking
    m = r[(space != "") & ~r["task"].isin(_OUTCOME_TASKS) & ~of_reference].copy()
    m["space"] = space[m.index]
    pairs = set(zip(dice["source"], dice["data"]))
    m = m[[(s, d) in pairs for s, d in zip(m["source"], m["data"])]]
    if m.empty:
        return dice, pd.DataFrame(columns=mcols)
    m["metric"] = [_metric_label(a, s) for a, s in zip(m["metric"], m["space"])]
    m = _newest(m, ["source", "metric"])
    subs = {s: _substitute(s) for s in m["space"].unique()}
    flag = m["substitute"].fillna(False).astype(bool) if "substitute" in m.columns else False
    m["substitute"] = m["space"].map(subs).astype(bool) | flag
    m["higher_is_better"] = m["higher_is_better"].astype(bool)
    return dice, m[mcols].sort_values(["metric", "source"]).reset_index(drop=True)


def stored_per_image_dice(store, run_ids: Sequence[str], target: str = "seg-utility"
                          ) -> dict[str, tuple[np.ndarray | None, np.ndarray]]:
    """Per-image mean Dice of stored runs, ``run_id → (image keys, values)``: seg-utility's per-image CSV artifact
    (``seg_utility_per_image``: ``reference_index, mean_dice``; keys = reference indices, so runs on the same
    reference are paired) or anatomy-faithfulness's ``details["per_image_mean_dice"]`` (keys None: each generator's
    own generated images, bootstrapped independently). Runs whose values are not readable (artifact moved) are left
    out."""
    import csv

    from sqlalchemy import select

    from harness.store import Artifact, Result

    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    ids = [str(r) for r in run_ids]
    if not ids:
        return out
    with store.session() as s:
        if target == "anatomy-faithfulness":
            rows = s.execute(select(Result.run_id, Result.details).where(
                Result.run_id.in_(ids), Result.task == target, Result.metric == "mean_dice")).all()
            for run_id, details in rows:
                vals = (details or {}).get("per_image_mean_dice")
                if vals:  # each generator's own images: never paired across generators
                    out[run_id] = (None, np.array([np.nan if v is None else v for v in vals], float))
            return out
        rows = s.execute(select(Artifact.run_id, Artifact.path).where(
            Artifact.run_id.in_(ids), Artifact.kind == "seg_utility_per_image")).all()
    for run_id, path in rows:
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                recs = list(csv.DictReader(fh))
            keys = np.array([float(x["reference_index"]) for x in recs])
            vals = np.array([float(x["mean_dice"]) if x["mean_dice"] else np.nan for x in recs])
        except (OSError, KeyError, ValueError) as exc:
            log.info("per-image Dice of run %s not readable (%s): the interval resamples the stored CI", run_id, exc)
            continue
        if len(vals):
            out[run_id] = (keys, vals)
    return out


def _dice_draws(dice: pd.DataFrame, per_image: Mapping | None, rng: np.random.Generator, n_boot: int,
                z: float) -> tuple[np.ndarray, str]:
    """(n_boot, n generators) resampled mean Dice and how: a bootstrap over each run's test images (paired, i.e.
    the same resampled images for every generator, when all runs share the same image keys) when every run's
    per-image values are at hand, else normal draws with the stored CI's half-width / z as SD."""
    runs = list(dice["run_id"])
    per = [per_image.get(r) for r in runs] if per_image else [None] * len(runs)
    if per and all(p is not None for p in per):
        if per[0][0] is not None and all(p[0] is not None and np.array_equal(np.sort(per[0][0]), np.sort(p[0]))
                                         for p in per):
            aligned = np.stack([p[1][np.argsort(p[0], kind="stable")] for p in per], axis=1)  # (n_images, n_gen)
            idx = rng.integers(0, aligned.shape[0], (n_boot, aligned.shape[0]))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                draws = np.stack([np.nanmean(aligned[idx, g], axis=1) for g in range(aligned.shape[1])], axis=1)
            return draws, f"paired bootstrap over the {aligned.shape[0]} shared test images' per-image Dice"
        cols = []
        for _, vals in per:
            idx = rng.integers(0, len(vals), (n_boot, len(vals)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                cols.append(np.nanmean(vals[idx], axis=1))
        return np.stack(cols, axis=1), "bootstrap over each run's images' per-image Dice (independent)"
    return _ci_draws(dice, rng, n_boot, z), "normal draws from each stored Dice CI (half-width / 1.96 as SD)"


def _ci_draws(frame: pd.DataFrame, rng: np.random.Generator, n_boot: int, z: float) -> np.ndarray:
    v = frame["value"].to_numpy(float)
    half = (pd.to_numeric(frame["ci_high"], errors="coerce") - pd.to_numeric(frame["ci_low"], errors="coerce")).to_numpy(float) / 2
    sd = np.where(np.isfinite(half) & (half > 0), half / z, 0.0)
    return v[None, :] + rng.standard_normal((n_boot, len(v))) * sd[None, :]


def utility_table(dice: pd.DataFrame, distances: pd.DataFrame, *, rng: np.random.Generator, n_boot: int = 1000,
                  ci: float = 0.95, target: str = "seg-utility", per_image: Mapping | None = None) -> pd.DataFrame:
    """Which distance predicts downstream Dice: per (space, metric), Kendall's tau between the metric's ranking
    of the generators and their mean Dice (``dice``/``distances`` as :func:`utility_inputs` returns them).

    tau is scipy's tau-b between the metric oriented so that larger = better (sign-flipped when lower is better)
    and the mean Dice: +1 means the generator the distance calls better always has the higher Dice. ``p`` is
    scipy's exact two-sided p (``method="exact"``; the asymptotic one when values tie), and ``min_p`` the
    smallest p any ranking of n generators can reach (2 / n!: 0.33 for 3, 0.083 for 4, 0.017 for 5): with few
    generators no tau is "significant", and the table says so.

    The interval (``ci_low``, ``ci_high``) is a percentile bootstrap of tau over the measurement noise of these
    generators' numbers: each replicate redraws every generator's mean Dice (a bootstrap over its test images'
    per-image Dice when ``per_image`` has them for every run — ``run_id → (image keys, values)``, paired when
    all runs were tested on the same images; otherwise normal draws with the stored CI's half-width / z as SD)
    and every distance (normal draws from its stored CI, fixed when none is stored). It says how sure the
    ranking of *these* generators is, not how the tau would generalise to other generators. Baselines (``real``,
    ``labelmap``) are generators with a Dice too and are included (listed in ``baselines``).

    ``verdict``: ``predicts`` (CI above 0), ``inverts`` (CI below 0), ``unclear``, ``n/a`` (< 2 generators).
    """
    from math import factorial

    from scipy import stats as sps

    if n_boot < 1 or not 0 < ci < 1:
        raise UsageError(f"utility_table: n_boot must be ≥ 1 and ci in (0, 1) (got {n_boot}, {ci})")
    dice = dice.dropna(subset=["value"]).reset_index(drop=True)
    if dice.empty or distances.empty:
        return pd.DataFrame(columns=UTILITY_COLUMNS)
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + ci / 2))
    dice_draws, how = _dice_draws(dice, per_image, rng, n_boot, z)
    col = {s: i for i, s in enumerate(dice["source"])}
    alpha = (1 - ci) / 2
    rows = []
    for metric, g in distances.groupby("metric", sort=True):
        g = g[g["source"].isin(col)].drop_duplicates("source").sort_values("source")
        n = len(g)
        space = str(g["space"].iloc[0]) if n else str(distances.loc[distances["metric"] == metric, "space"].iloc[0])
        sub = bool(distances.loc[distances["metric"] == metric, "substitute"].any())
        sources = list(g["source"])
        row = {"target": target, "space": space, "family": metric_family(metric, space), "metric": metric,
               "substitute": sub, "n_generators": n, "generators": ", ".join(sources),
               "baselines": ", ".join(s for s in sources if s in BASELINES), "kendall_tau": np.nan, "p": np.nan,
               "p_method": "", "min_p": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_boot_used": 0,
               "uncertainty": how, "best_by_metric": "", "best_by_dice": "", "verdict": "n/a", "note": ""}
        if n < 2:
            row["note"] = f"insufficient data ({n} generator(s) with both this metric and a {target} Dice)"
            rows.append(row)
            continue
        sign = 1.0 if bool(g["higher_is_better"].iloc[0]) else -1.0
        score = sign * g["value"].to_numpy(float)
        d = dice.set_index("source").loc[sources, "value"].to_numpy(float)
        ties = len(set(score)) < n or len(set(d)) < n
        k = sps.kendalltau(score, d, method="asymptotic" if ties else "exact")
        reps = tau_b_rows(sign * _ci_draws(g, rng, n_boot, z), dice_draws[:, [col[s] for s in sources]])
        reps = reps[np.isfinite(reps)]
        lo, hi = (np.quantile(reps, [alpha, 1 - alpha]) if reps.size else (np.nan, np.nan))
        verdict = "unclear" if not np.isfinite(k.statistic) else \
            "predicts" if lo > 0 else "inverts" if hi < 0 else "unclear"
        notes = []
        if n < 5:
            notes.append(f"{n} generators: p cannot go below {2 / factorial(n):.2g}")
        if ties:
            notes.append("tied values: asymptotic p")
        row.update(kendall_tau=float(k.statistic), p=float(k.pvalue), p_method="asymptotic" if ties else "exact",
                   min_p=2 / factorial(n), ci_low=float(lo), ci_high=float(hi), n_boot_used=int(reps.size),
                   best_by_metric=sources[int(np.argmax(score))], best_by_dice=sources[int(np.argmax(d))],
                   verdict=verdict, note="; ".join(notes))
        rows.append(row)
    return pd.DataFrame(rows, columns=UTILITY_COLUMNS).sort_values(["space", "family", "metric"]).reset_index(drop=True)


def results_utility_table(results: pd.DataFrame, *, targets: Sequence[str] = UTILITY_TASKS, data: str | None = None,
                          exclude: Sequence[str] = (), seed: int = 0, n_boot: int = 1000, ci: float = 0.95,
                          per_image: Callable[[list[str], str], Mapping] | None = None) -> pd.DataFrame:
    """:func:`utility_table` for every target task over a long results frame (:func:`utility_inputs`), e.g. the
    leaderboard's loaded results; ``per_image(run_ids, target)`` supplies per-image Dice when it can."""
    parts = []
    for i, target in enumerate(targets):
        dice, dist = utility_inputs(results, target=target, data=data, exclude=exclude)
        per = per_image(list(dice["run_id"]), target) if per_image is not None else None
        parts.append(utility_table(dice, dist, rng=np.random.default_rng([seed, i]), n_boot=n_boot, ci=ci,
                                   target=target, per_image=per))
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=UTILITY_COLUMNS)


def store_utility_table(store, *, targets: Sequence[str] = UTILITY_TASKS, data: str | None = None,
                        exclude: Sequence[str] = (), seed: int = 0, n_boot: int = 1000, ci: float = 0.95) -> pd.DataFrame:
    """:func:`results_utility_table` over the store's results, with per-image Dice read back by
    :func:`stored_per_image_dice` (so the interval is a bootstrap over test images when they are on disk)."""
    return results_utility_table(store.results_frame(), targets=targets, data=data, exclude=exclude, seed=seed,
                                 n_boot=n_boot, ci=ci,
                                 per_image=lambda runs, target: stored_per_image_dice(store, runs, target))


def _best(t: pd.DataFrame) -> pd.Series:
    """The row a headline names: highest tau, then the higher CI low end, a real space before a substitute."""
    return t.sort_values(["kendall_tau", "ci_low", "substitute", "metric"], ascending=[False, False, True, True]).iloc[0]


def utility_points(results: pd.DataFrame, table: pd.DataFrame, *, data: str | None = None,
                   exclude: Sequence[str] = ()) -> pd.DataFrame:
    """For each target of ``table``, the generators' values of the distance its headline names against their mean
    Dice (what the page's scatter shows): ``target, metric, source, value, ci_low, ci_high, dice, dice_low,
    dice_high``."""
    cols = ["target", "metric", "source", "value", "ci_low", "ci_high", "dice", "dice_low", "dice_high"]
    out = []
    for target in [t for t in UTILITY_TASKS if not table.empty and t in set(table["target"])]:
        t = table[(table["target"] == target) & (table["n_generators"] >= 2)].dropna(subset=["kendall_tau"])
        if t.empty:
            continue
        metric = _best(t)["metric"]
        dice, dist = utility_inputs(results, target=target, data=data, exclude=exclude)
        d = dist[dist["metric"] == metric].merge(
            dice.rename(columns={"value": "dice", "ci_low": "dice_low", "ci_high": "dice_high"})[
                ["source", "dice", "dice_low", "dice_high"]], on="source")
        out.append(d.assign(target=target)[cols])
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)


def utility_headline(table: pd.DataFrame, target: str = "seg-utility") -> str:
    """One sentence: which distance ranks the generators by downstream Dice best, and how sure that is."""
    short = {"seg-utility": "downstream Dice", "anatomy-faithfulness": "anatomy faithfulness"}.get(target, target)
    what = {"seg-utility": "seg-utility: a segmenter trained on the generated images, tested on real ones",
            "anatomy-faithfulness": "anatomy-faithfulness: a real-trained segmenter's Dice on the generated images"
            }.get(target, target)
    t = table[table["target"] == target] if not table.empty else table
    t = t[t["n_generators"] >= 2].dropna(subset=["kendall_tau"]) if not t.empty else t
    if t.empty:
        return (f"Fewer than 2 generators have both a stored {target} mean Dice and a stored distance, so no distance "
                f"can be compared with {short} yet: run `harness run --generator G --task {target}` (the real and "
                "labelmap baselines count) and a distance task for the same generators.")
    best = _best(t)
    lab = f"{best['metric']}{' (substitute space)' if best['substitute'] else ''}"
    n = int(best["n_generators"])
    base = f" incl. the baselines {best['baselines']}" if best["baselines"] else ""
    n_pred = int((t["verdict"] == "predicts").sum())
    return (f"{lab} ranks the generators by {short} with τ = {best['kendall_tau']:.2f} (95% CI "
            f"[{best['ci_low']:.2f}, {best['ci_high']:.2f}] over the measurement noise; exact p = {best['p']:.2g}, and "
            f"with {n} generators{base} no p can go below {best['min_p']:.2g}"
            f"{', so no ranking of them can be significant' if best['min_p'] >= 0.05 else ''}); {what}. {n_pred} of "
            f"{len(t)} stored distances have a CI above 0.")
