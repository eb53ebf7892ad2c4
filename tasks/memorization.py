"""Memorisation (METRICS.md): near-copies of training images among the generated images.

For each generated image, d_g = distance to its nearest training image in feature space; for each held-out
real image (the reference set), d_r = the same distance. Held-out real images were never trained on, so d_r
is the distance at which "a new image of this distribution" sits from the training set. A generated image is
a **near-copy** when ``d_g ≤ factor × quantile_q(d_r)`` (default q = 0.05, factor = 0.5: closer to a training
image than all but the closest 5 % of held-out real images, by a further factor of two); exact copies have
d_g = 0 (copy detection in the spirit of Carlini et al. 2023). Calibrating the q-quantile needs at least
``ceil(1 / q)`` reference images (DataError otherwise).

Also reported: **authenticity** (Alaa et al. 2022, the deterministic rule): a generated point is
unauthentic when it is closer to its nearest training point than that training point is to its own nearest
training neighbour; the fraction of authentic generated points, with the same fraction for held-out real
points as the baseline; and the ratio median(d_g) / median(d_r) (< 1: generated images sit closer to the
training set than new real images do).

Features are standardised with the training set's per-feature mean and standard deviation by default
(``standardize=True``) so that no feature dominates the Euclidean distance; nearest neighbours are exact
(blocked ``sklearn`` Euclidean distances).

Python API::

    from tasks.memorization import memorization
    res = memorization(gen_feats, train_feats, ref_feats)      # -> MemorizationResult
    res.flagged, res.nearest, res.d_gen, res.d_ref
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import DataError, UsageError
from harness.registry import tasks as task_registry
from tasks.base import MetricResult, Task, TaskContext, TaskSpec
from tasks.color_shift import wilson_interval

__all__ = ["MemorizationResult", "MemorizationTask", "memorization", "nearest_neighbours"]
log = logging.getLogger(__name__)
SUMMARY_Q = (0, 5, 25, 50, 75, 95, 100)


def nearest_neighbours(query: np.ndarray, base: np.ndarray, *, exclude_self: bool = False,
                       block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index) of each query row's nearest row of ``base`` (Euclidean, exact).

    ``exclude_self`` (query is base): the point itself is skipped.
    """
    from sklearn.metrics.pairwise import euclidean_distances

    dist = np.empty(query.shape[0])
    idx = np.empty(query.shape[0], dtype=np.int64)
    for s in range(0, query.shape[0], block):
        d = euclidean_distances(query[s:s + block], base)
        if exclude_self:
            rows = np.arange(d.shape[0])
            d[rows, rows + s] = np.inf
        j = d.argmin(axis=1)
        idx[s:s + block] = j
        dist[s:s + block] = d[np.arange(d.shape[0]), j]
    return dist, idx


@dataclass(frozen=True)
class MemorizationResult:
    """Near-copy fraction (value) with its Wilson 95 % CI and the distances behind it."""

    value: float
    ci_low: float
    ci_high: float
    n: int
    threshold: float
    flagged: np.ndarray = field(repr=False)  # (N_gen,) bool
    nearest: np.ndarray = field(repr=False)  # (N_gen,) index of the nearest training image
    d_gen: np.ndarray = field(repr=False)  # (N_gen,) nearest-training distance of generated images
    d_ref: np.ndarray = field(repr=False)  # (N_ref,) nearest-training distance of held-out real images
    authenticity: float = 1.0
    ref_authenticity: float = 1.0
    ref_flag_rate: float = 0.0
    distance_ratio: float = 1.0
    details: dict[str, Any] = field(default_factory=dict)


def _check(x: np.ndarray, what: str, min_n: int = 1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < min_n:
        raise DataError(f"memorisation: {what} must be an (N, d) array with N ≥ {min_n}; got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError(f"memorisation: {what} contain NaN or inf")
    return x


def memorization(gen: np.ndarray, train: np.ndarray, ref: np.ndarray, *, quantile: float = 0.05,
                 factor: float = 0.5, standardize: bool = True) -> MemorizationResult:
    """Near-copy detection of generated features against training features, calibrated on held-out real ones."""
    if not 0 < quantile < 1 or factor <= 0:
        raise UsageError(f"memorisation: need 0 < quantile < 1 and factor > 0 (got {quantile}, {factor})")
    g, t, r = _check(gen, "generated features"), _check(train, "training features", 2), _check(ref, "reference features")
    if not g.shape[1] == t.shape[1] == r.shape[1]:
        raise DataError(f"memorisation: feature dimensions differ (generated {g.shape[1]}, training {t.shape[1]}, "
                        f"reference {r.shape[1]})")
    need = int(math.ceil(1.0 / quantile - 1e-9))
    if r.shape[0] < need:
        raise DataError(f"memorisation: the reference (held-out real) set has {r.shape[0]} images; calibrating the "
                        f"{quantile:g} quantile of its nearest-training distances needs at least {need}. Use "
                        f"--n-ref {need} or more, or a larger memorization.quantile")
    if standardize:
        mu, sd = t.mean(axis=0), t.std(axis=0)
        sd[sd == 0] = 1.0
        g, t, r = (g - mu) / sd, (t - mu) / sd, (r - mu) / sd
    d_g, nn_g = nearest_neighbours(g, t)
    d_r, nn_r = nearest_neighbours(r, t)
    d_t, _ = nearest_neighbours(t, t, exclude_self=True)
    copy_tol = 1e-6 * max(float(np.median(d_r)), 1.0)  # distance of a copy, up to rounding
    leaked = d_r <= copy_tol
    if leaked.any():  # held-out images that are in the training set would calibrate the threshold to 0
        log.warning("memorisation: %d of %d reference images are also in the training set; left out of the "
                    "calibration (the held-out set should not overlap the training set)", int(leaked.sum()), r.shape[0])
        if (~leaked).sum() < need:
            raise DataError(f"memorisation: only {(~leaked).sum()} of {r.shape[0]} reference images are not in the "
                            f"training set; calibrating the {quantile:g} quantile needs {need}. Use a held-out split "
                            "that does not overlap the training data")
    threshold = float(factor * np.quantile(d_r[~leaked], quantile))
    flagged = d_g <= max(threshold, copy_tol)  # an exact copy is always a copy
    k = int(flagged.sum())
    lo, hi = wilson_interval(k, g.shape[0])
    med_r = float(np.median(d_r))
    return MemorizationResult(
        value=k / g.shape[0], ci_low=lo, ci_high=hi, n=g.shape[0], threshold=threshold, flagged=flagged,
        nearest=nn_g, d_gen=d_g, d_ref=d_r,
        authenticity=float((d_g > d_t[nn_g]).mean()), ref_authenticity=float((d_r > d_t[nn_r]).mean()),
        ref_flag_rate=float((d_r[~leaked] <= threshold).mean()),
        distance_ratio=float(np.median(d_g) / med_r) if med_r > 0 else float("inf"),
        details={"n_flagged": k, "n_train": t.shape[0], "n_ref": r.shape[0], "quantile": quantile, "factor": factor,
                 "standardized": standardize, "exact_copies": int((d_g <= copy_tol).sum()),  # up to rounding
                 "reference_in_training": int(leaked.sum()),
                 "d_gen_quantiles": dict(zip(map(str, SUMMARY_Q), np.percentile(d_g, SUMMARY_Q).round(5).tolist())),
                 "d_ref_quantiles": dict(zip(map(str, SUMMARY_Q), np.percentile(d_r, SUMMARY_Q).round(5).tolist())),
                 "degenerate_threshold": threshold == 0.0},
    )


@task_registry.register("memorization")
class MemorizationTask(Task):
    """Near-copies of training images: nearest-training distances vs held-out real ones; gallery of pairs."""

    spec = TaskSpec(
        name="memorization",
        version="1",
        description="Fraction of generated images that are near-copies of training images (nearest-training "
                    "distance vs held-out real images), authenticity (Alaa et al. 2022); gallery of pairs",
        needs_images=True,
        needs_train=True,
        parameters={"quantile": 0.05, "factor": 0.5, "standardize": True, "top_k": 12},
        ranges={"quantile": (0.0, 1.0), "factor": (0.0, 100.0), "top_k": (0, 10_000)},
    )

    def evaluate(self, ctx: TaskContext) -> list[MetricResult]:
        if ctx.gen_features is None or ctx.ref_features is None:
            raise UsageError("task 'memorization' needs generated and reference (held-out real) features")
        if ctx.train_features is None:
            raise UsageError("task 'memorization' needs the training set: pass --train-data SPEC (or a generator "
                             "whose checkpoint names its training data)")
        p = self.params
        res = memorization(ctx.gen_features, ctx.train_features, ctx.ref_features, quantile=float(p["quantile"]),
                           factor=float(p["factor"]), standardize=bool(p["standardize"]))
        self._write_artifacts(ctx, res, int(p["top_k"]))
        details = {**res.details, "threshold": res.threshold, "ref_flag_rate": res.ref_flag_rate, "ci": "Wilson 95%",
                   "flagged_indices": np.flatnonzero(res.flagged)[:200].tolist()}
        space = dict(feature_space=ctx.feature_space, substitute=ctx.feature_substitute)
        return [
            MetricResult("near_copy_fraction", res.value, res.ci_low, res.ci_high, res.n, higher_is_better=False,
                         details=details, **space),
            MetricResult("authenticity", res.authenticity, None, None, res.n, higher_is_better=True,
                         details={"ref_authenticity": res.ref_authenticity,
                                  "rule": "Alaa et al. 2022: d(gen, nn train) > d(nn train, its nn in train)"}, **space),
            MetricResult("train_nn_distance_ratio", res.distance_ratio, None, None, res.n, higher_is_better=True,
                         details={"definition": "median nearest-training distance, generated / held-out real",
                                  "median_d_gen": res.details["d_gen_quantiles"]["50"],
                                  "median_d_ref": res.details["d_ref_quantiles"]["50"]}, **space),
        ]

    @staticmethod
    def _write_artifacts(ctx: TaskContext, res: MemorizationResult, top_k: int) -> None:
        table = ctx.write_csv("memorization_per_image", "memorization_per_image.csv",
                              ["index", "nearest_train_index", "distance", "flagged"],
                              ([i, int(res.nearest[i]), f"{res.d_gen[i]:.6g}", int(res.flagged[i])] for i in range(res.n)))
        if table is None or ctx.gen_images is None or ctx.train_images is None:
            return
        from tasks.gallery import pair_sheet

        order = np.argsort(res.d_gen, kind="stable")[:top_k]
        gen_images, train_images = ctx.gen_images(), ctx.train_images()
        pairs = [(gen_images[i], train_images[res.nearest[i]]) for i in order]
        captions = [f"#{i}~t{res.nearest[i]} d={res.d_gen[i]:.2f}{' COPY' if res.flagged[i] else ''}" for i in order]
        title = (f"memorisation: {res.details['n_flagged']}/{res.n} near-copies (d ≤ {res.threshold:.3g}); "
                 "closest (generated | nearest training)")
        ctx.artifacts["memorization_gallery"] = pair_sheet(pairs, captions, table.parent / "memorization_gallery.png",
                                                           title=title)
