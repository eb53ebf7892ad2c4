"""The leaderboard table: stored results pivoted into one row per (generator, checkpoint), pure pandas.

What a visitor sees first, and why:

- **Baselines are reference rows**, never ranked or starred: a generator that declares itself a baseline
  (``real``: "noise floor", ``labelmap``: "no-learning floor") is placed above (the best baseline) or below
  (the others) the ranked rows, labelled with its role.
- **Demo runs are out of the ranked view by default**: results in a stand-in feature space (the stored
  ``substitute`` flag) and runs of stand-in generators (tiny presets, the tiny random SD base) enter the
  table only with ``Filters(include_demo=True)``, and then carry a "demo" mark.
- **Columns by importance**: the FID/FD family, utility (segmentation Dice), CMMD, diversity, colour shift,
  memorisation; one *headline* metric per task for the default view (:attr:`Table.headline`), the rest on
  request.
- **Readable cells**: 3 significant digits, ``value ± half-width`` of the 95% CI (``value [low, high]`` when
  asymmetric), via :mod:`harness.formatting`; each column has a tooltip (meaning, direction, feature
  space, N).
- **Fraction of the way** (:meth:`Table.fraction`): per column, where a generator lies between the
  no-learning floor (0) and the noise floor (1), when both baselines have a value.
- **Fraction of real** (:meth:`Table.real_fraction`): beside the seg-utility mean Dice, the share of the
  ``real`` generator's mean Dice a generator's synthetic training data reaches (always shown).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.formatting import interval

# ---------------------------------------------------------------------------------------- metric facts
#: Task → importance rank (FID/FD family, utility, CMMD, diversity, colour shift, memorisation).
TASK_RANK = {"fid": 0, "seg-utility": 1, "seg_utility": 1, "anatomy-faithfulness": 1.5, "condition-fidelity": 1.6,
             "cmmd": 2, "diversity": 3, "color-shift": 4, "color_shift": 4, "memorization": 5}
#: Task → its headline metric (a regular expression on the stored metric name); other tasks: the first stored.
HEADLINE = {"fid": r"(FID|FD_[^_]+)", "seg-utility": r"mean_dice", "seg_utility": r"mean_dice",
            "anatomy-faithfulness": r"mean_dice", "condition-fidelity": r"condition_accuracy",
            "cmmd": r"C?MMD.*", "diversity": r"recall", "color-shift": r"color_shift_fraction",
            "color_shift": r"color_shift_fraction", "memorization": r"near_copy_fraction"}
#: Feature spaces in the order a headline prefers them.
SPACE_PRIORITY = ("inception", "dinov2", "clip", "radiomics", "pixels", "none")

MEANINGS = [  # (metric-name pattern, what it is)
    (r"FID_rel|FD_.*_rel", "relative FD: FD(generated, reference) / FD(real half, real half) at equal N (1 = as far as real images are)"),
    (r"FID_inf|FD_.*_inf", "Fréchet distance extrapolated to infinitely many images (FD∞: fit of FD_N = a + k/N)"),
    (r"FID", "Fréchet Inception Distance between Gaussian fits of generated and reference features"),
    (r"FD_.*", "Fréchet distance between Gaussian fits of generated and reference features"),
    (r"KID|KD_.*", "kernel distance: unbiased MMD² with a cubic polynomial kernel, mean over subsets"),
    (r"C?MMD.*", "maximum mean discrepancy (Gaussian kernel) between generated and reference embeddings"),
    (r"mean_dice|dice_.*", "Dice of a segmentation model (seg-utility: trained on generated images, tested on real ones; "
                           "anatomy-faithfulness: a real-trained model on generated images vs their label maps)"),
    (r"hd95_.*", "95th-percentile Hausdorff distance of the segmentation (pixels)"),
    (r"condition_accuracy", "share of generated images a real-trained classifier assigns the requested condition"),
    (r"precision", "share of generated images inside the reference manifold (fidelity; Naeem et al. 2020)"),
    (r"recall", "share of reference images inside the generated manifold (mode coverage; Naeem et al. 2020)"),
    (r"density", "how densely generated images populate reference neighbourhoods (Naeem et al. 2020)"),
    (r"coverage", "share of reference neighbourhoods holding a generated image (Naeem et al. 2020)"),
    (r"vendi_reference", "Vendi score of the reference set, for comparison"),
    (r"vendi", "Vendi score: the effective number of distinct images"),
    (r"ms_ssim_intra_reference", "MS-SSIM between random pairs of reference images, for comparison"),
    (r"ms_ssim_intra", "mean MS-SSIM between random pairs of generated images (lower = more diverse)"),
    (r"color_shift_fraction", "share of images whose sector carries a colour tint (echo is gray)"),
    (r"gray_level_w1", "Wasserstein-1 distance between gray-level histograms of generated and reference images"),
    (r"sector_departure_fraction", "share of images with content outside the ultrasound sector"),
    (r"near_copy_fraction", "share of generated images that are near-copies of training images"),
    (r"authenticity", "share of generated images farther from training images than training images are from "
                      "each other (Alaa et al. 2022)"),
    (r"train_nn_distance_ratio", "distance to the nearest training image relative to the training set's own "
                                 "nearest-neighbour distances"),
]


def meaning(metric: str) -> str:
    for pattern, text in MEANINGS:
        if re.fullmatch(pattern, metric):
            return text
    return metric.replace("_", " ")


def metric_header(metric: str, feature_space: str | None, higher_is_better: bool, substitute: bool = False) -> str:
    """Column key: metric name, arrow (↑ higher / ↓ lower is better), feature space, demo label."""
    arrow = "↑" if higher_is_better else "↓"
    space = feature_space or "none"
    label = f"{space}, DEMO: stand-in features" if substitute else space
    return f"{metric} {arrow} [{label}]"


def short_label(metric: str, feature_space: str | None, higher_is_better: bool, substitute: bool) -> str:
    """What the column header shows: the metric (its name already says the space for FD_<space>/KD_<space>),
    the space in parentheses when it does not, the direction arrow and a demo mark."""
    arrow = "↑" if higher_is_better else "↓"
    space = feature_space or "none"
    name = metric if space in ("none", "pixels") or space in metric else f"{metric} ({space})"
    return f"{name} {arrow}" + (" · demo" if substitute else "")


def task_rank(task: str, metric: str) -> float:
    if task in TASK_RANK:
        return TASK_RANK[task]
    if re.match(r"(FID|FD|KID|KD)(_|$)", metric):
        return 0
    if re.match(r"C?MMD", metric) or "cmmd" in task:
        return 2
    if "seg" in task or "utility" in task or metric.startswith("dice"):
        return 1
    return 6


# ---------------------------------------------------------------------------------------------- filters
@dataclass(frozen=True)
class Filters:
    """Which results enter the table; ``None`` means no restriction. Demo results (stand-in features or
    generators) enter only with ``include_demo``."""

    data: Sequence[str] | None = None
    feature_space: Sequence[str] | None = None
    n: tuple[int, int] | None = None  # inclusive range of the run's N
    dates: tuple[dt.date, dt.date] | None = None  # inclusive range of the run's start date (UTC)
    include_demo: bool = False


def is_demo(results: pd.DataFrame) -> pd.Series:
    """Results made with a stand-in: a substitute feature space or a stand-in generator."""
    return results["substitute"].astype(bool) | results["stand_in"].notna()


def apply_filters(results: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    keep = np.ones(len(results), dtype=bool)
    if filters.data is not None:
        keep &= results["data"].isin(list(filters.data)).to_numpy()
    if filters.feature_space is not None:
        keep &= results["feature_space"].isin(list(filters.feature_space)).to_numpy()
    if filters.n is not None:
        keep &= results["run_n"].between(filters.n[0], filters.n[1]).to_numpy()
    if filters.dates is not None:
        day = results["started_at"].dt.date
        keep &= ((day >= filters.dates[0]) & (day <= filters.dates[1])).to_numpy()
    if not filters.include_demo:
        keep &= ~is_demo(results).to_numpy()
    return results[keep]


# ------------------------------------------------------------------------------------------------ table
@dataclass(frozen=True)
class Column:
    header: str  # unique key: "metric ↓ [space]"
    metric: str
    task: str
    feature_space: str
    higher_is_better: bool
    substitute: bool
    headline: bool = False
    n: tuple[int, int] | None = None  # smallest and largest N of the column's results
    label: str = ""

    @property
    def help(self) -> str:
        """The header tooltip: what the metric is, which direction is better, the feature space, N."""
        better = "higher is better" if self.higher_is_better else "lower is better"
        space = "pixels / image statistics (no feature network)" if self.feature_space in ("none", "pixels") \
            else f"{self.feature_space} features"
        if self.substitute:
            space += " (DEMO: a stand-in network with random weights; not comparable to published numbers)"
        n = "" if self.n is None else (f" N = {self.n[0]:,} generated images." if self.n[0] == self.n[1]
                                        else f" N = {self.n[0]:,}–{self.n[1]:,} generated images.")
        return (f"{self.metric}: {meaning(self.metric)}. {better.capitalize()} ({'↑' if self.higher_is_better else '↓'})."
                f" Space: {space}.{n} Cells: value ± half-width of the 95% CI (value [low, high] if asymmetric).")


#: Tasks whose ``mean_dice`` gets a "fraction of real" column (the seg-utility upper reference is ``real``).
REAL_FRACTION_TASKS = ("seg-utility", "seg_utility")
REAL_FRACTION_HELP = (
    "Fraction of the real-data Dice reached: this row's seg-utility mean Dice ÷ the `real` generator's mean Dice in "
    "this table (a segmenter trained on the data source's real training split, tested on the same labelled reference: "
    "the upper reference), under the same filters and data source. 100% = as useful for training as real images. "
    "Blank when no `real` seg-utility run is shown or the row's data source differs from the real run's.")


def real_fraction_key(header: str) -> str:
    """Column key of the "fraction of real" column beside a mean Dice column."""
    return f"{header} ÷ real"


INFO_COLUMNS = ["run_id", "data", "N", "started", "runs", "baseline", "demo", "imageset_path", "rank"]


@dataclass
class Table:
    """The leaderboard: ``value``/``ci_low``/``ci_high`` share the index (generator, checkpoint) and the
    column headers; ``info`` has the row's latest run (run_id, data, N, started, runs), its ``baseline`` role,
    ``demo`` reasons, image set and ``rank`` (1, 2, … for ranked rows; the role for reference rows)."""

    value: pd.DataFrame
    ci_low: pd.DataFrame
    ci_high: pd.DataFrame
    info: pd.DataFrame
    columns: list[Column] = field(default_factory=list)
    hidden_demo: int = 0  # demo results left out (Filters.include_demo is off)

    @property
    def empty(self) -> bool:
        return self.value.empty

    @property
    def headline(self) -> list[Column]:
        return [c for c in self.columns if c.headline]

    @property
    def ranked(self) -> pd.Series:
        """True for rows that compete (not a baseline, not demo)."""
        return self.info["baseline"].isna() & self.info["demo"].isna()

    def column(self, header: str) -> Column:
        return next(c for c in self.columns if c.header == header)

    def fraction(self) -> pd.DataFrame:
        """Per cell, the fraction of the way from the no-learning floor (0) to the noise floor (1): the value
        of the row above the ranked rows is 1, that of the last reference row below them is 0. NaN where a
        column lacks either, or they are equal, and for the reference rows themselves."""
        out = pd.DataFrame(np.nan, index=self.value.index, columns=self.value.columns)
        refs = self.info.index[self.info["baseline"].notna()]
        if len(refs) < 2:
            return out
        top, bottom = refs[0], refs[-1]
        for col in self.value.columns:
            hi, lo = self.value.at[top, col], self.value.at[bottom, col]
            if np.isfinite(hi) and np.isfinite(lo) and hi != lo:
                out[col] = (self.value[col] - lo) / (hi - lo)
        out.loc[refs] = np.nan
        return out

    def real_fraction(self) -> pd.DataFrame:
        """"Fraction of the real-data Dice reached", per seg-utility ``mean_dice`` column (:data:`REAL_FRACTION_TASKS`):
        each row's mean Dice ÷ the ``real`` generator's (its latest run in this table, i.e. under the same filters).
        NaN where there is no ``real`` row or it has no value, and for rows whose latest run is on another data
        source than the ``real`` row's (a ratio across data sources means nothing). Columns: the Dice columns'
        headers."""
        cols = [c.header for c in self.columns if c.task in REAL_FRACTION_TASKS and c.metric == "mean_dice"]
        out = pd.DataFrame(np.nan, index=self.value.index, columns=cols)
        real = [k for k in self.value.index if k[0] == "real"]
        if not real or not cols:
            return out
        key = real[0]
        same = (self.info["data"] == self.info.at[key, "data"]).to_numpy()
        for col in cols:
            ref = self.value.at[key, col]
            if np.isfinite(ref) and ref > 0:
                out[col] = np.where(same, self.value[col].to_numpy(float) / ref, np.nan)
        return out

    def real_fraction_columns(self, columns: Sequence[Column] | None = None) -> list[tuple[Column, str, str, str]]:
        """For each shown seg-utility Dice column: ``(column, key, label, tooltip)`` of its "fraction of real"
        column (key: :func:`real_fraction_key`)."""
        out = []
        for c in (self.columns if columns is None else columns):
            if c.task in REAL_FRACTION_TASKS and c.metric == "mean_dice":
                out.append((c, real_fraction_key(c.header), "fraction of real ↑", REAL_FRACTION_HELP))
        return out

    def display(self, columns: Sequence[Column] | None = None, fractions: bool = False) -> pd.DataFrame:
        """Formatted strings per cell (``value ± half-width``; with ``fractions``, the fraction of the way as a
        percentage beside it), with ``rank`` and ``generator`` in front (``generator`` gets a "demo" mark) and
        ``checkpoint``, ``data``, ``N`` after. Keys of the metric columns are the headers."""
        columns = list(self.columns if columns is None else columns)
        frac = self.fraction() if fractions else None
        real = self.real_fraction()
        cells = {}
        for c in columns:
            strings = [interval(v, lo, hi) for v, lo, hi in
                       zip(self.value[c.header], self.ci_low[c.header], self.ci_high[c.header])]
            if frac is not None:
                strings = [s + (f" · {f:.0%}" if s and np.isfinite(f) else "") for s, f in zip(strings, frac[c.header])]
            cells[c.header] = strings
            if c.task in REAL_FRACTION_TASKS and c.metric == "mean_dice":
                cells[real_fraction_key(c.header)] = [f"{f:.0%}" if np.isfinite(f) else "" for f in real[c.header]]
        gens = [g + (" · demo" if isinstance(d, str) else "") for (g, _), d in zip(self.value.index, self.info["demo"])]
        front = pd.DataFrame({"rank": self.info["rank"].to_numpy(), "generator": gens,
                              "checkpoint": [c if c == "—" else c[:12] for _, c in self.value.index]})
        back = pd.DataFrame({"data": self.info["data"].to_numpy(), "N": self.info["N"].to_numpy()})
        return pd.concat([front, pd.DataFrame(cells), back], axis=1)

    def to_csv(self) -> bytes:
        """Numbers, not strings: per metric the value and CI columns, plus the row info."""
        parts = [self.info.drop(columns=["imageset_path"])]
        for c in self.columns:
            parts.append(pd.DataFrame({c.header: self.value[c.header], f"{c.header} ci_low": self.ci_low[c.header],
                                       f"{c.header} ci_high": self.ci_high[c.header]}))
            if c.task in REAL_FRACTION_TASKS and c.metric == "mean_dice":
                parts.append(self.real_fraction()[[c.header]].rename(columns={c.header: real_fraction_key(c.header)}))
        return pd.concat(parts, axis=1).reset_index().to_csv(index=False, lineterminator="\n").encode("utf-8")


def _empty_table(hidden: int = 0) -> Table:
    index = pd.MultiIndex.from_arrays([[], []], names=["generator", "checkpoint"])
    empty = pd.DataFrame(index=index)
    return Table(empty, empty, empty, pd.DataFrame(index=index, columns=INFO_COLUMNS), hidden_demo=hidden)


def _headlines(meta: pd.DataFrame) -> set[str]:
    """One header per task: the task's preferred metric in the preferred feature space."""
    out = set()
    for task, group in meta.groupby("task", sort=False):
        pattern = HEADLINE.get(task)
        cand = group[[bool(re.fullmatch(pattern, m)) for m in group["metric"]]] if pattern else group.iloc[:0]
        if cand.empty:
            cand = group.sort_values("order").iloc[:1]
        prio = [SPACE_PRIORITY.index(s) if s in SPACE_PRIORITY else len(SPACE_PRIORITY) for s in cand["feature_space"]]
        cand = cand.assign(prio=prio).sort_values(["substitute", "prio", "feature_space", "order"], kind="stable")
        out.add(cand.index[0])
    return out


def main_table(results: pd.DataFrame, filters: Filters = Filters()) -> Table:
    """Pivot results into the leaderboard: for each (generator, checkpoint) and column, the latest stored value
    passing ``filters``. Rows: the best reference row, the ranked rows (best first by the first headline
    column), the other reference rows."""
    res = apply_filters(results, filters)
    keys = ["generator", "checkpoint"]
    hidden = 0
    if not filters.include_demo:  # demo results the other filters would let in
        hidden = len(apply_filters(results, dataclasses.replace(filters, include_demo=True))) - len(res)
    if res.empty:
        return _empty_table(hidden)
    res = res.assign(header=[metric_header(m, s, bool(h), bool(sub)) for m, s, h, sub in
                             zip(res["metric"], res["feature_space"], res["higher_is_better"], res["substitute"])])
    latest = res.drop_duplicates(keys + ["header"], keep="last")
    wide = latest.pivot(index=keys, columns="header", values=["value", "ci_low", "ci_high"])
    value, ci_low, ci_high = wide["value"], wide["ci_low"], wide["ci_high"]
    meta = latest.sort_values("order").drop_duplicates("header").set_index("header")
    meta = meta.assign(rank=[task_rank(t, m) for t, m in zip(meta["task"], meta["metric"])])
    heads = _headlines(meta)
    n_range = latest.groupby("header")["n"].agg(["min", "max"])
    ordered = sorted(meta.index, key=lambda h: (meta.at[h, "rank"], h not in heads, bool(meta.at[h, "substitute"]),
                                                meta.at[h, "task"], meta.at[h, "order"]))
    columns = []
    for h in ordered:
        lo, hi = n_range.at[h, "min"], n_range.at[h, "max"]
        n = (int(lo), int(hi)) if pd.notna(lo) and pd.notna(hi) else None
        m, s, up, sub = meta.at[h, "metric"], meta.at[h, "feature_space"], bool(meta.at[h, "higher_is_better"]), \
            bool(meta.at[h, "substitute"])
        columns.append(Column(h, m, meta.at[h, "task"], s, up, sub, h in heads, n, short_label(m, s, up, sub)))
    order = [c.header for c in columns]
    value, ci_low, ci_high = value[order], ci_low[order], ci_high[order]

    last_run = res.sort_values("order").groupby(keys, sort=False).tail(1).set_index(keys)
    subs = res[res["substitute"].astype(bool)].groupby(keys)["feature_space"].agg(lambda x: ", ".join(sorted(set(x))))
    stands = res.dropna(subset=["stand_in"]).groupby(keys)["stand_in"].agg(lambda x: sorted(set(x)))
    subs, stands = dict(zip(subs.index, subs.to_numpy())), dict(zip(stands.index, stands.to_numpy()))
    demo = {}
    for key in set(subs) | set(stands):
        reasons = sorted(list(stands.get(key, [])) + ([f"stand-in features ({subs[key]})"] if key in subs else []))
        demo[key] = "; ".join(reasons)
    info = pd.DataFrame({
        "run_id": last_run["run_id"], "data": last_run["data"], "N": last_run["run_n"],
        "started": last_run["started_at"].dt.strftime("%Y-%m-%d %H:%M"),
        "runs": res.groupby(keys)["run_id"].nunique(),
        "baseline": res.groupby(keys)["baseline"].last(),
        "imageset_path": last_run["imageset_path"],
    }).reindex(value.index)
    info["baseline"] = info["baseline"].astype(object).where(info["baseline"].notna(), None)
    info["demo"] = pd.Series([demo.get(k) for k in info.index], index=info.index, dtype=object)

    sort_col = columns[0]
    x = value[sort_col.header].astype(float)
    sort_key = (-x if sort_col.higher_is_better else x).fillna(np.inf)
    by_value = [k for _, k in sorted(zip(sort_key.to_numpy().tolist(), sort_key.index))]
    role = dict(zip(info.index, info["baseline"]))
    base = [k for k in by_value if isinstance(role[k], str)]
    rest = [k for k in by_value if not isinstance(role[k], str)]
    ranked = [k for k in rest if k not in demo]
    demo_rows = [k for k in rest if k in demo]
    rows = base[:1] + ranked + demo_rows + base[1:]
    rank = {k: str(i + 1) for i, k in enumerate(ranked)}
    info["rank"] = [rank.get(k) or role[k] or "demo" for k in info.index]
    return Table(value.loc[rows], ci_low.loc[rows], ci_high.loc[rows], info.loc[rows], columns, hidden)


__all__ = ["REAL_FRACTION_HELP", "Column", "Filters", "Table", "apply_filters", "is_demo", "main_table", "meaning",
           "metric_header", "real_fraction_key", "short_label"]
