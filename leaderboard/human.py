"""Shaping human ratings for the Human evaluation and Agreement tabs (pure pandas/scipy).

Input is the long-format ratings frame of :class:`leaderboard.data.Study` (``participant_id, image_id,
source, rating`` and optional flag columns). The statistics themselves come from :mod:`human_eval.stats`;
this module only prepares what the charts draw and relates the leaderboard to the ratings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from leaderboard.data import source_name
from leaderboard.table import Table


def study_statistics(study) -> dict[str, pd.DataFrame]:
    """The tables the Human evaluation tab (and the static export) show, from :mod:`human_eval.stats`
    (seeded: the same study gives the same tables)."""
    from human_eval import stats

    df = study.ratings
    return {
        "descriptives": stats.descriptives(df),
        "flags": stats.artifact_flags(df),
        "participants": stats.participant_means(df, study.participants),
        "friedman": stats.friedman(df),
        "wilcoxon": stats.wilcoxon_posthoc(df),
        "bootstrap": stats.cluster_bootstrap(df, seed=0),
        "mwu": stats.mann_whitney_vs_reference(df, seed=0),
    }


def diverging_frame(ratings: pd.DataFrame, scale: tuple[int, int] = (1, 5)) -> pd.DataFrame:
    """Per source and rating level: ``share`` of ratings and the bar segment ``[start, end]`` of a diverging
    stacked bar centred on the scale's midpoint (below-midpoint levels left of 0, the midpoint split in half).

    Returns columns ``source, rating, count, share, start, end``.
    """
    lo, hi = scale
    levels = list(range(lo, hi + 1))
    mid = (lo + hi) / 2
    counts = pd.crosstab(ratings["source"], ratings["rating"].astype(int)).reindex(columns=levels, fill_value=0)
    shares = counts.div(counts.sum(axis=1), axis=0)
    rows = []
    for src, share in shares.iterrows():
        neg = share[[v for v in levels if v < mid]].sum() + (share[mid] / 2 if mid in levels else 0.0)
        start = -neg
        for v in levels:
            rows.append({"source": src, "rating": v, "count": int(counts.at[src, v]), "share": float(share[v]),
                         "start": float(start), "end": float(start + share[v])})
            start += share[v]
    return pd.DataFrame(rows)


def mean_ratings(ratings: pd.DataFrame) -> pd.Series:
    """Mean rating per source."""
    return ratings.groupby("source")["rating"].mean()


def generator_scores(table: Table, ratings: pd.DataFrame) -> pd.DataFrame:
    """One row per generator that was also rated: each metric's value (the generator's most recent leaderboard
    row) and the mean clinician rating. Index: generator; columns: metric headers + ``mean rating``."""
    if table.empty:
        return pd.DataFrame()
    latest = table.info.reset_index().sort_values("started").drop_duplicates("generator", keep="last")
    keys = list(zip(latest["generator"], latest["checkpoint"]))
    values = table.value.loc[keys].copy()
    values.index = [g for g, _ in keys]
    values.index.name = "generator"
    means = mean_ratings(ratings)
    values["mean rating"] = [means.get(source_name(g), np.nan) for g in values.index]
    return values[values["mean rating"].notna()]


def rankings(scores: pd.DataFrame, higher: dict[str, bool]) -> pd.DataFrame:
    """Rank (1 = best) of each generator by each metric and by mean rating (higher is better)."""
    out = pd.DataFrame(index=scores.index)
    for col in scores.columns:
        up = True if col == "mean rating" else higher.get(col, False)
        out[col] = scores[col].rank(ascending=not up, method="min")
    return out


def ranking_agreement(scores: pd.DataFrame, higher: dict[str, bool]) -> pd.DataFrame:
    """Kendall's τ-b between each metric (oriented so that larger = better) and the mean clinician rating,
    over the generators that have both (``scipy.stats.kendalltau``). τ = 1: the metric orders the
    generators exactly as the clinicians do.

    Returns columns ``metric, tau, p, n_generators, note``.
    """
    rows = []
    for col in scores.columns:
        if col == "mean rating":
            continue
        both = scores[[col, "mean rating"]].dropna()
        n = len(both)
        if n < 3:
            rows.append({"metric": col, "tau": np.nan, "p": np.nan, "n_generators": n,
                         "note": f"needs ≥ 3 rated generators with this metric (has {n})"})
            continue
        oriented = both[col] if higher.get(col, False) else -both[col]
        res = sps.kendalltau(oriented, both["mean rating"])
        rows.append({"metric": col, "tau": float(res.statistic), "p": float(res.pvalue), "n_generators": n, "note": ""})
    return pd.DataFrame(rows, columns=["metric", "tau", "p", "n_generators", "note"])


def per_image_scatter(per_image: pd.DataFrame, ratings: pd.DataFrame, images: pd.DataFrame | None) -> pd.DataFrame:
    """Per-image metric value beside the image's mean rating.

    ``per_image`` has ``metric, image, value`` (``image`` an image id or file name); ratings link to it by
    ``image_id`` or, through the study's ``images`` table, by the file name of ``path``.
    Returns ``metric, image_id, source, value, mean_rating, n_ratings``.
    """
    cols = ["metric", "image_id", "source", "value", "mean_rating", "n_ratings"]
    if per_image.empty or ratings.empty:
        return pd.DataFrame(columns=cols)
    img = ratings.groupby("image_id").agg(source=("source", "first"), mean_rating=("rating", "mean"),
                                          n_ratings=("rating", "size")).reset_index()
    keyed = img.assign(key=img["image_id"].astype(str))
    if images is not None and {"image_id", "path"} <= set(images.columns):
        names = images.dropna(subset=["path"]).assign(key=lambda d: d["path"].map(lambda p: str(p).replace("\\", "/").rsplit("/", 1)[-1]))
        by_name = img.merge(names[["image_id", "key"]], on="image_id")
        keyed = pd.concat([keyed, by_name], ignore_index=True)
    merged = per_image.assign(key=per_image["image"].astype(str)).merge(keyed, on="key")
    return merged.drop_duplicates(["metric", "image_id"])[cols]


#: the columns of the distance-vs-Dice table a visitor sees (the full table: ``harness human agreement --utility``)
UTILITY_SHOWN = ["target", "metric", "substitute", "n_generators", "baselines", "kendall_tau", "ci_low", "ci_high", "p",
                 "min_p", "verdict", "uncertainty"]


def utility_agreement(results: pd.DataFrame, *, seed: int = 0, n_boot: int = 1000) -> tuple[pd.DataFrame, list[str]]:
    """Which distance predicts downstream Dice, over the leaderboard's (filtered) results: the table of
    :func:`human_eval.trust.results_utility_table` (its interval resamples the stored CIs: the leaderboard does not
    read per-image files) and one headline per target task present (the seg-utility one when none is)."""
    from human_eval import trust

    table = trust.results_utility_table(results, seed=seed, n_boot=n_boot)
    present = set(table["target"]) if not table.empty else set()
    targets = [t for t in trust.UTILITY_TASKS if t in present] or [trust.UTILITY_TASKS[0]]
    return table, [trust.utility_headline(table, t) for t in targets]


def has_dice(results: pd.DataFrame) -> bool:
    """Whether any seg-utility / anatomy-faithfulness mean Dice is stored (the static export shows the section then)."""
    from human_eval.trust import UTILITY_TASKS

    return bool(((results["task"].isin(UTILITY_TASKS)) & (results["metric"] == "mean_dice") & results["value"].notna()).any())
