"""The FID family: Fréchet distance, FID∞, KID and bootstrap confidence intervals (METRICS.md).

Python API (no CLI needed, like clean-fid); features are (N, d) arrays, results are frozen
:class:`DistanceResult` records::

    from tasks import fid
    fid.frechet_distance(mu1, sigma1, mu2, sigma2)             # -> float, equal to cleanfid's
    fid.fid_from_features(gen, ref, rng=np.random.default_rng(0), n_boot=200)
    fid.fid_infinity(gen, ref, rng=...)                          # Chong & Forsyth 2020
    fid.kid(gen, ref, rng=...)                                   # Bińkowski et al. 2018
    fid.fid_family(gen, ref, rng=...)                            # all three, sharing the work
    fid.relative_fd(gen, ref, rng=...)                           # FD / real-vs-real FD (Woodland et al. 2024)

``ref`` may be the reference features or their cached statistics ``dict(mu, sigma, sqrt_sigma)`` (from
:func:`reference_stats` or the feature cache); the cached square root is then reused, never recomputed.
KID needs the reference features themselves.

Confidence intervals come from one bootstrap over the generated features, shared by the three metrics; what
each covers is checked by simulation (``harness validate-intervals``, :mod:`tasks.interval_study`) and
stated in ``details["covers"]`` / ``details["ci_basis"]``:

* **FID** (FID_N) covers **E[FID_N]**, the expected FID at this N against the fixed reference statistics, not
  the population FID (FID_N is biased upward by ≈ k/N and a bootstrap resample adds that bias again, so a
  plain percentile interval can lie entirely above the estimate); ``ci_method="centred"`` (default) takes the
  percentiles of ``θ̂ + (θ*_b − mean θ*)``; ``"percentile"`` gives the plain interval. Both are in ``details``.
* **FID∞** covers the **population FID** (N → ∞) against the fixed reference statistics: the centred FID_N
  replicates (FID∞ = FID_N − k/N with k fitted, so to first order they share their sampling spread), each side
  widened in quadrature by z·se_a (the fit's error over the subset draws) and by the extrapolation's model
  error |a_quadratic − a| (linear vs quadratic fit in 1/N; large when the subsets are not ≫ d). **Not
  reported when N ≤ d** (``details["ci_refused"]`` says why, and a warning is logged): FID_N is not linear in
  1/N there and the extrapolation has no valid error bar.
* **KID** covers the **population MMD²** of the generated and the reference distribution: per side, the wider
  of the percentile bootstrap of the full-set unbiased MMD² (resampling both sets; ``resample_ref=False``: the
  reference fixed) and the normal interval with the two-sample jackknife standard error (which by the
  Efron–Stein inequality does not underestimate the variance, second-order term included), centred on the
  reported subset mean and widened in quadrature by the subset draws' noise.

The reference set's own sampling noise is not in the FID/FID∞ intervals: every generator is compared with
the same reference statistics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from harness.errors import DataError, UsageError
from harness.registry import tasks as task_registry
from tasks.base import MetricResult, Task, TaskContext, TaskSpec
from tasks.fid_math import (
    GenGram,
    check_features,
    check_same_dim,
    check_sqrt,
    check_stats,
    frechet_distance,
    gaussian_stats,
    kernel_quadratic_forms,
    linear_fit,
    sqrtm_psd,
)

__all__ = [
    "DistanceResult",
    "FIDTask",
    "fid_family",
    "fid_from_features",
    "fid_infinity",
    "frechet_distance",
    "kid",
    "kid_subset_values",
    "reference_stats",
    "relative_fd",
]
log = logging.getLogger(__name__)
METRICS = ("fid", "fid_inf", "kid")


@dataclass(frozen=True)
class DistanceResult:
    """One distance with its bootstrap interval; ``details`` holds everything needed to audit or plot it."""

    value: float
    ci_low: float | None
    ci_high: float | None
    n: int
    details: dict[str, Any] = field(default_factory=dict)


def reference_stats(features: np.ndarray) -> dict:
    """``dict(mu, sigma, sqrt_sigma, n)`` of reference features: what the reference-statistics cache stores."""
    return gaussian_stats(check_features(features, "reference features"), with_sqrt=True)


def _ref_stats(ref: np.ndarray | Mapping | None, ref_stats: Mapping | None) -> dict:
    """Reference statistics from a cached dict (square root computed only if missing) or from features."""
    stats = ref_stats if ref_stats is not None else (ref if isinstance(ref, Mapping) else None)
    if stats is None:
        if ref is None:
            raise UsageError("no reference: pass reference features or their statistics (mu, sigma, sqrt_sigma)")
        return reference_stats(ref)
    missing = {"mu", "sigma"} - set(stats)
    if missing:
        raise DataError(f"reference statistics lack {', '.join(sorted(missing))}; expected keys mu, sigma, sqrt_sigma")
    mu, sigma = check_stats(stats["mu"], stats["sigma"], "reference statistics")
    root = stats.get("sqrt_sigma")
    if root is None:
        log.info("reference statistics carry no sqrt_sigma: computing it (cache it to skip this)")
        root = sqrtm_psd(sigma, "reference sigma")
    else:
        root = check_sqrt(root, sigma, "reference statistics")
    return {"mu": mu, "sigma": sigma, "sqrt_sigma": root, "n": stats.get("n")}


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """None → a fixed seed (0): every number is reproducible by default."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(0 if rng is None else rng)


def _canonical_order(x: np.ndarray) -> np.ndarray:
    """Row order by a fixed projection, so that seeded subsets/resamples do not depend on the input order."""
    proj = x @ np.sin(np.arange(1, x.shape[1] + 1) * 0.7071)
    return np.argsort(proj, kind="stable")


def _canonical(x: np.ndarray) -> np.ndarray:
    return x[_canonical_order(x)]


def _boot_weights(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n) resampling counts: row b says how often each generated sample is drawn."""
    idx = rng.integers(0, n, size=(n_boot, n)) + n * np.arange(n_boot)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n)


def _interval(est: float, reps: np.ndarray, ci: float, method: str) -> tuple[float | None, float | None, dict]:
    if reps.size == 0:
        return None, None, {"n_boot": 0}
    q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
    raw = np.percentile(reps, q)
    centred = est + np.percentile(reps - reps.mean(), q)
    lo, hi = (centred if method == "centred" else raw).tolist()
    info = {
        "n_boot": int(reps.size), "ci_level": ci, "ci_method": method, "boot_mean": float(reps.mean()),
        "boot_std": float(reps.std(ddof=1)) if reps.size > 1 else 0.0,
        "ci_percentile": raw.tolist(), "ci_centred": centred.tolist(),
    }
    return lo, hi, info


def _check_ci(n_boot: int, ci: float, ci_method: str) -> None:
    if n_boot < 0 or not 0 < ci < 1 or ci_method not in ("centred", "percentile"):
        raise UsageError(f"bad CI options n_boot={n_boot}, ci={ci}, ci_method={ci_method!r} "
                         "(need n_boot ≥ 0, 0 < ci < 1, ci_method 'centred' or 'percentile')")


def _fid_inf_sizes(n: int, n_sizes: int, min_fraction: float, sizes: Sequence[int] | None,
                   draws: int = 1) -> np.ndarray:
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise UsageError(f"FID∞ needs ≥ 1 draw per subset size (got draws={draws!r})")
    if sizes is None:
        sizes = np.round(np.linspace(min_fraction * n, n, n_sizes)).astype(int)
    raw = np.asarray(sizes, dtype=np.float64).ravel()
    if raw.size and not np.all(np.isfinite(raw) & (raw == np.round(raw))):
        raise DataError(f"FID∞ subset sizes must be whole numbers; got {np.asarray(sizes).tolist()}")
    sizes = np.unique(raw.astype(int))
    if sizes.size < 3 or sizes.min() < 2 or sizes.max() > n:
        raise DataError(
            f"FID∞ needs ≥ 3 distinct subset sizes between 2 and N; with N={n} generated samples the sizes are "
            f"{sizes.tolist()} (n_sizes={n_sizes}, min_fraction={min_fraction}). Use more generated images or "
            "pass sizes=[...] within range"
        )
    return sizes


def fid_family(
    gen: np.ndarray,
    ref: np.ndarray | Mapping | None,
    *,
    ref_stats: Mapping | None = None,
    rng: np.random.Generator | int | None = None,
    metrics: Sequence[str] = METRICS,
    n_boot: int = 200,
    ci: float = 0.95,
    ci_method: str = "centred",
    fid_inf_sizes: int = 15,
    fid_inf_min_fraction: float = 0.2,
    fid_inf_draws: int = 3,
    fid_inf_size_list: Sequence[int] | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    kid_block: int = 1024,
    kid_resample_ref: bool = True,
    workers: int | None = None,
    progress: Callable[..., None] | None = None,
) -> dict[str, DistanceResult]:
    """FID, FID∞ and KID with bootstrap CIs, sharing the Gram matrix and one set of bootstrap resamples.

    ``workers``: threads for the per-resample eigenvalue problems (default: the usable CPUs); the numbers
    do not depend on it. ``progress(k, total=None)`` is told the number of FIDs to compute (bootstrap
    resamples + FID∞ subsets) and advanced as each is done.

    ``rng`` is split into independent streams (bootstrap, FID∞ subsets, KID subsets), so each metric's
    numbers are identical whether computed here or by its own function with the same seed.
    Returns ``{"fid": ..., "fid_inf": ..., "kid": ...}`` for the requested ``metrics``.
    """
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise UsageError(f"unknown metric(s) {sorted(unknown)}; available: {', '.join(METRICS)}")
    _check_ci(n_boot, ci, ci_method)
    boot_rng, inf_rng, kid_rng = _rng(rng).spawn(3)
    g = _canonical(check_features(gen, "generated features"))
    n, d = g.shape
    times: dict[str, float] = {}
    out: dict[str, DistanceResult] = {}
    t0 = time.perf_counter()
    weights = _boot_weights(boot_rng, n, n_boot)
    if {"fid", "fid_inf"} & set(metrics):
        st = _ref_stats(ref, ref_stats)
        check_same_dim(g, st["mu"].size)
        times["ref_stats"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if "fid_inf" in metrics:
            sizes = _fid_inf_sizes(n, fid_inf_sizes, fid_inf_min_fraction, fid_inf_size_list, fid_inf_draws)
            n_inf = int(sum(1 if size == n else fid_inf_draws for size in sizes))
        if progress is not None:
            progress(0, total=n_boot + (n_inf if "fid_inf" in metrics else 0))
        eng = GenGram(g, st["mu"], st["sigma"], st["sqrt_sigma"])
        value, tr_sqrt = eng.fid(np.ones(n, dtype=np.int64))
        times["fid"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        reps = eng.fids(weights, workers=workers, progress=progress)
        times["fid_bootstrap"] = time.perf_counter() - t0
        base = {"d": d, "n_gen": n, "n_ref": st["n"], "rank_deficient": n <= d,
                "note": f"N={n} ≤ d={d}: generated covariance is singular (rank ≤ N−1)" if n <= d else ""}
        lo, hi, info = _interval(value, reps, ci, ci_method)
        if "fid" in metrics:
            out["fid"] = DistanceResult(value, lo, hi, n, {
                **base, "trace_sqrt": tr_sqrt, **info,
                "covers": "E[FID_N]: the expected FID of N generated samples against the reference statistics "
                          "(held fixed); FID_N is biased upward by ≈ k/N, see FID∞ for the N → ∞ value",
                "ci_basis": "centred bootstrap over generated samples: FID + percentiles of (FID*_b − mean FID*)"
                            if ci_method == "centred" else "percentile bootstrap over generated samples"})
        if "fid_inf" in metrics:
            t0 = time.perf_counter()
            inv_n, subsets = [], []
            for size in sizes:
                for _ in range(1 if size == n else fid_inf_draws):
                    w = np.zeros(n, dtype=np.int64)
                    w[inf_rng.choice(n, size, replace=False)] = 1
                    inv_n.append(1.0 / size)
                    subsets.append(w)
            pts_arr = np.column_stack([inv_n, eng.fids(np.array(subsets), workers=workers, progress=progress)])
            fit = linear_fit(pts_arr[:, 0], pts_arr[:, 1])
            times["fid_inf"] = time.perf_counter() - t0
            blo, bhi, binfo = _interval(fit["a"], reps, ci, "centred")
            iinfo = {k: binfo[k] for k in ("n_boot", "ci_level") if k in binfo}
            # extrapolation (model) error: the bias of FID_N is k/N only to first order; when the subsets are
            # not ≫ d the 1/N² term bends the curve and the linear intercept is biased (simulation: −1.3 at d=64,
            # N=300, 0.4 sd at N=1000). The quadratic fit a + k/N + c/N² on the same points is another
            # admissible extrapolation; their difference enters the interval as a model-error term.
            a_quad = float(np.polyfit(pts_arr[:, 0], pts_arr[:, 1], 2)[-1]) if sizes.size >= 4 else fit["a"]
            model_err = abs(a_quad - fit["a"])
            ilo = ihi = None
            refused = n <= d  # see FID_INF_REFUSED: the 1/N extrapolation has no valid error bar here
            if refused:
                iinfo.update({"ci_method": "not reported", "ci_refused": FID_INF_REFUSED.format(n=n, d=d)})
                log.warning("FID∞: %s", iinfo["ci_refused"])
            if blo is not None and not refused:
                z = NormalDist().inv_cdf((1 + ci) / 2)
                ilo = fit["a"] - float(np.sqrt((fit["a"] - blo) ** 2 + (z * fit["se_a"]) ** 2 + model_err**2))
                ihi = fit["a"] + float(np.sqrt((bhi - fit["a"]) ** 2 + (z * fit["se_a"]) ** 2 + model_err**2))
                iinfo.update({"ci_method": "centred+fit+model", "ci_bootstrap": [blo, bhi],
                              "boot_std_fid_n": binfo["boot_std"]})
            out["fid_inf"] = DistanceResult(fit["a"], ilo, ihi, n, {
                **base, **fit, "a_quadratic": a_quad, "model_error": model_err, "sizes": sizes.tolist(),
                "draws": fid_inf_draws, "points": pts_arr.tolist(), "fid_n": value, **iinfo,
                "covers": "the FID between the generator's distribution (N → ∞) and the reference statistics "
                          "(held fixed: the reference set's own sampling noise is not in the interval)",
                "ci_basis": FID_INF_CI_BASIS,
            })
    if "kid" in metrics:
        t0 = time.perf_counter()
        out["kid"] = _kid(g, ref, kid_rng, weights, kid_subsets, kid_subset_size, ci, kid_block,
                          resample_ref=kid_resample_ref)
        times["kid"] = time.perf_counter() - t0
    for res in out.values():
        res.details["timings_s"] = dict(times)
    return out


def fid_from_features(gen, ref, *, ref_stats=None, rng=None, n_boot: int = 200, ci: float = 0.95,
                      ci_method: str = "centred") -> DistanceResult:
    """FID (FD) of generated vs reference features with a bootstrap CI over generated samples.

    ``value`` equals ``frechet_distance`` of the two sets' statistics (ddof=1); ``details`` records d, the
    sample sizes, whether N ≤ d (singular covariance) and the bootstrap summary.
    """
    return fid_family(gen, ref, ref_stats=ref_stats, rng=rng, metrics=("fid",), n_boot=n_boot, ci=ci,
                      ci_method=ci_method)["fid"]


def fid_infinity(gen, ref, *, ref_stats=None, rng=None, n_sizes: int = 15, min_fraction: float = 0.2,
                 draws: int = 3, sizes: Sequence[int] | None = None, n_boot: int = 200,
                 ci: float = 0.95) -> DistanceResult:
    """FID∞ (Chong & Forsyth 2020): FID on random subsets at several N, least-squares fit FID_N = a + k/N.

    ``value`` = a; ``details``: k, se_a, se_k, rms_residual, the sizes and the (1/N, FID_N) ``points``.
    Subsets are drawn without replacement from the generated set (``draws`` per size, one at the full size);
    the reference statistics use the full reference set. Raises DataError when fewer than 3 distinct sizes
    ≥ 2 fit in N.
    """
    return fid_family(gen, ref, ref_stats=ref_stats, rng=rng, metrics=("fid_inf",), n_boot=n_boot, ci=ci,
                      fid_inf_sizes=n_sizes, fid_inf_min_fraction=min_fraction, fid_inf_draws=draws,
                      fid_inf_size_list=sizes)["fid_inf"]


def kid(gen, ref, *, rng=None, subsets: int = 100, subset_size: int = 1000, n_boot: int = 200,
        ci: float = 0.95, resample_ref: bool = True,
        subset_indices: tuple[np.ndarray, np.ndarray] | None = None) -> DistanceResult:
    """KID: unbiased MMD² with kernel (xᵀy/d + 1)³, mean over ``subsets`` random subset pairs of size
    min(subset_size, N_gen, N_ref) (as clean-fid's ``kernel_distance``; torchmetrics'
    ``KernelInceptionDistance`` computes the same per subset but refuses subset_size > N); ``details["std"]``
    is the population std over subsets (torchmetrics' ``kid_std``).

    ``subset_indices=(gen_idx, ref_idx)`` (S × m each, rows drawn without replacement, indices into ``gen``
    and ``ref`` as passed) replaces the random draws, e.g. to replay torch-fidelity's or torchmetrics' subsets.

    CI (covers the population MMD² of the two distributions; ``resample_ref=False``: the MMD² against this
    reference set): per side, the wider of the percentile bootstrap of the full-set unbiased MMD², resampling
    generated and reference samples independently (pairs of copies of one sample excluded), and z × the
    two-sample jackknife standard error (:func:`kid_jackknife_se`); shifted by (value − full-set MMD²) so it is
    centred on the reported subset mean, and each side widened in quadrature by z·sd(subset values)/√S, the
    noise of the subset draws (zero when the subsets are the full sets). The bootstrap interval itself is
    ``details["ci_full_set"]``."""
    _check_ci(n_boot, ci, "percentile")
    boot_rng, _, kid_rng = _rng(rng).spawn(3)
    raw = check_features(gen, "generated features")
    order = _canonical_order(raw)
    if subset_indices is not None:
        subset_indices = (np.argsort(order)[_check_subsets(subset_indices[0], raw.shape[0], "gen_idx")], subset_indices[1])
    return _kid(raw[order], ref, kid_rng, _boot_weights(boot_rng, raw.shape[0], n_boot), subsets, subset_size, ci, 1024,
                resample_ref=resample_ref, subset_indices=subset_indices)


def kid_subset_values(gen, ref, gen_idx: np.ndarray, ref_idx: np.ndarray, *, block: int = 1024) -> np.ndarray:
    """Unbiased MMD² for given subsets: row s of ``gen_idx`` / ``ref_idx`` (S × m indices) is one pair."""
    g = check_features(gen, "generated features")
    r = check_features(ref, "reference features")
    check_same_dim(g, r.shape[1])
    gen_idx = _check_subsets(gen_idx, g.shape[0], "gen_idx")
    ref_idx = _check_subsets(ref_idx, r.shape[0], "ref_idx")
    if gen_idx.shape != ref_idx.shape:
        raise DataError(f"gen_idx {gen_idx.shape} and ref_idx {ref_idx.shape} must have the same shape (S pairs of m)")
    forms = _kid_forms(g, r, gen_idx, ref_idx, np.zeros((0, g.shape[0])), block)
    return _subset_mmd(forms, gen_idx, ref_idx)


def _check_subsets(idx, n: int, name: str) -> np.ndarray:
    """S × m integer indices in 0..n−1, distinct within each row (m ≥ 2)."""
    arr = np.asarray(idx)
    if arr.ndim != 2 or arr.shape[1] < 2 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{name}: expected an (S, m ≥ 2) integer index array, got shape {arr.shape}, dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= n:
        raise DataError(f"{name}: indices must lie in 0..{n - 1}; found {arr.min()}..{arr.max()}")
    srt = np.sort(arr, axis=1)
    dup = np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))
    if dup.size:
        raise DataError(f"{name}: row {dup[0]} repeats an index; each subset must draw without replacement")
    return arr


def _indicators(idx: np.ndarray, n: int) -> np.ndarray:
    z = np.zeros((idx.shape[0], n))
    np.put_along_axis(z, idx, 1.0, axis=1)
    return z


def _kid_forms(g, r, gen_idx, ref_idx, weights, block) -> dict:
    return kernel_quadratic_forms(g, r, _indicators(gen_idx, g.shape[0]), _indicators(ref_idx, r.shape[0]),
                                  weights.astype(np.float64), block=block)


def _subset_mmd(f: dict, gen_idx: np.ndarray, ref_idx: np.ndarray) -> np.ndarray:
    m = gen_idx.shape[1]
    xx = (f["gg_sub"] - f["diag_g"][gen_idx].sum(axis=1)) / (m * (m - 1))
    yy = (f["rr_sub"] - f["diag_r"][ref_idx].sum(axis=1)) / (m * (m - 1))
    return xx + yy - 2.0 * f["gr_sub"] / (m * m)


def _kid(g, ref, rng, weights, subsets, subset_size, ci, block, *, resample_ref: bool = True,
         subset_indices: tuple[np.ndarray, np.ndarray] | None = None, ref_order: np.ndarray | None = None) -> DistanceResult:
    """KID of canonical-order generated features ``g`` (see :func:`kid` for the interval).

    ``subset_indices`` (gen_idx, ref_idx) replace the random subset draws; they index ``g`` (canonical order)
    and ``ref`` in the caller's order (mapped here through ``ref_order``)."""
    if ref is None or isinstance(ref, Mapping):
        raise UsageError("KID needs the reference features themselves, not only their mean/covariance")
    r_raw = check_features(ref, "reference features")
    order = _canonical_order(r_raw) if ref_order is None else ref_order
    r = r_raw[order]
    check_same_dim(g, r.shape[1])
    ng, nr = g.shape[0], r.shape[0]
    ref_boot_rng = rng.spawn(1)[0]  # own stream: the subset draws below do not depend on resample_ref
    if subset_indices is not None:
        gen_idx = _check_subsets(subset_indices[0], ng, "gen_idx")
        ref_idx = np.argsort(order)[_check_subsets(subset_indices[1], nr, "ref_idx")]
        if gen_idx.shape != ref_idx.shape:
            raise DataError(f"gen_idx {gen_idx.shape} and ref_idx {ref_idx.shape} must have the same shape (S pairs of m)")
        subsets, m = gen_idx.shape
    else:
        m = min(subset_size, ng, nr)
        if subsets < 1 or m < 2:
            raise DataError(f"KID needs ≥ 1 subset of ≥ 2 samples; got subsets={subsets}, size min({subset_size}, {ng}, {nr})")
        gen_idx = np.stack([rng.choice(ng, m, replace=False) for _ in range(subsets)])
        ref_idx = np.stack([rng.choice(nr, m, replace=False) for _ in range(subsets)])
    nb = weights.shape[0]
    w = np.vstack([weights, np.ones((1, ng), dtype=weights.dtype)]).astype(np.float64)  # last row: full set
    wr = _boot_weights(ref_boot_rng, nr, nb) if resample_ref else np.ones((nb, nr), dtype=np.int64)
    wr = np.vstack([wr, np.ones((1, nr), dtype=wr.dtype)]).astype(np.float64)
    f = kernel_quadratic_forms(g, r, _indicators(gen_idx, ng), _indicators(ref_idx, nr), w, block=block, wr=wr)
    vals = _subset_mmd(f, gen_idx, ref_idx)
    sq_g, sq_r = (w**2).sum(axis=1), (wr**2).sum(axis=1)
    boot = ((f["gg_boot"] - (w**2) @ f["diag_g"]) / (ng * ng - sq_g)
            + (f["rr_boot"] - (wr**2) @ f["diag_r"]) / (nr * nr - sq_r) - 2.0 * f["gr_boot"] / (ng * nr))
    reps, full = boot[:-1], float(boot[-1])
    value = float(vals.mean())
    # the subset mean = full-set MMD² + subset-draw noise (E over subsets of the subset U-statistic is the
    # full-set U-statistic), whose variance given the data is var(subset values)/S
    se_sub = float(vals.std(ddof=1) / np.sqrt(subsets)) if subsets > 1 else 0.0
    lo, hi, info = _interval(full, reps, ci, "percentile")  # boot_mean/boot_std: of the full-set replicates
    if lo is not None:
        z = NormalDist().inv_cdf((1 + ci) / 2)
        se_jack = kid_jackknife_se(f, resample_ref=resample_ref)
        info = {**info, "ci_full_set": [lo, hi], "ci_shift": value - full, "se_subsets": se_sub, "se_jackknife": se_jack}
        info.pop("ci_centred", None)
        info.pop("ci_percentile", None)
        down, up = max(full - lo, z * se_jack), max(hi - full, z * se_jack)
        lo, hi = value - float(np.hypot(down, z * se_sub)), value + float(np.hypot(up, z * se_sub))
    return DistanceResult(value, lo, hi, ng, {
        "std": float(vals.std()), "subsets": subsets, "subset_size": m, "n_gen": ng, "n_ref": nr,
        "full_set_mmd2": full, "kernel": "(x·y/d + 1)^3", "resample_ref": resample_ref, **info,
        "ci_basis": KID_CI_BASIS if resample_ref else KID_CI_BASIS.replace(
            "generated and reference samples", "generated samples (reference fixed)"),
        "covers": "population MMD² between the generated and the reference distribution" if resample_ref
                  else "MMD² between the generated distribution and this reference set",
    })


def kid_jackknife_se(f: Mapping, *, resample_ref: bool = True) -> float:
    """Two-sample delete-one jackknife standard error of the full-set unbiased MMD² (poly kernel), from the kernel
    row sums of :func:`~tasks.fid_math.kernel_quadratic_forms` (O(N)): θ₍₋ᵢ₎ drops generated sample i (then,
    with ``resample_ref``, each reference sample j in turn); var = (n−1)/n Σ(θ₍₋ᵢ₎ − θ̄)² + (m−1)/m Σ(θ₍₋ⱼ₎ − θ̄)².
    By the Efron–Stein inequality its expectation is ≥ the true variance (second-order U-statistic term
    included), which the bootstrap misses when MMD² is small against its noise. 0 when a set has < 3 samples."""
    dg, dr = f["diag_g"], f["diag_r"]
    n, m = dg.size, dr.size
    if n < 3 or m < 3:
        return 0.0
    rg, rr = f["rows_g"] - dg, f["rows_r"] - dr  # off-diagonal row sums
    s_gg, s_rr, s_gr = float(rg.sum()), float(rr.sum()), float(f["cross_g"].sum())
    u_gg, u_rr = s_gg / (n * (n - 1)), s_rr / (m * (m - 1))
    t_g = (s_gg - 2.0 * rg) / ((n - 1) * (n - 2)) + u_rr - 2.0 * (s_gr - f["cross_g"]) / ((n - 1) * m)
    var = (n - 1) / n * float(((t_g - t_g.mean()) ** 2).sum())
    if resample_ref:
        t_r = u_gg + (s_rr - 2.0 * rr) / ((m - 1) * (m - 2)) - 2.0 * (s_gr - f["cross_r"]) / (n * (m - 1))
        var += (m - 1) / m * float(((t_r - t_r.mean()) ** 2).sum())
    return float(np.sqrt(var))


def relative_fd(gen, ref, *, rng=None, n_boot: int = 200, ci: float = 0.95, workers: int | None = None) -> DistanceResult:
    """Relative FD (Woodland et al., MICCAI 2024): FD(generated, real) / FD(real half A, real half B); 1 means
    "as far from the reference as other real images are" at this sample size.

    The reference features are split at random (``rng``) into halves A and B. FD_N is biased upward by ≈ k/N,
    so a ratio of FDs at different sample sizes would not be 1 even for real images: both FDs are therefore
    computed at the same size ``m = min(N_gen, |A|)`` against the same half B (generated features and A are
    subsampled to m without replacement): ``value = FD(gen_m, B) / FD(A_m, B)``. Interval: percentile bootstrap
    of the ratio, resampling the generated rows and A's rows independently (B fixed: its noise enters both FDs
    alike and largely cancels). ``details`` holds both FDs (``fd_gen``, ``fd_real_real``: the noise floor), m
    and the half sizes.
    """
    _check_ci(n_boot, ci, "percentile")
    split_rng, sub_rng, boot_rng = _rng(rng).spawn(3)
    g = _canonical(check_features(gen, "generated features"))
    r = _canonical(check_features(ref, "reference features"))
    check_same_dim(g, r.shape[1])
    n_ref = r.shape[0]
    if n_ref < 4:
        raise DataError(f"relative FD splits the reference in two halves of ≥ 2 images; got {n_ref} reference images")
    perm = split_rng.permutation(n_ref)
    a, b = r[np.sort(perm[: n_ref // 2])], r[np.sort(perm[n_ref // 2:])]
    m = min(g.shape[0], a.shape[0])
    g_m = g[np.sort(sub_rng.choice(g.shape[0], m, replace=False))] if g.shape[0] > m else g
    a_m = a[np.sort(sub_rng.choice(a.shape[0], m, replace=False))] if a.shape[0] > m else a
    st = gaussian_stats(b, with_sqrt=True)
    eng_g = GenGram(g_m, st["mu"], st["sigma"], st["sqrt_sigma"])
    eng_a = GenGram(a_m, st["mu"], st["sigma"], st["sqrt_sigma"])
    ones = np.ones(m, dtype=np.int64)
    fd_gen, fd_real = eng_g.fid(ones)[0], eng_a.fid(ones)[0]
    if not fd_real > 0:
        raise DataError(f"relative FD: the two real halves have FD {fd_real:.3g} (identical or constant reference "
                        "features), so the ratio is undefined; use more, or more varied, reference images")
    value = fd_gen / fd_real
    reps = eng_g.fids(_boot_weights(boot_rng, m, n_boot), workers=workers)
    reps_real = eng_a.fids(_boot_weights(boot_rng, m, n_boot), workers=workers)
    lo, hi, info = _interval(value, reps / np.where(reps_real > 0, reps_real, np.nan) if n_boot else reps, ci,
                             "percentile")
    return DistanceResult(value, lo, hi, int(g.shape[0]), {
        "fd_gen": fd_gen, "fd_real_real": fd_real, "m": m, "n_gen": int(g.shape[0]), "n_ref": n_ref,
        "half_a": int(a.shape[0]), "half_b": int(b.shape[0]), "d": int(g.shape[1]),
        "definition": "FD(generated_m, B) / FD(A_m, B); A, B a random split of the reference, m = min(N_gen, |A|)",
        "reference": "Woodland et al., MICCAI 2024", **info,
    })


#: FID∞'s interval is not reported when N ≤ d. There the generated covariance of every subset is singular and
#: E[FID_N] is not a + k/N (for N ≪ d the trace term grows like √(N·d), not as 1/N), so the linear
#: extrapolation can be off by far more than any error bar it could carry (simulation: d = 512, N = 100–300,
#: intervals 200–300 wide covered the true FID in 0 of 20 sets). The value is still reported with this note.
FID_INF_REFUSED = ("interval not reported: N = {n} ≤ d = {d}, so every subset's covariance is singular and FID_N is "
                   "not linear in 1/N; the extrapolated FID∞ is unreliable here (use N > d, ideally N/5 > d)")
FID_INF_CI_BASIS = ("centred bootstrap spread of FID_N around the intercept (ci_bootstrap); each side widened in "
                    "quadrature by z·se_a (OLS error of the fit over the subset draws) and by model_error = "
                    "|a_quadratic − a| (linear vs quadratic extrapolation in 1/N)")
KID_CI_BASIS = ("per side, the wider of the percentile bootstrap of the full-set unbiased MMD² resampling generated "
                "and reference samples (ci_full_set) and z·se_jackknife (two-sample delete-one jackknife: by "
                "Efron–Stein not below the true variance); shifted onto the subset mean and each side widened in "
                "quadrature by z·se_subsets (the subset draws' noise)")


def metric_names(ctx: TaskContext) -> dict[str, str]:
    """Leaderboard names from the extractor's naming rule: FID / FID_inf / KID in Inception space,
    FD_<s> / FD_<s>_inf / KD_<s> elsewhere."""
    fd = ctx.metric_name("FD")
    return {"fid": fd, "fid_inf": f"{fd}_inf", "kid": ctx.metric_name("KD")}


@task_registry.register("fid")
class FIDTask(Task):
    """Fréchet distance (FID in Inception space, FD_<space> otherwise), FID∞ and KID, with bootstrap CIs."""

    spec = TaskSpec(
        name="fid",
        version="1",
        description="FID/FD with bootstrap CI, FID∞ (Chong & Forsyth 2020) and KID (Bińkowski et al. 2018)",
        parameters={
            "metrics": "fid,fid_inf,kid,fid_rel", "n_boot": 200, "ci": 0.95, "ci_method": "centred",
            "fid_inf_sizes": 15, "fid_inf_min_fraction": 0.2, "fid_inf_draws": 3,
            "kid_subsets": 100, "kid_subset_size": 1000,
        },
        ranges={"n_boot": (0, 100_000), "ci": (0.5, 0.9999), "fid_inf_sizes": (2, 1000), "fid_inf_min_fraction": (0.01, 1.0),
                "fid_inf_draws": (1, 1000), "kid_subsets": (1, 100_000), "kid_subset_size": (2, 1_000_000)},
    )

    def evaluate(self, ctx: TaskContext) -> list[MetricResult]:
        if ctx.gen_features is None:
            raise UsageError("task 'fid' needs generated features")
        space = ctx.feature_space or "unknown"
        p = dict(self.params)
        wanted = [m.strip() for m in str(p.pop("metrics")).split(",") if m.strip()]
        relative = "fid_rel" in wanted  # FD_<space>_rel = FD / real-vs-real FD (relative_fd)
        wanted = [m for m in wanted if m != "fid_rel"]
        stats = ctx.ref_stats() if ctx.ref_stats is not None else None
        res = fid_family(ctx.gen_features, ctx.ref_features, ref_stats=stats, rng=ctx.rng, metrics=wanted,
                         progress=ctx.progress, **p)
        names = metric_names(ctx)
        out = []
        for key in METRICS:
            if key not in res:
                continue
            r = res[key]
            details = {**r.details, "feature_space": space}
            if ctx.feature_substitute:
                details["substitute"] = f"{space} is a stand-in feature space (random-init weights): NOT {names[key]} as published"
            out.append(MetricResult(names[key], r.value, r.ci_low, r.ci_high, r.n, higher_is_better=False,
                                    feature_space=space, details=details, substitute=ctx.feature_substitute))
        if relative:
            out.extend(self._relative(ctx, space, p))
        return out

    @staticmethod
    def _relative(ctx: TaskContext, space: str, p: dict) -> list[MetricResult]:
        """``FD_<space>_rel`` (:func:`relative_fd`) on a child stream of ``ctx.rng`` spawned after the FID family's,
        so turning it on or off changes no other number."""
        if ctx.ref_features is None or len(ctx.ref_features) < 4:
            log.warning("relative FD skipped: it needs ≥ 4 reference feature rows (two halves of ≥ 2), not only their "
                        "statistics")
            return []
        name = ctx.metric_name("FD") + "_rel"
        r = relative_fd(ctx.gen_features, ctx.ref_features, rng=ctx.rng.spawn(1)[0],
                        n_boot=int(p["n_boot"]), ci=float(p["ci"]))
        details = {**r.details, "feature_space": space, "note": "1 = as far from the reference as real images are"}
        if ctx.feature_substitute:
            details["substitute"] = f"{space} is a stand-in feature space (random-init weights): NOT {name} as published"
        return [MetricResult(name, r.value, r.ci_low, r.ci_high, r.n, higher_is_better=False, feature_space=space,
                             details=details, substitute=ctx.feature_substitute)]
