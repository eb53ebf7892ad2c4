"""Agreement between automatic metrics and human ratings (METRICS.md "Metric <-> human agreement").

* :func:`image_level` - rank correlation (Spearman, Kendall tau-b; ``scipy.stats``) between per-image metric
  values and per-image mean ratings.
* :func:`generator_ranking` - the ranking of generators by each metric vs by mean human rating: Kendall's tau
  between the two rankings and a pairwise table saying, for every pair of generators, whether the metric and
  the clinicians order them the same way (the paper's headline: FID ranks CycleGAN first, clinicians SD).
* :func:`per_image_metrics` - per-image values of the rated image files (colour-shift chroma, realism score of
  Kynkäänniemi et al. 2019, distance to the nearest real image); :func:`metric_agreement` correlates them
  with the ratings.
* :func:`generator_agreement` - :func:`generator_ranking` over the newest stored result of each metric for the
  generators whose (canonical) names are the study's sources.

References
----------
Kynkäänniemi, Karras, Laine, Lehtinen, Aila (2019). Improved precision and recall metric for assessing
generative models. NeurIPS (realism score, section 5).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from harness.errors import DataError, UsageError
from human_eval.schema import StudyTables, canonical_source

log = logging.getLogger(__name__)

__all__ = ["agreement_tables", "generator_agreement", "generator_ranking", "image_level", "knn_radii",
           "latest_metric_values", "metric_agreement", "per_image_long", "per_image_metrics", "realism_scores",
           "resolve_image_paths"]


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


# ------------------------------------------------------------------------------------ per-image metrics
PER_IMAGE_COLUMNS = ("chroma", "realism_score", "nn_distance_to_reference")
#: Direction of each per-image metric (True: a larger value should mean "looks more real").
PER_IMAGE_HIGHER_IS_BETTER = {"chroma": False, "realism_score": True, "nn_distance_to_reference": False}


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import cdist

    return cdist(np.asarray(a, np.float64), np.asarray(b, np.float64))  # exact: 0 for identical rows


def knn_radii(reference: np.ndarray, k: int) -> np.ndarray:
    """Distance of each reference point to its k-th nearest other reference point (Euclidean)."""
    ref = np.asarray(reference, np.float64)
    if int(k) != k or k < 1:
        raise UsageError(f"k must be a positive integer (got {k})")
    if ref.shape[0] <= k:
        raise DataError(f"the realism score with k={k} needs at least k + 1 = {k + 1} reference images; got "
                        f"{ref.shape[0]} (give more real images, --reference folder:DIR, or a smaller k)")
    d = _pairwise(ref, ref)
    return np.partition(d, int(k), axis=1)[:, int(k)]  # column 0 is the point itself


def realism_scores(query: np.ndarray, reference: np.ndarray, *, k: int = 3, self_index: np.ndarray | None = None,
                   block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Realism score (Kynkäänniemi et al. 2019) and nearest-reference distance of each query point.

    ``realism(x) = max_j r_j / ||x - phi_j||`` over the reference points ``phi_j``, with ``r_j`` the distance
    of ``phi_j`` to its k-th nearest reference neighbour. A score >= 1 means ``x`` lies inside at least one
    reference k-NN ball (the paper's "realistic"); larger is more realistic. All reference points are used
    (the paper additionally drops the half with the largest radii for large sets).

    Parameters
    ----------
    query : (N, D) features of the images to score.
    reference : (M, D) features of real images.
    k : neighbourhood size of the radii.
    self_index : (N,) int, optional
        For a query point that is itself a reference point, its row in ``reference`` (-1 otherwise); that
        point is left out of its own max and nearest-neighbour distance (leave-one-out).

    Returns
    -------
    realism : (N,) float (``inf`` for a query identical to a reference point other than itself)
    nn_distance : (N,) float, Euclidean distance to the nearest (other) reference point.
    """
    q = np.asarray(query, np.float64)
    ref = np.asarray(reference, np.float64)
    if q.ndim != 2 or ref.ndim != 2 or q.shape[1] != ref.shape[1]:
        raise DataError(f"realism score: query features {q.shape} and reference features {ref.shape} must be "
                        "2-d with the same number of columns")
    radii = knn_radii(ref, k)
    idx = np.full(q.shape[0], -1, np.int64) if self_index is None else np.asarray(self_index, np.int64)
    realism = np.empty(q.shape[0])
    nn = np.empty(q.shape[0])
    for s in range(0, q.shape[0], block):
        d = _pairwise(q[s:s + block], ref)
        rows = np.nonzero(idx[s:s + block] >= 0)[0]
        d[rows, idx[s:s + block][rows]] = np.inf  # leave the point itself out
        with np.errstate(divide="ignore"):
            ratio = np.where(d > 0, radii[None, :] / np.where(d > 0, d, 1.0), np.inf)
        ratio[~np.isfinite(d)] = 0.0
        realism[s:s + block] = ratio.max(axis=1)
        nn[s:s + block] = d.min(axis=1)
    return realism, nn


def resolve_image_paths(images: pd.DataFrame, base_dir: str | os.PathLike | None = None) -> pd.Series:
    """Each row's image file: absolute paths as stored; relative ones under ``base_dir`` (the images.csv
    folder) when that file exists there, else as stored (relative to the working directory). Rows without a
    path give ``None``."""
    def one(p):
        if p is None or (isinstance(p, float) and np.isnan(p)) or not str(p).strip():
            return None
        path = Path(str(p).strip()).expanduser()
        if not path.is_absolute() and base_dir is not None and (Path(base_dir) / path).exists():
            return Path(base_dir) / path
        return path

    col = images["path"] if "path" in images.columns else pd.Series([None] * len(images), index=images.index)
    return col.map(one)


def _read_all(paths: list[Path], ids: list[str]) -> list[np.ndarray]:
    """Read every image; all unreadable/missing files are reported in one DataError."""
    from harness.io import read_image

    out, problems = [], []
    for iid, p in zip(ids, paths):
        try:
            out.append(read_image(p, mode="rgb"))
        except DataError as exc:
            problems.append(f"image {iid!r}: {exc}")
    if problems:
        head = "\n".join(f"  - {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise DataError(f"{len(problems)} image file(s) of images.csv cannot be read; fix the paths (relative "
                        f"paths are read from the images.csv folder or the working directory, see --root):\n"
                        f"{head}{more}")
    return out


def _features(extractor, images: list[np.ndarray], paths: list[Path] | None, cache: bool) -> np.ndarray:
    from harness.features.cache import FeatureCache, extract_features

    compute = lambda: extract_features(extractor, [images], total=len(images))  # noqa: E731
    if not cache or paths is None:
        return compute()
    from harness.io import sha256_file

    h = hashlib.sha256()
    for p in paths:
        h.update(sha256_file(p).encode())
    return FeatureCache().get_or_compute("files-" + h.hexdigest(), extractor, compute)


def per_image_metrics(images_df: pd.DataFrame, *, reference_features: np.ndarray | None = None,
                      reference_images: Sequence[np.ndarray] | None = None, extractor: str = "radiomics",
                      k: int = 3, base_dir: str | os.PathLike | None = None, device: str = "auto",
                      weights: str | None = None, reference: str = "real", cache: bool = True) -> pd.DataFrame:
    """Per-image metric values of the study images that have a file.

    Parameters
    ----------
    images_df : DataFrame
        ``image_id, source, path`` (images.csv / :func:`human_eval.db.load_study`'s ``images``).
    reference_features, reference_images : optional
        The real reference (features in ``extractor``'s space, or uint8 images). Default: the study's images
        of source ``reference`` (each scored leave-one-out).
    extractor : feature extractor name (registry ``features``); ``k`` : k of the realism radii.
    base_dir : folder that relative paths are resolved against (the images.csv folder).

    Returns
    -------
    DataFrame
        ``image_id, source, path, chroma`` (mean CIELAB chroma in the sector, colour-shift task),
        ``realism_score`` (Kynkäänniemi et al. 2019, higher = more realistic),
        ``nn_distance_to_reference`` (memorisation-style distance to the nearest real image); one row per
        image with a path.

    Raises
    ------
    DataError
        Listing every missing or unreadable file at once, or too few reference images for ``k``.
    """
    from harness.registry import features as feature_registry
    from tasks.color_shift import image_measures

    cols = ["image_id", "source", "path", *PER_IMAGE_COLUMNS]
    paths = resolve_image_paths(images_df, base_dir)
    have = paths.notna().to_numpy()
    imgs = images_df.loc[have].reset_index(drop=True)
    files = list(paths[have])
    if imgs.empty:
        return pd.DataFrame(columns=cols)
    ids = imgs["image_id"].astype(str).tolist()
    pixels = _read_all(files, ids)
    ext = feature_registry.get(extractor)(device=device, weights=weights)
    prepare = getattr(ext, "prepare", None)
    if prepare is not None:
        prepare()
    feats = _features(ext, pixels, files, cache)
    self_index = None
    if reference_features is not None:
        ref = np.asarray(reference_features, np.float64)
    elif reference_images is not None:
        ref = _features(ext, list(reference_images), None, False)
    else:
        is_ref = (imgs["source"].astype(str) == reference).to_numpy()
        if not is_ref.any():
            raise DataError(f"no image of source {reference!r} has a file in images.csv, so there is no reference "
                            "for the realism score; give --reference folder:DIR")
        ref = feats[is_ref]
        self_index = np.full(len(imgs), -1, np.int64)
        self_index[is_ref] = np.arange(int(is_ref.sum()))
    realism, nn = realism_scores(feats, ref, k=k, self_index=self_index)
    chroma = [image_measures(im)[0] for im in pixels]
    out = pd.DataFrame({"image_id": ids, "source": imgs["source"].astype(str).to_numpy(),
                        "path": [str(p.resolve()) for p in files], "chroma": chroma, "realism_score": realism,
                        "nn_distance_to_reference": nn})
    log.info("per-image metrics of %d images (%s features, %d reference images, k=%d)", len(out), extractor,
             ref.shape[0], k)
    return out[cols]


def per_image_long(metrics_df: pd.DataFrame) -> pd.DataFrame:
    """``metric, image, value`` rows (the per-image input of the leaderboard's Agreement scatter,
    ``leaderboard.human.per_image_scatter``); ``image`` is the image id."""
    cols = [c for c in PER_IMAGE_COLUMNS if c in metrics_df.columns]
    long = metrics_df.melt(id_vars=["image_id"], value_vars=cols, var_name="metric", value_name="value")
    return long.rename(columns={"image_id": "image"})[["metric", "image", "value"]]


def metric_agreement(tables: StudyTables, metrics_df: pd.DataFrame) -> pd.DataFrame:
    """Rank correlation of each per-image metric with the per-image mean rating (all rated images with a
    value), via :func:`image_level`; infinite values (a duplicate of a reference image) rank highest.

    Returns ``metric, n_images, spearman_rho, p_spearman, kendall_tau, p_kendall, higher_is_better, note``
    (``higher_is_better``: the direction in which the metric should agree, i.e. the sign of rho expected).
    """
    cols = [c for c in metrics_df.columns if c in PER_IMAGE_COLUMNS or (
        c not in ("image_id", "source", "path") and pd.api.types.is_numeric_dtype(metrics_df[c]))]
    m = metrics_df[["image_id", *cols]].copy()
    m["image_id"] = m["image_id"].astype(str)
    for c in cols:  # ranks are what matter: inf -> just above the largest finite value
        v = m[c].to_numpy(float)
        fin = np.isfinite(v)
        if (~fin & ~np.isnan(v)).any():
            top = np.nanmax(np.where(fin, v, np.nan)) if fin.any() else 0.0
            m[c] = np.where(np.isposinf(v), top + 1.0, v)
    r = tables.ratings.assign(image_id=tables.ratings["image_id"].astype(str))
    out = image_level(r, m, metric_cols=cols)
    out.insert(6, "higher_is_better", out["metric"].map(PER_IMAGE_HIGHER_IS_BETTER))
    return out


# ----------------------------------------------------------------------------------- generator ranking
def _metric_label(metric: str, space: str) -> str:
    """``metric`` when its name says the feature space (FID/KID are Inception, FD_<s>/KD_<s>), else
    ``metric[space]`` so that e.g. precision in two spaces stays two metrics."""
    if not space or space in metric or (space == "inception" and metric.startswith(("FID", "KID"))):
        return metric
    return f"{metric}[{space}]"


def latest_metric_values(store, sources: Sequence[str] | None = None,
                         metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """The newest stored value of every metric for each generator, keyed by canonical source name
    (``sd-lora`` -> ``sd``). Returns ``source, generator, metric, value, higher_is_better, run_id``; the
    metric label carries the feature space when its name does not (``precision[radiomics]``)."""
    cols = ["source", "generator", "metric", "value", "higher_is_better", "run_id"]
    frame = store.results_frame()
    if frame.empty:
        return pd.DataFrame(columns=cols)
    frame = frame[frame["value"].notna()].copy()
    frame["source"] = frame["generator"].map(canonical_source)
    space = frame["feature_space"].fillna("")
    frame["metric"] = [_metric_label(m, s) for m, s in zip(frame["metric"], space)]
    if sources is not None:
        frame = frame[frame["source"].isin(list(sources))]
    if metrics is not None:
        frame = frame[frame["metric"].isin(list(metrics))]
    frame = frame.sort_values("created", kind="stable").drop_duplicates(["source", "metric"], keep="last")
    frame["higher_is_better"] = frame["higher_is_better"].astype(bool)
    return frame[cols].sort_values(["metric", "source"]).reset_index(drop=True)


def generator_agreement(store, tables: StudyTables, *, exclude: tuple[str, ...] = (),
                        metrics: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rank the study's rated sources by the latest stored result of each metric for the generator of the
    same (canonical) name, vs by mean rating (:func:`generator_ranking`: Kendall tau + pairwise table).

    ``exclude`` drops sources (e.g. ``("real",)`` to rank only the synthetic ones; a ``real`` generator run
    is the baseline every metric should put first). Returns ``(summary, pairs)`` as :func:`generator_ranking`,
    the summary with ``sources`` (the sources ranked) added.
    """
    rated = sorted(set(tables.ratings["source"]) - set(exclude))
    values = latest_metric_values(store, rated, metrics)
    summary, pairs = generator_ranking(values[["source", "metric", "value", "higher_is_better"]], tables.ratings,
                                       exclude=tuple(exclude))
    used = values.groupby("metric")["source"].agg(lambda s: ",".join(sorted(s)))
    summary["sources"] = summary["metric"].map(used).fillna("")
    return summary, pairs


def agreement_tables(tables: StudyTables, *, store=None, base_dir=None, reference_features=None,
                     reference_images=None, extractor: str = "radiomics", k: int = 3, exclude: tuple[str, ...] = (),
                     device: str = "auto") -> dict[str, pd.DataFrame]:
    """Everything of this module for one study: ``per_image``, ``metric_agreement`` (when images.csv gave
    paths) and ``generator_agreement``, ``generator_pairs`` (when a store is given)."""
    out: dict[str, pd.DataFrame] = {}
    images = tables.images
    if images is not None and "path" in images.columns and resolve_image_paths(images, base_dir).notna().any():
        per = per_image_metrics(images, reference_features=reference_features, reference_images=reference_images,
                                extractor=extractor, k=k, base_dir=base_dir, device=device)
        out["per_image"] = per
        out["metric_agreement"] = metric_agreement(tables, per)
    if store is not None:
        out["generator_agreement"], out["generator_pairs"] = generator_agreement(store, tables, exclude=exclude)
    return out
