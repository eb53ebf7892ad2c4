"""Pure math behind the FID family: Gaussian statistics, the Fréchet distance and its Gram-matrix form.

Everything is float64 numpy; no I/O, no printing, no global state. :mod:`tasks.fid` builds the public API
(results with confidence intervals, FID∞, KID, the task) on top of this module.

The trace term
--------------
``Tr((Σ₁Σ₂)^½) = Σᵢ √λᵢ(A Σ₂ A)`` with ``A = Σ₁^½`` (symmetric, from ``eigh``; METRICS.md). For a generated
sample ``X`` (n × d, weights ``w``), ``A Σ₂ A = Lᵀ L`` with ``L = diag(√w) (X − 1μ_wᵀ) A / √(n−1)``, so its
non-zero eigenvalues are those of ``L Lᵀ``, an s × s matrix (s = rows with non-zero weight). With
``Y = (X − μ) A`` and ``K = Y Yᵀ`` precomputed once, every subset or bootstrap resample costs one s × s
``eigvalsh`` instead of a d × d covariance and eigen-decomposition: :class:`GenGram` does this, and picks the
d × d route whenever s > d (same numbers, cheaper there).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from harness.errors import DataError

#: eigenvalues below ``size × eps × λ_max`` (eigvalsh's rounding level) are set to 0.
#: a negative eigenvalue below ``-NEG_REL_TOL × λ_max`` means the matrix is not PSD (imaginary square root).
NEG_REL_TOL = 1e-6


def check_features(x: np.ndarray, name: str, *, min_rows: int = 2) -> np.ndarray:
    """Validate an (N, d) feature array named ``name`` ("generated features", ...) and return it as float64."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise DataError(f"{name}: expected an (N, d) array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"{name}: expected numeric features, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.shape[0] < min_rows:
        raise DataError(f"{name}: {arr.shape[0]} sample(s); at least {min_rows} are needed (covariance uses ddof=1)")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise DataError(
            f"{name}: {bad.sum()} non-finite value(s) (NaN/Inf) in {rows.size} row(s), first at row {rows[0]}; "
            "re-extract the features or drop those images"
        )
    return arr


def check_same_dim(gen: np.ndarray, d_ref: int) -> None:
    if gen.shape[1] != d_ref:
        raise DataError(
            f"feature dimensions differ: generated features have d={gen.shape[1]}, reference d={d_ref}; "
            "both sets must come from the same extractor"
        )


def gaussian_stats(x: np.ndarray, *, with_sqrt: bool = True) -> dict:
    """Mean, covariance (ddof=1, as ``numpy.cov``) and, optionally, its symmetric square root.

    Returns ``dict(mu, sigma, sqrt_sigma, n)`` (``sqrt_sigma`` is None without ``with_sqrt``). This is the
    dict the reference-statistics cache stores.
    """
    x = check_features(x, "features")
    mu = x.mean(axis=0)
    xc = x - mu
    sigma = (xc.T @ xc) / (x.shape[0] - 1)
    sigma = (sigma + sigma.T) / 2
    return {"mu": mu, "sigma": sigma, "sqrt_sigma": sqrtm_psd(sigma, "sigma") if with_sqrt else None, "n": x.shape[0]}


def _clip_eigs(lam: np.ndarray, what: str) -> np.ndarray:
    """Zero eigenvalues at rounding level; raise when a negative one is beyond rounding (no silent ``.real``)."""
    if lam.size == 0:
        return lam
    top = max(float(np.max(np.abs(lam))), np.finfo(float).tiny)
    if lam.min() < -NEG_REL_TOL * top:
        raise DataError(
            f"{what} is not positive semi-definite: eigenvalue {lam.min():.3e} (largest |λ| {top:.3e}, tolerance "
            f"{NEG_REL_TOL:g} relative); its square root would be complex. Check that covariances are real "
            "covariance matrices (symmetric, ddof=1) of finite features"
        )
    return np.where(lam > lam.size * np.finfo(float).eps * top, lam, 0.0)


def sqrtm_psd(sigma: np.ndarray, name: str = "sigma") -> np.ndarray:
    """Symmetric PSD square root from ``eigh`` (tiny negative eigenvalues clipped to 0)."""
    sym = (sigma + sigma.T) / 2
    lam, vec = np.linalg.eigh(sym)
    lam = _clip_eigs(lam, name)
    root = (vec * np.sqrt(lam)) @ vec.T
    return (root + root.T) / 2


def trace_sqrt_eigs(m: np.ndarray, what: str, *, lower: bool = False) -> float:
    """``Σ √λᵢ(m)`` for a symmetric PSD matrix ``m`` (``lower``: only its lower triangle is valid)."""
    lam = _clip_eigs(np.linalg.eigvalsh(m if lower else (m + m.T) / 2), what)
    return float(np.sqrt(lam).sum())


def check_stats(mu: np.ndarray, sigma: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    sigma = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
        raise DataError(f"{name}: mean of shape {mu.shape} and covariance of shape {sigma.shape} do not match")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise DataError(f"{name}: statistics contain NaN/Inf")
    return mu, sigma


#: a supplied square root A must reproduce its covariance: ‖A·A·v − Σ·v‖ ≤ SQRT_REL_TOL · ‖Σ‖_F · ‖v‖.
SQRT_REL_TOL = 1e-6


def check_sqrt(root: np.ndarray, sigma: np.ndarray, name: str) -> np.ndarray:
    """Validate a supplied (e.g. cached) symmetric square root of ``sigma`` and return it as float64.

    Shape, finiteness, symmetry, and ``A·A ≈ Σ`` on three fixed probe vectors (O(d²), no d³ product): a stale
    root, or one that belongs to other statistics, is an error instead of a silently wrong distance.
    """
    a = np.asarray(root, dtype=np.float64)
    if a.shape != sigma.shape:
        raise DataError(f"{name}: square root has shape {a.shape}, the covariance {sigma.shape}")
    if not np.isfinite(a).all():
        raise DataError(f"{name}: square root contains NaN/Inf; drop it (it is recomputed) or re-create the cache")
    top = max(float(np.abs(a).max(initial=0.0)), np.finfo(float).tiny)
    asym = float(np.abs(a - a.T).max(initial=0.0))
    if asym > 1e-8 * top:
        raise DataError(f"{name}: square root is not symmetric (max |A − Aᵀ| = {asym:.3e}, max |A| = {top:.3e})")
    probes = np.random.default_rng(0).standard_normal((a.shape[0], 3))
    err = float(np.linalg.norm(a @ (a @ probes) - sigma @ probes, axis=0).max(initial=0.0))
    scale = float(np.linalg.norm(sigma)) * float(np.linalg.norm(probes, axis=0).max(initial=0.0))
    if err > SQRT_REL_TOL * max(scale, np.finfo(float).tiny):
        raise DataError(
            f"{name}: the square root does not square to the covariance (‖A·A·v − Σ·v‖ = {err:.3e}, "
            f"{err / max(scale, np.finfo(float).tiny):.1e} relative; tolerance {SQRT_REL_TOL:g}): it is stale or "
            "belongs to other statistics. Drop sqrt_sigma (it is recomputed) or clear the reference-statistics cache"
        )
    return a


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> tuple[float, str]:
    """``Tr((Σ₁Σ₂)^½)`` without a cached square root (the cold path); returns (value, route).

    Route ``"cholesky"`` when Σ₁ is positive definite: with Σ₁ = LLᵀ, Σ₁Σ₂ is similar to LᵀΣ₂L (symmetric PSD),
    so the trace is Σᵢ √λᵢ(LᵀΣ₂L): one Cholesky and one ``eigvalsh`` instead of an ``eigh`` (for Σ₁^½) and an
    ``eigvalsh``. Route ``"eigh"`` (A = Σ₁^½ from ``eigh``, Σᵢ √λᵢ(AΣ₂A)) when the Cholesky factorisation fails,
    i.e. Σ₁ is singular or indefinite to rounding (e.g. N ≤ d samples).
    """
    sym = (sigma1 + sigma1.T) / 2
    try:
        low = np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        low = None
    if low is not None and np.isfinite(low).all():
        return trace_sqrt_eigs(low.T @ sigma2 @ low, "Lᵀ·sigma2·L (sigma1 = L·Lᵀ)"), "cholesky"
    a = sqrtm_psd(sigma1, "sigma1")
    return trace_sqrt_eigs(a @ sigma2 @ a, "A·sigma2·A (A = sigma1^½)"), "eigh"


def frechet_distance(mu1, sigma1, mu2, sigma2, *, sqrt_sigma1: np.ndarray | None = None) -> float:
    """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) (Heusel et al. 2017; Dowson & Landau 1982).

    ``‖μ₁−μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2 Tr((Σ₁Σ₂)^½)``. With ``sqrt_sigma1`` (e.g. the cached reference square
    root A = Σ₁^½) the trace is Σᵢ √λᵢ(A Σ₂ A); without it, :func:`trace_sqrt_product` (Cholesky route when Σ₁
    is positive definite, else ``eigh``). Equal to ``cleanfid.fid.frechet_distance`` without
    ``scipy.linalg.sqrtm``.
    """
    mu1, sigma1 = check_stats(mu1, sigma1, "first statistics")
    mu2, sigma2 = check_stats(mu2, sigma2, "second statistics")
    if mu1.shape != mu2.shape:
        raise DataError(f"statistics have different dimensions: {mu1.size} and {mu2.size}")
    if sqrt_sigma1 is None:
        tr_covmean, _ = trace_sqrt_product(sigma1, sigma2)
    else:
        a = check_sqrt(sqrt_sigma1, sigma1, "sqrt_sigma1")
        tr_covmean = trace_sqrt_eigs(a @ sigma2 @ a, "A·sigma2·A (A = sigma1^½)")
    diff = mu1 - mu2
    tr1, tr2 = float(np.trace(sigma1)), float(np.trace(sigma2))
    value = float(diff @ diff + tr1 + tr2 - 2.0 * tr_covmean)
    # Σ₂ is checked only where A sees it (A·Σ₂·A); a negative direction of Σ₂ in A's null space shows as a
    # negative distance (Σ₁ itself is checked by eigh, or its root by check_sqrt)
    tol = NEG_REL_TOL * max(abs(tr1) + abs(tr2) + float(diff @ diff), np.finfo(float).tiny)
    if value < -tol or np.diag(sigma2).min(initial=0.0) < -tol:
        raise DataError(
            f"the Fréchet distance came out negative ({value:.3e}; Tr Σ₁ = {tr1:.3e}, Tr Σ₂ = {tr2:.3e}): sigma2 is "
            "not positive semi-definite. Check that covariances are real covariance matrices (symmetric, ddof=1)"
        )
    return value


def usable_cpus() -> int:
    """CPUs this process may run on (affinity-aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class GenGram:
    """FID of weighted generated samples against fixed reference statistics, one eigvalsh per sample.

    Parameters
    ----------
    x : (N, d) generated features (validated).
    mu_r, sigma_r, sqrt_r : reference mean, covariance and its symmetric square root.
    gram_max : precompute the N × N Gram matrix only up to this N (memory 8·N² bytes).
    """

    def __init__(self, x: np.ndarray, mu_r: np.ndarray, sigma_r: np.ndarray, sqrt_r: np.ndarray, *, gram_max: int = 6000):
        self.n_rows, self.d = x.shape
        self.mu_full = x.mean(axis=0)
        self.x0 = x - self.mu_full  # centring by the full mean keeps subset re-centring free of cancellation
        self.sq0 = np.einsum("ij,ij->i", self.x0, self.x0)
        self.y = self.x0 @ sqrt_r
        self.k = self.y @ self.y.T if self.n_rows <= gram_max and self.n_rows <= self.d else None
        self.dmu = self.mu_full - mu_r
        self.tr_r = float(np.trace(sigma_r))

    def _rest(self, weights: np.ndarray) -> np.ndarray:
        """Everything but the trace term, ``‖μ_w − μ_r‖² + Tr Σ_w + Tr Σ_r``, for each row of ``weights`` (B × N)."""
        w = np.atleast_2d(weights).astype(np.float64)
        n = w.sum(axis=1)
        m0 = (w @ self.x0) / n[:, None]
        mean_term = np.sum((self.dmu + m0) ** 2, axis=1)
        tr_g = (w @ self.sq0 - n * np.einsum("ij,ij->i", m0, m0)) / (n - 1)
        return mean_term + tr_g + self.tr_r

    def _trace_matrix(self, w: np.ndarray) -> np.ndarray:
        """The matrix whose √-eigenvalues sum to the trace term (only its lower triangle is meaningful:
        ``eigvalsh`` reads no other)."""
        s = np.flatnonzero(w)
        ws = w[s].astype(np.float64)
        n = ws.sum()
        if s.size > self.d:  # d × d route
            ys = self.y[s]
            nu = ws @ ys / n
            return ((ys * ws[:, None]).T @ ys - n * np.outer(nu, nu)) / (n - 1)
        # Gram route, s × s: diag(√w) (K_ss − c1ᵀ − 1cᵀ + q) diag(√w) / (n − 1), built in place
        kss = self.k.take(s, axis=0).take(s, axis=1) if self.k is not None else self.y[s] @ self.y[s].T
        c = kss @ ws / n
        kss -= c[:, None]
        kss -= c[None, :]
        kss += ws @ c / n
        r = np.sqrt(ws / (n - 1))
        kss *= r[:, None]
        kss *= r[None, :]
        return kss

    def _trace_sqrt(self, w: np.ndarray) -> float:
        return trace_sqrt_eigs(self._trace_matrix(w), TRACE_WHAT, lower=True)

    def fid(self, w: np.ndarray) -> tuple[float, float]:
        """FID of the sample with integer weights ``w`` (length N; 0/1 for subsets, counts for bootstrap).

        Returns (fid, trace term).
        """
        tr_sqrt = self._trace_sqrt(w)
        return float(self._rest(w)[0]) - 2.0 * tr_sqrt, tr_sqrt

    def fids(self, weights: np.ndarray, *, workers: int | None = None,
             progress: Callable[[int], None] | None = None) -> np.ndarray:
        """FID for every row of ``weights`` (B × N), spread over ``workers`` threads (default: usable CPUs);
        ``progress(1)`` is called as each one is done.

        Each eigen-decomposition runs with single-threaded BLAS (numpy releases the GIL in LAPACK), so the
        numbers are identical for any number of workers; on these small matrices this is also faster than
        one multi-threaded LAPACK call at a time.
        """
        weights = np.atleast_2d(np.asarray(weights))
        if weights.shape[0] == 0:
            return np.zeros(0)
        workers = usable_cpus() if workers is None else max(1, int(workers))
        rest = self._rest(weights)
        tr = np.empty(len(weights))
        with threadpool_limits(1, user_api="blas"), contextlib.ExitStack() as stack:
            if workers == 1 or len(weights) == 1:
                values: Iterable[float] = map(self._trace_sqrt, weights)
            else:
                pool = stack.enter_context(ThreadPoolExecutor(min(workers, len(weights))))
                values = pool.map(self._trace_sqrt, weights)
            for i, v in enumerate(values):
                tr[i] = v
                if progress is not None:
                    progress(1)
        return rest - 2.0 * tr


TRACE_WHAT = "A·sigma_gen·A (A = sigma_ref^½)"


def linear_fit(x: np.ndarray, y: np.ndarray) -> dict:
    """Least squares ``y = a + k x``; returns a, k, se_a, se_k and the RMS residual."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    design = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    dof = max(x.size - 2, 1)
    s2 = float(resid @ resid) / dof
    cov = s2 * np.linalg.inv(design.T @ design)
    return {
        "a": float(coef[0]),
        "k": float(coef[1]),
        "se_a": float(np.sqrt(cov[0, 0])),
        "se_k": float(np.sqrt(cov[1, 1])),
        "rms_residual": float(np.sqrt(np.mean(resid**2))),
    }


def poly_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """KID kernel ``(aᵀb / d + 1)³``."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def kernel_quadratic_forms(
    xg: np.ndarray, xr: np.ndarray, zg: np.ndarray, zr: np.ndarray, wg: np.ndarray, *, block: int = 1024,
    wr: np.ndarray | None = None,
) -> dict:
    """All kernel sums KID and its bootstrap need, computing the kernel matrices in row blocks (never stored).

    zg (S × Ng), zr (S × Nr): 0/1 subset indicators, paired row by row. wg (B × Ng): bootstrap weights of
    the generated samples; wr (B × Nr, optional): bootstrap weights of the reference samples (two-sample
    bootstrap; default: the reference is fixed, all ones).
    Returns ``gg_sub``, ``rr_sub``, ``gr_sub`` (S: zᵀKz sums), ``gg_boot`` (B: w_gᵀK_gg w_g), ``gr_boot``
    (B: w_gᵀK_gr w_r), ``rr_boot`` (B: w_rᵀK_rr w_r), ``rr_all`` (1ᵀK_rr 1), the kernel diagonals
    ``diag_g``, ``diag_r`` and the row sums ``rows_g`` (K_gg 1), ``rows_r`` (K_rr 1), ``cross_g`` (K_gr 1),
    ``cross_r`` (K_grᵀ 1) that the jackknife needs. Cost: (Ng² + Nr² + Ng·Nr)·d for the kernels, (S + B)·N² for the forms.
    """
    vg = np.vstack([zg, wg])  # (S + B) × Ng
    nb = wg.shape[0]
    if wr is None:
        wr = np.ones((nb, xr.shape[0]))
    if wr.shape != (nb, xr.shape[0]):
        raise ValueError(f"wr must be (B={nb}, Nr={xr.shape[0]}), got {wr.shape}")
    zr_plus = np.vstack([zr, np.ones((1, xr.shape[0])), wr])  # (S + 1 + B) × Nr
    s = zg.shape[0]
    gg = np.zeros(vg.shape[0])
    cross = np.zeros((xg.shape[0], zr_plus.shape[0]))  # K_gr @ zr_plusᵀ
    rows_g, rows_r, cross_r = np.zeros(xg.shape[0]), np.zeros(xr.shape[0]), np.zeros(xr.shape[0])
    for i0 in range(0, xg.shape[0], block):
        i1 = min(i0 + block, xg.shape[0])
        kb = poly_kernel(xg[i0:i1], xg)
        gg += np.einsum("vi,iv->v", vg[:, i0:i1], kb @ vg.T)
        rows_g[i0:i1] = kb.sum(axis=1)
        kc = poly_kernel(xg[i0:i1], xr)
        cross[i0:i1] = kc @ zr_plus.T
        cross_r += kc.sum(axis=0)
    rr = np.zeros(zr_plus.shape[0])
    for i0 in range(0, xr.shape[0], block):
        i1 = min(i0 + block, xr.shape[0])
        kb = poly_kernel(xr[i0:i1], xr)
        rr += np.einsum("vi,iv->v", zr_plus[:, i0:i1], kb @ zr_plus.T)
        rows_r[i0:i1] = kb.sum(axis=1)
    return {
        "rows_g": rows_g,  # K_gg 1 (diagonal included)
        "rows_r": rows_r,  # K_rr 1
        "cross_g": cross[:, s].copy(),  # K_gr 1
        "cross_r": cross_r,  # K_grᵀ 1
        "gg_sub": gg[:s],
        "gg_boot": gg[s:],
        "rr_sub": rr[:s],
        "rr_all": float(rr[s]),
        "rr_boot": rr[s + 1:],
        "gr_sub": np.einsum("si,is->s", zg, cross[:, :s]),
        "gr_boot": np.einsum("bi,ib->b", wg, cross[:, s + 1:]),
        "diag_g": (np.einsum("ij,ij->i", xg, xg) / xg.shape[1] + 1.0) ** 3,
        "diag_r": (np.einsum("ij,ij->i", xr, xr) / xr.shape[1] + 1.0) ** 3,
    }
