"""Do EchoBench's 95 % intervals cover what they claim? A simulation study with known truth.

``coverage_study(...) -> list[CoverageRow]`` draws many synthetic data sets whose true value is known exactly
(or, for E[FID_N], to Monte-Carlo precision far below the interval width), computes every interval EchoBench
reports **with the public functions that produce the reported numbers**, and counts how often the interval
contains the truth. ``harness validate-intervals`` prints the rows and exits 3 when a row is out of tolerance.

=================================  ===============================  ===============================================
interval (function)                target it claims to cover        synthetic truth
=================================  ===============================  ===============================================
FID_N, centred bootstrap           E[FID_N] at this N, reference    Gaussian generated features, exact reference
(``fid.fid_from_features``)        statistics held fixed            statistics; E[FID_N] by Monte Carlo (``truth_reps``
                                                                    independent sets)
FID∞ (``fid.fid_infinity``)        population FID (N → ∞) against   Fréchet distance of the two Gaussians (closed
                                   the fixed reference statistics;  form); at N ≤ d the row says "not reported"
                                   no interval when N ≤ d
KID (``fid.kid``)                  population MMD² (poly kernel)    closed form of E k(x, y) for Gaussians
                                   of the two distributions          (:func:`poly3_kernel_mean`); reference sampled too
CMMD (``cmmd.cmmd``)               E[CMMD_N | reference set]        exact per simulated reference set from the
                                   (V-statistic bias included)      Gaussian-RBF closed forms (:func:`cmmd_expectation`)
mean Dice (``segmentation.         population mean Dice of a fixed  per-image Dice ~ Beta(a, b): a / (a + b)
summarise_dice``)                  segmenter over test images
cluster bootstrap                  population difference of mean    latent-normal ratings with participant and
(``stats.cluster_bootstrap``)      ratings (source − reference)     participant × source random effects, rounded and
                                                                    clipped to 1..5; exact expectation from Φ
TOST 90 % CI                       same difference (90 % CI)        same simulation
(``stats.tost_vs_reference``)
Wilson (flag rates: colour shift,  binomial proportion p            exact: Σ over k of Binom(n, p) pmf, no simulation
artifact flags)
=================================  ===============================  ===============================================

A row **fails** when its binomial 95 % CI of the empirical coverage (Wilson) lies entirely below
``nominal − tolerance`` (default 2.5 points): the data show the interval under-covers. A row whose CI lies
entirely above ``nominal + tolerance`` passes with the note "conservative": wider than needed is reported,
not failed (FID/KID are degenerate statistics when the two distributions are equal, and the bootstrap
overstates FID's spread when N is not ≫ d; the width tests in ``tests/tasks/test_fid_references.py`` guard
against intervals that are too wide for the bootstrap spread). With 400 simulated sets the CI half-width is
≈ 2.2 points, so a true coverage of 90 % at nominal 95 % fails; ``--quick`` (fewer sets) only catches gross
failures (e.g. a 50 % interval reported as 95 %).

The grid (``--full``, the README table): feature dimension d ∈ {8, 64, 512, 2048} × N ∈ {100, 300, 1000, 2000},
equal and different distributions, with fewer simulated sets where one set is expensive (:data:`FULL_REPS`;
each row's binomial CI shows what that costs in precision); human evaluation, CMMD and Dice rows with
:data:`FULL_OTHER_REPS` studies each.

Every simulated set has its own seed (``numpy.random.default_rng([seed, row, rep])``): rows are reproducible
and independent of which other rows run.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

from harness.errors import UsageError

__all__ = ["CoverageRow", "all_passed", "coverage_study", "gaussian_scenario", "poly3_kernel_mean", "poly3_mmd2",
           "rating_expectation"]

FAMILIES = ("fid", "fid_inf", "kid", "cluster_bootstrap", "tost", "wilson", "cmmd", "dice")


@dataclass(frozen=True)
class CoverageRow:
    interval: str
    target: str
    scenario: str
    nominal: float
    reps: int
    covered: int
    coverage: float
    cov_low: float  # Wilson 95 % CI of the empirical coverage
    cov_high: float
    tolerance: float
    passed: bool
    mean_width: float
    seconds: float
    note: str = ""

    def to_dict(self) -> dict:
        """Plain dict; NaN (no coverage: the interval is not reported there) becomes None (valid JSON)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def all_passed(rows: Sequence[CoverageRow]) -> bool:
    return all(r.passed for r in rows)


def _wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    from tasks.color_shift import wilson_interval

    return wilson_interval(k, n, level)


def _row(interval, target, scenario, nominal, hits, widths, tol, t0, note="", exact=None, upper=False) -> CoverageRow:
    hits = np.asarray(hits, dtype=bool)
    reps = int(hits.size)
    if exact is not None:  # exact coverage (no simulation noise)
        cov, lo, hi = exact, exact, exact
        k = reps
    else:
        k = int(hits.sum())
        cov = k / reps
        lo, hi = _wilson(k, reps)
    passed = bool(hi >= nominal - tol and (lo <= nominal + tol or not upper))
    if not upper and lo > nominal + tol:
        note = "; ".join(x for x in (note, "conservative (wider than needed; allowed)") if x)
    return CoverageRow(interval, target, scenario, nominal, reps, k, cov, lo, hi, tol, passed,
                       float(np.mean(widths)) if len(widths) else float("nan"), time.perf_counter() - t0, note)


# ------------------------------------------------------------------------------------------- known truths
def poly3_kernel_mean(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """E k(x, y) for the KID kernel k = (xᵀy/d + 1)³, x ~ N(μ₁, Σ₁), y ~ N(μ₂, Σ₂) independent (closed form).

    Given y, xᵀy ~ N(μ₁ᵀy, yᵀΣ₁y), so E[(m + s)³ | y] = m³ + 3 m v with m = 1 + μ₁ᵀy/d, v = yᵀΣ₁y/d²; then
    E m³ = m₀³ + 3 m₀ μ₁ᵀΣ₂μ₁/d² (m₀ = 1 + μ₁ᵀμ₂/d) and
    E[m v] = (m₀ (μ₂ᵀΣ₁μ₂ + tr Σ₁Σ₂) + 2 μ₁ᵀΣ₂Σ₁μ₂/d) / d².
    """
    d = mu1.size
    m0 = 1.0 + mu1 @ mu2 / d
    e_m3 = m0**3 + 3.0 * m0 * (mu1 @ s2 @ mu1) / d**2
    e_mv = (m0 * (mu2 @ s1 @ mu2 + np.trace(s1 @ s2)) + 2.0 * (mu1 @ s2 @ s1 @ mu2) / d) / d**2
    return float(e_m3 + 3.0 * e_mv)


def poly3_mmd2(mu_g, s_g, mu_r, s_r) -> float:
    """Population MMD² of two Gaussians under the KID kernel: what KID estimates without bias."""
    return (poly3_kernel_mean(mu_g, s_g, mu_g, s_g) + poly3_kernel_mean(mu_r, s_r, mu_r, s_r)
            - 2.0 * poly3_kernel_mean(mu_g, s_g, mu_r, s_r))


def gaussian_scenario(d: int, kind: str, seed: int = 0) -> dict:
    """Generated and reference Gaussians: reference N(0, I); generated equal (``kind="equal"``) or shifted,
    rescaled and rotated (``"different"``). Returns mu/sigma of both and the exact FID."""
    rng = np.random.default_rng([seed, d])
    mu_r, s_r = np.zeros(d), np.eye(d)
    if kind == "equal":
        mu_g, s_g, root_g = mu_r.copy(), s_r.copy(), np.eye(d)
    elif kind == "different":
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        lam = np.linspace(0.6, 1.6, d)
        s_g = q @ np.diag(lam) @ q.T
        root_g = q * np.sqrt(lam)  # root_g root_gᵀ = s_g: draws need no decomposition
        mu_g = rng.standard_normal(d) * (0.3 / math.sqrt(d)) * math.sqrt(8)  # ‖μ‖² ≈ 0.72 for every d
        # FID of N(μ, QΛQᵀ) against N(0, I): ‖μ‖² + Σ(λ + 1 − 2√λ) (closed form; equal to frechet_distance)
        return {"mu_g": mu_g, "s_g": s_g, "root_g": root_g, "mu_r": mu_r, "s_r": s_r, "root_r": np.eye(d),
                "fid": float(mu_g @ mu_g + np.sum((np.sqrt(lam) - 1.0) ** 2))}
    else:
        raise UsageError(f"unknown scenario kind {kind!r} (equal, different)")
    return {"mu_g": mu_g, "s_g": s_g, "root_g": root_g, "mu_r": mu_r, "s_r": s_r, "root_r": np.eye(d), "fid": 0.0}


def _draw(rng, mu, root, n):
    """n rows of N(μ, root·rootᵀ)."""
    return mu + rng.standard_normal((n, mu.size)) @ root.T


def fid_against_standard_normal(x: np.ndarray) -> float:
    """FID_N of a sample against the exact statistics N(0, I) (the study's reference), for the E[FID_N] truth:
    ‖x̄‖² + tr Σ̂ + d − 2 Σ √λ(Σ̂), the eigenvalues from the N × N Gram matrix when N ≤ d (same value as
    :func:`tasks.fid.fid_from_features`, no d × d work)."""
    n, d = x.shape
    xc = x - x.mean(axis=0)
    m = (xc @ xc.T if n <= d else xc.T @ xc) / (n - 1)
    lam = np.clip(np.linalg.eigvalsh(m), 0.0, None)
    mean = x.mean(axis=0)
    return float(mean @ mean + np.trace(m) + d - 2.0 * np.sqrt(lam).sum())


def rating_expectation(mu: float, sd: float, scale: tuple[int, int] = (1, 5)) -> float:
    """E[clip(round(Z), lo, hi)] for Z ~ N(mu, sd²) (exact, from the normal CDF)."""
    lo, hi = scale
    edges = np.arange(lo, hi) + 0.5  # round-half boundaries between consecutive levels
    cdf = sps.norm.cdf(edges, mu, sd)
    p = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
    return float(p @ np.arange(lo, hi + 1))


# ------------------------------------------------------------------------------------------------ studies
def _seed(seed, *parts):
    """An independent stream per (seed, labels...); strings enter through CRC-32 (stable across processes)."""
    return np.random.default_rng([seed, *[zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in parts]])


def _na_row(interval, target, scenario, nominal, tol, t0, note) -> CoverageRow:
    """A row for an interval the product deliberately does not report in this scenario (no coverage to check)."""
    nan = float("nan")
    return CoverageRow(interval, target, scenario, nominal, 0, 0, nan, nan, nan, tol, True, nan,
                       time.perf_counter() - t0, note)


def _study_fid_family(d, n, kind, reps, truth_reps, seed, n_boot, tol, families, progress,
                      workers=1) -> list[CoverageRow]:
    from tasks import fid

    sc = gaussian_scenario(d, kind, seed)
    ref_stats = {"mu": sc["mu_r"], "sigma": sc["s_r"], "sqrt_sigma": sc["root_r"]}
    name = f"d={d} N={n} {kind}"
    rows = []
    upper = False  # over-coverage is reported ("conservative"), not failed: see the module docstring
    if "fid" in families or "fid_inf" in families:
        t0 = time.perf_counter()
        hits_inf, w_inf, est_fid, refused = [], [], [], []
        for r in range(reps):
            g = _draw(_seed(seed, "fidset", d, n, kind, r), sc["mu_g"], sc["root_g"], n)
            want = [m for m in ("fid", "fid_inf") if m in families]
            if n <= d and r > 0 and "fid" in want:  # FID∞'s interval is refused at N ≤ d: checked on the first set
                want = ["fid"]
            res = fid.fid_family(g, ref_stats, rng=_seed(seed, "fidboot", d, n, kind, r), metrics=want,
                                 n_boot=n_boot, workers=workers)
            if "fid" in res:
                est_fid.append(res["fid"])
            if "fid_inf" in res:
                v = res["fid_inf"]
                if v.ci_low is None:
                    refused.append(v.details.get("ci_refused", "no interval"))
                else:
                    hits_inf.append(v.ci_low <= sc["fid"] <= v.ci_high)
                    w_inf.append(v.ci_high - v.ci_low)
            if progress:
                progress(f"FID family {name}: set {r + 1}/{reps}")
        if "fid" in families:
            # E[FID_N]: independent sets, value only (same number as fid_from_features, cheaper route)
            tv = [fid_against_standard_normal(_draw(_seed(seed, "fidtruth", d, n, kind, r), sc["mu_g"], sc["root_g"], n))
                  for r in range(truth_reps)]
            e_fid = float(np.mean(tv))
            hits_fid = [v.ci_low <= e_fid <= v.ci_high for v in est_fid]
            w_fid = [v.ci_high - v.ci_low for v in est_fid]
            rows.append(_row("FID_N (centred bootstrap)", f"E[FID_N] = {e_fid:.4g}", name, 0.95, hits_fid, w_fid, tol,
                             t0, note=f"population FID {sc['fid']:.4g}; E[FID_N] from {truth_reps} sets "
                                      f"(MC se {np.std(tv) / math.sqrt(truth_reps):.2g})", upper=upper))
        if "fid_inf" in families:
            target = f"population FID = {sc['fid']:.4g}"
            if refused and not hits_inf:
                rows.append(_na_row("FID∞", target, name, 0.95, tol, t0,
                                    "interval not reported by design (N ≤ d): " + refused[0].split(": ", 1)[-1]))
            elif refused:  # some sets refused, some not: a product inconsistency, reported as a failure
                row = _row("FID∞", target, name, 0.95, hits_inf, w_inf, tol, t0, upper=upper)
                rows.append(CoverageRow(**{**row.to_dict(), "passed": False,
                                           "note": f"{len(refused)} set(s) had no interval, others had one"}))
            else:
                rows.append(_row("FID∞", target, name, 0.95, hits_inf, w_inf, tol, t0, upper=upper))
    if "kid" in families:
        t0 = time.perf_counter()
        truth = poly3_mmd2(sc["mu_g"], sc["s_g"], sc["mu_r"], sc["s_r"])
        hits, widths = [], []
        for r in range(reps):
            rng = _seed(seed, "kidset", d, n, kind, r)
            g = _draw(rng, sc["mu_g"], sc["root_g"], n)
            x = _draw(rng, sc["mu_r"], sc["root_r"], n)
            v = fid.kid(g, x, rng=_seed(seed, "kidboot", d, n, kind, r), n_boot=n_boot)
            hits.append(v.ci_low <= truth <= v.ci_high)
            widths.append(v.ci_high - v.ci_low)
            if progress:
                progress(f"KID {name}: set {r + 1}/{reps}")
        rows.append(_row("KID", f"population MMD² = {truth:.4g}", name, 0.95, hits, widths, tol, t0,
                         note=f"reference: a sample of {n} (N_ref = N)", upper=upper))
    return rows


def _ratings(rng, n_part, per, effects, sd_u, sd_v, sd_e):
    import pandas as pd

    sources = list(effects)
    u = rng.normal(0, sd_u, n_part)
    v = rng.normal(0, sd_v, (n_part, len(sources)))
    p_idx = np.repeat(np.arange(n_part), len(sources) * per)
    s_idx = np.tile(np.repeat(np.arange(len(sources)), per), n_part)
    mu = np.array([effects[s] for s in sources])
    z = mu[s_idx] + u[p_idx] + v[p_idx, s_idx] + rng.normal(0, sd_e, p_idx.size)
    rating = np.clip(np.rint(z), 1, 5).astype(int)
    return pd.DataFrame({"participant_id": [f"P{i}" for i in p_idx], "image_id": np.arange(p_idx.size).astype(str),
                         "source": np.array(sources)[s_idx], "rating": rating})


def _study_human(n_part, per, reps, seed, n_boot, tol, families, progress) -> list[CoverageRow]:
    from human_eval import stats as S

    effects = {"real": 3.1, "a": 2.5, "b": 3.9}
    sd_u, sd_v, sd_e = 0.6, 0.5, 1.2
    sd = math.sqrt(sd_u**2 + sd_v**2 + sd_e**2)
    e = {s: rating_expectation(m, sd) for s, m in effects.items()}
    truth = {s: e[s] - e["real"] for s in effects if s != "real"}
    name = f"P={n_part} participants × {per} per source"
    rows = []
    t0 = time.perf_counter()
    hits_cb = {s: [] for s in truth}
    hits_t = {s: [] for s in truth}
    w_cb = {s: [] for s in truth}
    w_t = {s: [] for s in truth}
    for r in range(reps):
        df = _ratings(_seed(seed, "human", n_part, per, r), n_part, per, effects, sd_u, sd_v, sd_e)
        if "cluster_bootstrap" in families:
            cb = S.cluster_bootstrap(df, n_boot=n_boot, seed=r).set_index("source")
            for s in truth:
                hits_cb[s].append(cb.loc[s, "ci_low"] <= truth[s] <= cb.loc[s, "ci_high"])
                w_cb[s].append(cb.loc[s, "ci_high"] - cb.loc[s, "ci_low"])
        if "tost" in families:
            t = S.tost_vs_reference(df).set_index("source")
            for s in truth:
                hits_t[s].append(t.loc[s, "ci90_low"] <= truth[s] <= t.loc[s, "ci90_high"])
                w_t[s].append(t.loc[s, "ci90_high"] - t.loc[s, "ci90_low"])
        if progress:
            progress(f"human evaluation {name}: study {r + 1}/{reps}")
    for s in truth:
        sc = f"{name}, source {s}"
        if "cluster_bootstrap" in families:
            rows.append(_row("cluster bootstrap (mean diff)", f"Δ = {truth[s]:+.3f}", sc, 0.95, hits_cb[s], w_cb[s],
                             tol, t0, note="participant and participant×source random effects"))
        if "tost" in families:
            rows.append(_row("TOST 90% CI (mean diff)", f"Δ = {truth[s]:+.3f}", sc, 0.90, hits_t[s], w_t[s], tol, t0))
    return rows


def wilson_coverage(n: int, p: float, level: float = 0.95) -> float:
    """Exact coverage of the Wilson interval for Binomial(n, p): Σ_k pmf(k) [p ∈ CI(k)]."""
    ks = np.arange(n + 1)
    ci = np.array([_wilson(int(k), n, level) for k in ks])
    inside = (ci[:, 0] <= p) & (p <= ci[:, 1])
    return float(sps.binom.pmf(ks, n, p)[inside].sum())


def _study_wilson(ns, ps, tol) -> list[CoverageRow]:
    rows = []
    for n in ns:
        for p in ps:
            t0 = time.perf_counter()
            # average exact coverage over p·(1 ± 10 %): Wilson's coverage oscillates with p (Brown, Cai &
            # DasGupta 2001); the smoothed value is what a flag rate "near p" gets
            grid = p * np.linspace(0.9, 1.1, 21)
            cov = float(np.mean([wilson_coverage(n, q) for q in grid]))
            pointwise = wilson_coverage(n, p)
            widths = [np.subtract(*_wilson(round(n * p), n)[::-1])]
            rows.append(_row("Wilson (flag rate)", f"p = {p:g}", f"n = {n}", 0.95, np.ones(1), widths, tol, t0,
                             note=f"exact; at p exactly: {pointwise:.3f}; reported: mean over p ± 10 %", exact=cov))
    return rows


# ------------------------------------------------------------------------------------------------ CMMD
def rbf_kernel_mean(mu: np.ndarray, cov: np.ndarray, y: np.ndarray, sigma: float) -> np.ndarray:
    """E k(x, y_j) for x ~ N(μ, Σ) and each fixed row y_j, k = exp(−‖x − y‖²/(2σ²)) (CMMD's kernel; closed form):
    det(I + Σ/σ²)^(−½) · exp(−½ (μ − y)ᵀ (Σ + σ²I)⁻¹ (μ − y))."""
    d = mu.size
    _, logdet = np.linalg.slogdet(np.eye(d) + cov / sigma**2)
    diff = np.atleast_2d(y) - mu
    quad = np.einsum("ij,ij->i", diff, np.linalg.solve(cov + sigma**2 * np.eye(d), diff.T).T)
    return np.exp(-0.5 * logdet - 0.5 * quad)


def rbf_self_mean(cov: np.ndarray, sigma: float) -> float:
    """E k(x, x′) for x, x′ independent N(μ, Σ): x − x′ ~ N(0, 2Σ), so det(I + 2Σ/σ²)^(−½)."""
    _, logdet = np.linalg.slogdet(np.eye(cov.shape[0]) + 2.0 * cov / sigma**2)
    return float(np.exp(-0.5 * logdet))


def cmmd_expectation(mu_g, cov_g, ref: np.ndarray, n: int, *, sigma: float, scale: float) -> float:
    """E[CMMD_N | reference set]: the expected value of :func:`tasks.cmmd.cmmd` (V-statistic, diagonal included)
    for N generated samples of N(μ_g, Σ_g) against the fixed rows ``ref`` — exact:
    scale · (1/N + (1 − 1/N) E k(x, x′) + mean K(ref, ref) − 2 mean_j E k(x, y_j))."""
    from tasks.cmmd import rbf_kernel_sums

    m = ref.shape[0]
    k_rr = rbf_kernel_sums(ref[:1], ref, sigma=sigma)["rr"] / (m * m)
    return float(scale * (1.0 / n + (1.0 - 1.0 / n) * rbf_self_mean(cov_g, sigma) + k_rr
                          - 2.0 * rbf_kernel_mean(mu_g, cov_g, ref, sigma).mean()))


def cmmd_population(mu_g, cov_g, mu_r, cov_r, *, sigma: float, scale: float) -> float:
    """Population MMD² × scale of two Gaussians under CMMD's kernel (what the V-statistic tends to as N, M → ∞)."""
    def cross(m1, c1, m2, c2):
        return float(rbf_kernel_mean(m1, c1 + c2, m2[None, :], sigma)[0])
    return scale * (cross(mu_g, cov_g, mu_g, cov_g) + cross(mu_r, cov_r, mu_r, cov_r) - 2.0 * cross(mu_g, cov_g, mu_r, cov_r))


#: CMMD scenarios (d = 32): "clip-scale" features have ‖x‖ ≈ 1 like L2-normalised CLIP embeddings, where
#: σ = 10 makes the kernel nearly linear; "kernel-scale" features are spread over ≈ σ, where it is curved.
CMMD_SCENARIOS = {
    "clip-scale different": dict(spread=1.0, shift=0.3, ratio=1.3),
    "clip-scale equal": dict(spread=1.0, shift=0.0, ratio=1.0),
    "kernel-scale different": dict(spread=10.0, shift=2.0, ratio=1.3),
}


def _study_cmmd(ns, reps, seed, n_boot, tol, progress, d: int = 32) -> list[CoverageRow]:
    from tasks.cmmd import SCALE, SIGMA, cmmd

    rows = []
    for name, sp in CMMD_SCENARIOS.items():
        rng0 = _seed(seed, "cmmd-scenario", name)
        s = sp["spread"] / math.sqrt(d)
        cov_r = s**2 * np.eye(d)
        cov_g = (sp["ratio"] * s) ** 2 * np.eye(d)
        mu_r = np.zeros(d)
        u = rng0.standard_normal(d)
        mu_g = u / np.linalg.norm(u) * sp["shift"] * sp["spread"]
        pop = cmmd_population(mu_g, cov_g, mu_r, cov_r, sigma=SIGMA, scale=SCALE)
        for n in ns:
            t0 = time.perf_counter()
            hits, widths, truths = [], [], []
            for r in range(reps):
                rng = _seed(seed, "cmmdset", name, n, r)
                g = mu_g + rng.standard_normal((n, d)) * (sp["ratio"] * s)
                x = mu_r + rng.standard_normal((n, d)) * s
                truth = cmmd_expectation(mu_g, cov_g, x, n, sigma=SIGMA, scale=SCALE)
                v = cmmd(g, x, rng=_seed(seed, "cmmdboot", name, n, r), n_boot=n_boot)
                hits.append(v.ci_low <= truth <= v.ci_high)
                widths.append(v.ci_high - v.ci_low)
                truths.append(truth)
                if progress:
                    progress(f"CMMD {name} N={n}: set {r + 1}/{reps}")
            rows.append(_row("CMMD (bootstrap, jackknife floor)", f"E[CMMD_N | ref] ≈ {np.mean(truths):.4g}",
                             f"d={d} N=M={n} {name}", 0.95, hits, widths, tol, t0,
                             note=f"exact per reference set; population MMD²×1000 = {pop:.4g}"))
    return rows


# ------------------------------------------------------------------------------------------------ Dice
#: per-image Dice of a fixed segmenter on test images drawn from Beta(a, b) (left-skewed like real Dice);
#: the mean-Dice interval claims to cover a / (a + b).
DICE_SCENARIOS = {"good segmenter Beta(8, 1.5)": (8.0, 1.5), "poor segmenter Beta(2, 1.2)": (2.0, 1.2)}


def _study_dice(ns, reps, seed, n_boot, tol, progress) -> list[CoverageRow]:
    from tasks.segmentation import summarise_dice

    rows = []
    for name, (a, b) in DICE_SCENARIOS.items():
        truth = a / (a + b)
        for n in ns:
            t0 = time.perf_counter()
            hits, widths = [], []
            for r in range(reps):
                rng = _seed(seed, "dice", name, n, r)
                dice = rng.beta(a, b, n)[None, :, None]  # 1 seed × n images × 1 structure
                ones = np.ones((n, 1), dtype=bool)
                _, (_, lo, hi), _, _ = summarise_dice(["LV"], dice, np.full_like(dice, np.nan), ones, ones[None],
                                                      _seed(seed, "diceboot", name, n, r), n_boot=n_boot)
                hits.append(lo <= truth <= hi)
                widths.append(hi - lo)
            if progress:
                progress(f"Dice {name} n={n}")
            rows.append(_row("mean Dice (bootstrap over test images)", f"population mean Dice = {truth:.4g}",
                             f"{n} test images, {name}", 0.95, hits, widths, tol, t0,
                             note="segmenter fixed; per-image Dice i.i.d. over test images"))
    return rows


#: ``--full``: the grid of the README table. Simulated sets per cell (different, equal), sized so that the whole
#: grid finishes in about an hour on 2 CPU cores: the cost of one set grows steeply with N and d (one FID
#: eigenproblem per bootstrap resample; at d = 2048, N = 2000 one set takes ≈ 30 s), so the expensive cells
#: have fewer sets and a wider binomial CI, printed in every row; 0 = cell not run.
FULL_OTHER_REPS = 400  # --full: simulated studies per human-evaluation, CMMD and Dice row
FULL_DIMS = (8, 64, 512, 2048)
FULL_NS = (100, 300, 1000, 2000)
FULL_REPS = {
    (8, 100): (400, 200), (8, 300): (400, 200), (8, 1000): (200, 50), (8, 2000): (100, 40),
    (64, 100): (400, 200), (64, 300): (300, 100), (64, 1000): (150, 50), (64, 2000): (80, 30),
    (512, 100): (150, 50), (512, 300): (80, 30), (512, 1000): (12, 10), (512, 2000): (10, 10),
    (2048, 100): (100, 40), (2048, 300): (60, 20), (2048, 1000): (16, 10), (2048, 2000): (10, 10),
}


def full_grid_reps(d: int, n: int, kind: str, default: int) -> int:
    """Simulated sets of one ``--full`` cell (``default`` for cells outside the table)."""
    pair = FULL_REPS.get((d, n))
    return default if pair is None else pair[0 if kind == "different" else 1]


def coverage_study(*, dims: Sequence[int] = (8, 64), ns: Sequence[int] = (100, 300), kinds: Sequence[str] = ("equal", "different"),
                   reps: int = 200, truth_reps: int | None = None, n_boot: int = 200, seed: int = 0,
                   tolerance: float = 0.025, families: Sequence[str] = FAMILIES, human_reps: int | None = None,
                   participants: Sequence[int] = (17,), human_boot: int = 2000,
                   wilson_ns: Sequence[int] = (100, 800), wilson_ps: Sequence[float] = (0.03, 0.1, 0.5),
                   cmmd_ns: Sequence[int] = (100, 300, 1000), dice_ns: Sequence[int] = (10, 20, 50, 200),
                   reps_for: Callable[[int, int, str, int], int] | None = None, workers: int = 1,
                   progress: Callable[[str], None] | None = None,
                   on_row: Callable[[CoverageRow], None] | None = None) -> list[CoverageRow]:
    """Run the study over the grid; one :class:`CoverageRow` per (interval, scenario).

    ``reps_for(d, N, kind, reps)``: simulated sets of one FID/FID∞/KID cell (e.g. :func:`full_grid_reps`; 0 skips
    the cell); ``on_row`` is called with each row as soon as it is done (the command streams them)."""
    unknown = set(families) - set(FAMILIES)
    if unknown:
        raise UsageError(f"unknown interval families {sorted(unknown)}; choose from {', '.join(FAMILIES)}")
    if reps < 2 or n_boot < 20:
        raise UsageError(f"need reps ≥ 2 and n_boot ≥ 20 (got reps={reps}, n_boot={n_boot})")
    rows: list[CoverageRow] = []

    def add(new: list[CoverageRow]) -> None:
        rows.extend(new)
        for r in new:
            if on_row is not None:
                on_row(r)

    fam = set(families)
    if fam & {"fid", "fid_inf", "kid"}:
        for d in dims:
            for n in ns:
                for kind in kinds:
                    cell = reps if reps_for is None else reps_for(d, n, kind, reps)
                    if cell < 2:
                        continue
                    if truth_reps:
                        cell_truth = truth_reps
                    elif reps_for is None:
                        cell_truth = max(4 * cell, 400)
                    else:  # the grid: E[FID_N] to MC se ≤ sd/√40 where one FID value costs seconds
                        cell_truth = 40 if d * n >= 512 * 1000 else max(2 * cell, 100)
                    add(_study_fid_family(d, n, kind, cell, cell_truth, seed, n_boot, tolerance, fam, progress, workers))
    if fam & {"cluster_bootstrap", "tost"}:
        for p in participants:
            add(_study_human(p, 10, human_reps or reps, seed, human_boot, tolerance, fam, progress))
    if "wilson" in fam:
        add(_study_wilson(wilson_ns, wilson_ps, tolerance))
    if "cmmd" in fam:
        add(_study_cmmd(cmmd_ns, human_reps or reps, seed, n_boot, tolerance, progress))
    if "dice" in fam:
        add(_study_dice(dice_ns, human_reps or reps, seed, 1000, tolerance, progress))
    return rows
