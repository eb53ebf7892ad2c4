"""Agreement between automatic metrics and human ratings (METRICS.md "Metric <-> human agreement").

* :func:`image_level` - rank correlation (Spearman, Kendall tau-b; ``scipy.stats``) between per-image metric
  values and per-image mean ratings.
* :func:`generator_ranking` - the ranking of generators by each metric vs by mean human rating: Kendall's tau
  between the two rankings and a pairwise table saying, for every pair of generators, whether the metric and
  the clinicians order them the same way (the paper's headline: FID ranks CycleGAN first, clinicians SD).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = ["generator_ranking", "image_level"]


def image_level(ratings: pd.DataFrame, metrics: pd.DataFrame, *, dv: str = "rating", item: str = "image_id",
                metric_cols: list[str] | None = None) -> pd.DataFrame:
    """Spearman and Kendall correlation of each per-image metric with the per-image mean rating.

    Parameters
    ----------
    ratings : DataFrame
        Long-format ratings with ``item`` and ``dv`` columns.
    metrics : DataFrame
        One row per image: ``item`` plus numeric metric columns (``metric_cols``, default all numeric).

    Returns
    -------
    DataFrame
        ``metric, n_images, spearman_rho, p_spearman, kendall_tau, p_kendall, note``.
    """
    mean = ratings.groupby(item)[dv].mean().rename("_mean_rating")
    merged = metrics.merge(mean, left_on=item, right_index=True, how="inner")
    cols = metric_cols or [c for c in metrics.columns if c != item and pd.api.types.is_numeric_dtype(metrics[c])]
    rows = []
    for c in cols:
        d = merged[[c, "_mean_rating"]].dropna()
        n = len(d)
        row = {"metric": c, "n_images": n, "spearman_rho": np.nan, "p_spearman": np.nan, "kendall_tau": np.nan,
               "p_kendall": np.nan, "note": ""}
        if n < 3 or d[c].nunique() < 2 or d["_mean_rating"].nunique() < 2:
            row["note"] = f"insufficient data (n={n} images with both a value and a rating, or no variation)"
        else:
            s = sps.spearmanr(d[c], d["_mean_rating"])
            k = sps.kendalltau(d[c], d["_mean_rating"])
            row.update(spearman_rho=s.statistic, p_spearman=s.pvalue, kendall_tau=k.statistic, p_kendall=k.pvalue)
        rows.append(row)
    return pd.DataFrame(rows, columns=["metric", "n_images", "spearman_rho", "p_spearman", "kendall_tau",
                                       "p_kendall", "note"])


def generator_ranking(metric_values: pd.DataFrame, ratings: pd.DataFrame, *, dv: str = "rating",
                      between: str = "source", exclude: tuple[str, ...] = ("real",)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare the generator ranking by each metric with the ranking by mean human rating.

    Parameters
    ----------
    metric_values : DataFrame
        ``source, metric, value, higher_is_better`` (one row per generator x metric, e.g. FID with
        ``higher_is_better=False``).
    ratings : DataFrame
        Long-format ratings; generators are ranked by mean ``dv`` (higher = better).

    Returns
    -------
    summary : DataFrame
        ``metric, n_generators, kendall_tau, p, best_by_metric, best_by_humans, note``.
    pairs : DataFrame
        ``metric, A, B, metric_prefers, humans_prefer, agree``.
    """
    human = ratings[~ratings[between].isin(exclude)].groupby(between)[dv].mean()
    summary, pairs = [], []
    for metric, g in metric_values.groupby("metric", sort=True):
        g = g[g[between].isin(human.index)].drop_duplicates(between)
        if g["higher_is_better"].nunique() > 1:
            raise ValueError(f"metric {metric!r}: higher_is_better differs between rows")
        sign = 1.0 if bool(g["higher_is_better"].iloc[0]) else -1.0
        score = pd.Series(sign * g["value"].to_numpy(float), index=g[between])
        h = human.reindex(score.index)
        n = len(score)
        row = {"metric": metric, "n_generators": n, "kendall_tau": np.nan, "p": np.nan,
               "best_by_metric": score.idxmax() if n else "", "best_by_humans": h.idxmax() if n else "", "note": ""}
        if n < 2:
            row["note"] = f"insufficient data (n={n} generators)"
        else:
            k = sps.kendalltau(score.to_numpy(), h.to_numpy())
            row.update(kendall_tau=k.statistic, p=k.pvalue,
                       note="p is uninformative with few generators" if n < 5 else "")
        summary.append(row)
        for a, b in combinations(sorted(score.index), 2):
            mp = a if score[a] > score[b] else b if score[b] > score[a] else "tie"
            hp = a if h[a] > h[b] else b if h[b] > h[a] else "tie"
            pairs.append({"metric": metric, "A": a, "B": b, "metric_prefers": mp, "humans_prefer": hp,
                          "agree": mp == hp})
    return (pd.DataFrame(summary, columns=["metric", "n_generators", "kendall_tau", "p", "best_by_metric",
                                           "best_by_humans", "note"]),
            pd.DataFrame(pairs, columns=["metric", "A", "B", "metric_prefers", "humans_prefer", "agree"]))
