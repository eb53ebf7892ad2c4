"""Diversity (METRICS.md): precision/recall/density/coverage, Vendi score, intra-set MS-SSIM.

Python API (pure functions, frozen results)::

    from tasks import diversity
    diversity.prdc(real_feats, fake_feats, k=5)               # Naeem et al. 2020; equals the `prdc` package
    diversity.vendi(feats)                                     # Friedman & Dieng 2023; equals `vendi_score.score_X`
    diversity.intra_ms_ssim(images, rng=np.random.default_rng(0), n_pairs=500)   # Odena et al. 2017
    diversity.ms_ssim(x, y)                                    # equals `pytorch_msssim.ms_ssim` (5 scales)

**PRDC** is computed in blocks of real rows, so the N × N distance matrices are never held at once
(N = 10,000 works); distances are ``sklearn.metrics.pairwise.euclidean_distances`` as in ``prdc``, and the
k-th neighbour radius excludes the point itself (``prdc``'s convention). k must be below both set sizes.

**Vendi** with the cosine kernel: rows normalised to unit length, K = X Xᵀ, score = exp(H(eig(K / n))). The
non-zero eigenvalues of X Xᵀ / n equal those of the d × d matrix Xᵀ X / n, so the smaller of the two is
decomposed (``method="auto"``): N = 10,000 in 2048-d costs one 2048 × 2048 eigen-decomposition.

**Standardisation** (the task's default, ``standardise=True``): before k-NN and Vendi both sets are
standardised with the *reference* set's per-feature mean and standard deviation (ddof=1; a constant reference
feature is only centred), :func:`standardise`. Without it the features with the largest raw scale (e.g. a
radiomics texture energy) decide every nearest neighbour and the cosine kernel sees mostly the common offset,
so PRDC collapses to 0 and Vendi to ≈ 1 for every generator. Vendi then centres each set on its own mean
(``vendi_center=True``, the default since task version 2): it measures a set's spread, not its distance from the
reference — uncentred, any set far from the reference mean scores ≈ 1 whatever its diversity. Precision, recall,
density and coverage stay 0 for a generator none of whose images falls inside a real image's k-NN ball: that is
their definition (no generated image is "realistic" at that k), and then FD/KD rank such generators, not PRDC.
dgm-eval (Stein et al. 2023) computes these metrics in DINOv2 space, where no feature dominates: ``harness run``
without ``--features`` does so when the DINOv2 weights are on the machine.

**Intervals** (:func:`prdc_bootstrap`, :func:`vendi_bootstrap`): precision and density are means over generated
points, recall and coverage means over reference points, each of a per-point value given the k-NN radii; their
percentile bootstrap resamples those points with the radii held fixed (a resample that repeats a point would
give it a k-NN radius of 0). The Vendi interval resamples the set's rows; repeated rows lower the score, so the
interval is centred on the estimate (percentiles of v̂ + v*_b − mean v*).

**MS-SSIM** on BT.601 luma (0–255), Gaussian window 11 / σ 1.5, K = (0.01, 0.03), 5 scales with the
Wang et al. weights, exactly as ``pytorch_msssim.ms_ssim``. Images too small for 4 downsamplings use the
largest number of scales L whose coarsest image is still ≥ the window, with the first L weights renormalised
(recorded in the result). Intra-set MS-SSIM is the mean over ``n_pairs`` random pairs of distinct images
(seeded); images of other sizes than the set's most common size are resized to it (area interpolation).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import DataError, UsageError
from harness.registry import tasks as task_registry
from tasks.base import MetricResult, Task, TaskContext, TaskSpec

__all__ = ["DiversityTask", "MSSSIMResult", "PRDCResult", "VendiResult", "intra_ms_ssim", "ms_ssim", "prdc",
           "prdc_bootstrap", "standardise", "vendi", "vendi_bootstrap"]
log = logging.getLogger(__name__)

MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _features(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise DataError(f"{what}: expected a non-empty (N, d) feature array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError(f"{what}: features contain NaN or inf")
    return x


# PRDC ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PRDCResult:
    precision: float
    recall: float
    density: float
    coverage: float
    k: int
    n_real: int
    n_fake: int
    #: per-point values the four numbers average (for intervals): ``fake_counts`` (reference balls containing each
    #: generated point), ``real_recalled``, ``real_covered`` (booleans per reference point)
    per_point: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)


def _knn_radii(x: np.ndarray, k: int, block: int) -> np.ndarray:
    from sklearn.metrics.pairwise import euclidean_distances

    out = np.empty(x.shape[0])
    for s in range(0, x.shape[0], block):
        d = euclidean_distances(x[s:s + block], x)
        out[s:s + block] = np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself
    return out


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5, *, block: int = 2048) -> PRDCResult:
    """Precision, recall, density and coverage (Naeem et al. 2020) of ``fake`` w.r.t. ``real`` features.

    Equal to ``prdc.compute_prdc(real, fake, k)``. Raises DataError when k ≥ either set size.
    """
    from sklearn.metrics.pairwise import euclidean_distances

    r, f = _features(real, "prdc real features"), _features(fake, "prdc fake features")
    if r.shape[1] != f.shape[1]:
        raise DataError(f"prdc: real features are {r.shape[1]}-d, fake features {f.shape[1]}-d")
    if int(k) != k or k < 1:
        raise UsageError(f"prdc: k must be a positive integer (got {k})")
    k = int(k)
    smallest = min(r.shape[0], f.shape[0])
    if k >= smallest:
        raise DataError(f"prdc: k={k} nearest neighbours need at least k + 1 = {k + 1} samples in each set; got "
                        f"{r.shape[0]} real and {f.shape[0]} fake. Use more images or a smaller k "
                        f"(diversity.k ≤ {smallest - 1})")
    r_rad, f_rad = _knn_radii(r, k, block), _knn_radii(f, k, block)
    counts = np.zeros(f.shape[0], dtype=np.int64)
    recall_hit = np.zeros(r.shape[0], dtype=bool)
    covered = np.zeros(r.shape[0], dtype=bool)
    for s in range(0, r.shape[0], block):
        d = euclidean_distances(r[s:s + block], f)
        inside = d < r_rad[s:s + block, None]
        counts += inside.sum(axis=0)
        recall_hit[s:s + block] = (d < f_rad[None, :]).any(axis=1)
        covered[s:s + block] = d.min(axis=1) < r_rad[s:s + block]
    return PRDCResult(precision=float((counts > 0).mean()), recall=float(recall_hit.mean()),
                      density=float(counts.mean() / k), coverage=float(covered.mean()), k=k,
                      n_real=r.shape[0], n_fake=f.shape[0],
                      per_point={"fake_counts": counts, "real_recalled": recall_hit, "real_covered": covered})


def standardise(reference: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(x − μ_ref) / σ_ref`` for the reference and each other set: the reference's per-feature mean and standard
    deviation (ddof=1); a feature constant in the reference is centred only (σ taken as 1). Returns the
    reference and the others, in order, as float64."""
    ref = _features(reference, "reference features")
    mu = ref.mean(axis=0)
    sd = ref.std(axis=0, ddof=1) if ref.shape[0] > 1 else np.ones(ref.shape[1])
    sd = np.where(sd > 0, sd, 1.0)
    out = [(ref - mu) / sd]
    for i, x in enumerate(others):
        x = _features(x, f"features {i + 1}")
        if x.shape[1] != ref.shape[1]:
            raise DataError(f"standardise: reference features are {ref.shape[1]}-d, set {i + 1} is {x.shape[1]}-d")
        out.append((x - mu) / sd)
    return tuple(out)


def _percentile_ci(reps: np.ndarray, ci: float) -> tuple[float, float]:
    lo, hi = np.percentile(reps, [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100])
    return float(lo), float(hi)


def prdc_bootstrap(result: PRDCResult, *, rng: np.random.Generator, n_boot: int = 200,
                   ci: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals ``{metric: (low, high)}`` of precision, recall, density and coverage.

    Precision/density resample the generated points' per-point values (neighbour counts), recall/coverage the
    reference points' indicators; the k-NN radii stay those of the full sets (see the module docstring).
    """
    if n_boot < 1 or not 0 < ci < 1:
        raise UsageError(f"prdc_bootstrap: need n_boot ≥ 1 and 0 < ci < 1 (got {n_boot}, {ci})")
    pp = result.per_point
    counts = pp["fake_counts"].astype(np.float64)
    rec, cov = pp["real_recalled"].astype(np.float64), pp["real_covered"].astype(np.float64)
    fi = rng.integers(0, counts.size, (n_boot, counts.size))
    ri = rng.integers(0, rec.size, (n_boot, rec.size))
    reps = {"precision": (counts[fi] > 0).mean(axis=1), "density": counts[fi].mean(axis=1) / result.k,
            "recall": rec[ri].mean(axis=1), "coverage": cov[ri].mean(axis=1)}
    return {name: _percentile_ci(v, ci) for name, v in reps.items()}


# Vendi --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VendiResult:
    value: float
    n: int
    method: str  # "gram" (n × n) or "covariance" (d × d)
    centred: bool


def vendi(features: np.ndarray, *, method: str = "auto", center: bool = False) -> VendiResult:
    """Vendi score with the cosine kernel (equal to ``vendi_score.vendi.score_X(features)``).

    ``method``: ``"gram"`` decomposes K/n (n × n), ``"covariance"`` XᵀX/n (d × d, same non-zero spectrum),
    ``"auto"`` the smaller. ``center=True`` subtracts the set's own feature mean first (the diversity task's
    default): Vendi then measures the spread of the set around its mean and is unchanged by a shift of the whole
    set. Without it (the vendi-score package's convention) a set far from the origin — after standardising with
    the *reference's* mean, any set far from the reference — has one dominant common direction, every cosine is
    close to 1 and Vendi → 1 whatever the set's diversity (tiny CycleGAN/CUT on the phantom: 1.001/1.005
    uncentred, 2.5/3.4 centred, real 9.1).
    """
    x = _features(features, "vendi features")
    if method not in ("auto", "gram", "covariance"):
        raise UsageError(f"vendi: method must be auto, gram or covariance (got {method!r})")
    if center:
        x = x - x.mean(axis=0)
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        bad = np.flatnonzero(norms == 0)[:5].tolist()
        raise DataError(f"vendi: feature rows {bad} have zero length; the cosine kernel is undefined for them")
    x = x / norms[:, None]
    n, d = x.shape
    if method == "auto":
        method = "gram" if n <= d else "covariance"
    mat = x @ x.T if method == "gram" else x.T @ x
    w = np.linalg.eigvalsh(mat / n)
    w = w[w > 0]
    return VendiResult(value=float(np.exp(-(w * np.log(w)).sum())), n=n, method=method, centred=center)


def vendi_bootstrap(features: np.ndarray, *, rng: np.random.Generator, n_boot: int = 200, ci: float = 0.95,
                    center: bool = False, method: str = "centred") -> tuple[float, float]:
    """Bootstrap interval of :func:`vendi`: rows resampled with replacement, each resample's score from the d × d
    or n × n spectrum of its count-weighted rows (whichever is smaller).

    A resample repeats rows, which lowers its diversity: the replicates sit below the estimate (≈ 10 % at
    n = 200, d = 97, measured). ``method="centred"`` (default) therefore takes the percentiles of
    ``v̂ + (v*_b − mean v*)``, as the FID family does; ``"percentile"`` gives the plain percentile interval.
    """
    if n_boot < 1 or not 0 < ci < 1 or method not in ("centred", "percentile"):
        raise UsageError(f"vendi_bootstrap: need n_boot ≥ 1, 0 < ci < 1, method centred/percentile (got {n_boot}, "
                         f"{ci}, {method!r})")
    x = _features(features, "vendi features")
    if center:
        x = x - x.mean(axis=0)
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        raise DataError("vendi: feature rows have zero length; the cosine kernel is undefined for them")
    x = x / norms[:, None]
    n, d = x.shape
    reps = np.empty(n_boot)
    for b in range(n_boot):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        if d < n:
            mat = (x * w[:, None]).T @ x / n  # Xᵀ W X / n: the non-zero spectrum of the resampled K / n
        else:
            s = np.flatnonzero(w)
            xs = x[s] * np.sqrt(w[s])[:, None]
            mat = xs @ xs.T / n
        lam = np.linalg.eigvalsh(mat)
        lam = lam[lam > 0]
        reps[b] = np.exp(-(lam * np.log(lam)).sum())
    if method == "percentile":
        return _percentile_ci(reps, ci)
    value = vendi(features, center=center).value
    lo, hi = _percentile_ci(reps - reps.mean(), ci)
    return value + lo, value + hi


# MS-SSIM ------------------------------------------------------------------------------------------
def _gauss(win: int, sigma: float):
    import torch

    coords = torch.arange(win, dtype=torch.float32) - win // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _filter(x, g):
    import torch.nn.functional as F

    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def n_scales(height: int, width: int, win: int = 11) -> int:
    """Number of MS-SSIM scales (≤ 5) whose coarsest image is at least ``win`` pixels."""
    side, levels = min(height, width), 0
    while levels < 5 and side >= win:
        levels += 1
        side = (side + 1) // 2
    return levels


def ms_ssim(x, y, *, data_range: float = 255.0, win: int = 11, sigma: float = 1.5,
            k: tuple[float, float] = (0.01, 0.03), levels: int | None = None):
    """MS-SSIM per pair of (B, C, H, W) float tensors (mean over channels), as ``pytorch_msssim.ms_ssim``.

    ``levels`` defaults to :func:`n_scales` (5 for images ≥ 176 px with ``win`` 11); with fewer than 5 the
    first ``levels`` weights are renormalised to sum 1. Returns a (B,) tensor.
    """
    import torch
    import torch.nn.functional as F

    if x.shape != y.shape or x.ndim != 4:
        raise DataError(f"ms_ssim: need two (B, C, H, W) tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    levels = levels or n_scales(x.shape[2], x.shape[3], win)
    if levels < 1 or n_scales(x.shape[2], x.shape[3], win) < levels:
        raise DataError(f"ms_ssim: images of {x.shape[2]}×{x.shape[3]} are too small for {max(levels, 1)} scale(s) "
                        f"with an {win}-pixel window")
    weights = torch.tensor(MS_WEIGHTS[:levels], dtype=x.dtype)
    weights = weights / weights.sum() if levels < 5 else weights
    g = _gauss(win, sigma).to(x.dtype)
    c1, c2 = (k[0] * data_range) ** 2, (k[1] * data_range) ** 2
    mcs = []
    for i in range(levels):
        c = x.shape[1]  # one grouped convolution for the five filtered maps
        mu1, mu2, f11, f22, f12 = _filter(torch.cat([x, y, x * x, y * y, x * y], dim=1), g).split(c, dim=1)
        s11, s22, s12 = f11 - mu1 * mu1, f22 - mu2 * mu2, f12 - mu1 * mu2
        cs_map = (2 * s12 + c2) / (s11 + s22 + c2)
        ssim_map = ((2 * mu1 * mu2 + c1) / (mu1 * mu1 + mu2 * mu2 + c1)) * cs_map
        if i < levels - 1:
            mcs.append(torch.relu(cs_map.flatten(2).mean(-1)))
            pad = [s % 2 for s in x.shape[2:]]
            x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
    last = torch.relu(ssim_map.flatten(2).mean(-1))
    stack = torch.stack(mcs + [last], dim=0)
    return torch.prod(stack ** weights.view(-1, 1, 1), dim=0).mean(1)


@dataclass(frozen=True)
class MSSSIMResult:
    value: float  # mean over pairs
    ci_low: float
    ci_high: float
    n_pairs: int
    n_images: int
    details: dict[str, Any] = field(default_factory=dict)


def modal_size(images: Sequence[np.ndarray]) -> tuple[int, int]:
    """The most common (height, width) of a set of images."""
    shapes = [tuple(np.asarray(im).shape[:2]) for im in images]
    values, counts = np.unique(np.array(shapes), axis=0, return_counts=True)
    return tuple(int(v) for v in values[int(np.argmax(counts))])


def _gray_stack(images: Sequence[np.ndarray], size: tuple[int, int] | None = None) -> tuple[np.ndarray, dict]:
    import cv2

    target = tuple(size) if size is not None else modal_size(images)
    out = np.empty((len(images), *target), dtype=np.float32)
    resized = 0
    for i, im in enumerate(images):
        im = np.asarray(im)
        if im.dtype != np.uint8:
            raise DataError(f"intra-set MS-SSIM: image {i} has dtype {im.dtype}; expected 8-bit images (0..255, "
                            "data range 255), as image sets store them")
        g = im.astype(np.float32) if im.ndim == 2 else (im[..., :3].astype(np.float32) @ LUMA if im.shape[2] >= 3
                                                        else im[..., 0].astype(np.float32))
        if g.shape != target:
            g = cv2.resize(g, (target[1], target[0]), interpolation=cv2.INTER_AREA)
            resized += 1
        out[i] = g
    return out, {"size": list(target), "resized": resized}


def intra_ms_ssim(images: Sequence[np.ndarray], *, rng: np.random.Generator, n_pairs: int = 500,
                  win: int = 11, batch: int = 32, size: tuple[int, int] | None = None) -> MSSSIMResult:
    """Mean MS-SSIM over ``n_pairs`` random pairs of distinct images of one set (lower = more diverse).

    Images are 8-bit (data range 255), converted to gray and resized to ``size`` (default: the set's most
    common size); the number of scales follows from that size, so two sets compared with the same ``size``
    are measured alike. The interval is mean ± 1.96 standard errors over pairs (normal approximation).
    """
    import torch

    n = len(images)
    if n < 2:
        raise DataError(f"intra-set MS-SSIM needs at least 2 images (got {n})")
    if n_pairs < 1:
        raise UsageError(f"intra-set MS-SSIM: n_pairs must be ≥ 1 (got {n_pairs})")
    gray, info = _gray_stack(images, size)
    levels = n_scales(*gray.shape[1:], win)
    if levels < 1:
        raise DataError(f"intra-set MS-SSIM: images of {gray.shape[1]}×{gray.shape[2]} are smaller than the "
                        f"{win}-pixel window")
    i = rng.integers(0, n, n_pairs)
    j = (i + rng.integers(1, n, n_pairs)) % n
    t = torch.from_numpy(gray).unsqueeze(1)
    vals = []
    with torch.no_grad():
        for s in range(0, n_pairs, batch):
            vals.append(ms_ssim(t[i[s:s + batch]], t[j[s:s + batch]], win=win, levels=levels).numpy())
    v = np.concatenate(vals).astype(np.float64)
    mean = float(v.mean())
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
    return MSSSIMResult(mean, mean - 1.96 * se, mean + 1.96 * se, int(v.size), n,
                        {**info, "levels": levels, "window": win, "std": float(v.std())})


# task -------------------------------------------------------------------------------------------
@task_registry.register("diversity")
class DiversityTask(Task):
    """Precision/recall/density/coverage (k-NN), Vendi score and intra-set MS-SSIM, generated vs reference."""

    spec = TaskSpec(
        name="diversity",
        version="2",  # 2: Vendi centres each set on its own mean by default (vendi_center=True)
        description="Precision, recall, density, coverage (Naeem et al. 2020), Vendi score (cosine kernel) and "
                    "intra-set MS-SSIM, for the generated and the reference set side by side",
        needs_images=True,
        default_features="dinov2",  # without --features: DINOv2 when its weights are on this machine, else Inception
        parameters={"k": 5, "vendi_center": True, "msssim_pairs": 200, "msssim_window": 11,
                    "standardise": True, "n_boot": 200, "ci": 0.95},
        ranges={"k": (1, 1000), "msssim_pairs": (0, 1_000_000), "msssim_window": (3, 63), "n_boot": (0, 100_000),
                "ci": (0.5, 0.999)},
    )

    def evaluate(self, ctx: TaskContext) -> list[MetricResult]:
        if ctx.gen_features is None or ctx.ref_features is None:
            raise UsageError("task 'diversity' needs generated and reference features")
        p = self.params
        space = ctx.feature_space
        gen_rng, ref_rng = ctx.rng.spawn(2)
        boot_rng = ctx.rng.spawn(1)[0]  # after the MS-SSIM streams: their numbers do not depend on the intervals
        n_boot, ci, sub = int(p["n_boot"]), float(p["ci"]), ctx.feature_substitute
        ref_f, gen_f = ctx.ref_features, ctx.gen_features
        scaling = "none (raw features)"
        if p["standardise"]:
            ref_f, gen_f = standardise(ref_f, gen_f)
            scaling = "standardised with the reference set's per-feature mean and std (ddof=1)"
        pr = prdc(ref_f, gen_f, int(p["k"]))
        cis = prdc_bootstrap(pr, rng=boot_rng, n_boot=n_boot, ci=ci) if n_boot else {}
        common = {"k": pr.k, "n_real": pr.n_real, "n_fake": pr.n_fake, "reference": "Naeem et al. 2020 (prdc)",
                  "features": scaling, "n_boot": n_boot, "ci_level": ci,
                  "ci_method": "percentile bootstrap over points, k-NN radii fixed"}
        out = [MetricResult(name, getattr(pr, name), *cis.get(name, (None, None)), pr.n_fake, higher_is_better=True,
                            feature_space=space, details=dict(common), substitute=sub)
               for name in ("precision", "recall", "density", "coverage")]
        center = bool(p["vendi_center"])
        v_gen, v_ref = vendi(gen_f, center=center), vendi(ref_f, center=center)
        for name, v, other, feats in (("vendi", v_gen, v_ref, gen_f), ("vendi_reference", v_ref, v_gen, ref_f)):
            lo, hi = vendi_bootstrap(feats, rng=boot_rng, n_boot=n_boot, ci=ci, center=center) if n_boot else (None, None)
            out.append(MetricResult(name, v.value, lo, hi, v.n, higher_is_better=True, feature_space=space,
                                    details={"kernel": "cosine", "method": v.method, "centred": v.centred,
                                             "other_set_value": other.value, "features": scaling, "n_boot": n_boot,
                                             "ci_method": "centred bootstrap over rows"}, substitute=sub))
        if ctx.gen_images is not None and ctx.ref_images is not None:
            ref_images = ctx.ref_images()
            # both sets at the reference's size, hence the same number of scales: comparable numbers
            kw = {"n_pairs": int(p["msssim_pairs"]), "win": int(p["msssim_window"]), "size": modal_size(ref_images)}
            m_gen = intra_ms_ssim(ctx.gen_images(), rng=gen_rng, **kw)
            m_ref = intra_ms_ssim(ref_images, rng=ref_rng, **kw)
            for name, m, other in (("ms_ssim_intra", m_gen, m_ref), ("ms_ssim_intra_reference", m_ref, m_gen)):
                out.append(MetricResult(name, m.value, m.ci_low, m.ci_high, m.n_images, higher_is_better=False,
                                        feature_space="pixels", details={**m.details, "n_pairs": m.n_pairs, "other_set_value": other.value,
                                                 "note": "lower = more diverse; compare with the reference set"}))
        return out
