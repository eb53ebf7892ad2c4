"""FID family: closed forms, reference implementations (clean-fid, torchmetrics, numpy), invariances, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from harness.errors import DataError, UsageError
from tasks import fid
from tasks.base import TaskContext
from tasks.fid_math import GenGram, gaussian_stats


def _gauss(rng, n, d, shift=0.0, scale=1.0):
    return rng.standard_normal((n, d)) * scale + shift


def _cleanfid(mu1, s1, mu2, s2):
    from cleanfid.fid import frechet_distance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm(disp=False) is deprecated in SciPy 1.17
        return float(frechet_distance(mu1, s1, mu2, s2))


# closed forms ---------------------------------------------------------------------------------------------
def test_frechet_closed_form_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert fid.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-12)


def test_frechet_closed_form_rotated_gaussians():
    # Σ₂ = R Σ₁ Rᵀ with Σ₁ = diag(a, b), R a 90° rotation → Σ₂ = diag(b, a); FID = (√a − √b)²·2
    a, b = 4.0, 1.0
    s1 = np.diag([a, b])
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    s2 = rot @ s1 @ rot.T
    assert fid.frechet_distance(np.zeros(2), s1, np.zeros(2), s2) == pytest.approx(2 * (np.sqrt(a) - np.sqrt(b)) ** 2)


def test_fid_of_a_set_with_itself_is_zero():
    x = _gauss(np.random.default_rng(0), 200, 16)
    st = gaussian_stats(x)
    assert abs(fid.frechet_distance(st["mu"], st["sigma"], st["mu"], st["sigma"])) < 1e-9
    assert abs(fid.fid_from_features(x, x, n_boot=0).value) < 1e-9


def _fid_inf_problem(d=32):
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    sigma_g, mu_g = q @ np.diag(np.linspace(0.5, 2, d)) @ q.T, np.full(d, 0.2)
    ref = {"mu": np.zeros(d), "sigma": np.eye(d), "sqrt_sigma": np.eye(d)}  # exact reference: only gen-side bias
    return mu_g, sigma_g, ref, fid.frechet_distance(np.zeros(d), np.eye(d), mu_g, sigma_g)


def test_fid_infinity_recovers_the_analytic_fid():
    # FID_N = FID + k/N + noise. Over 5 generated sets of N=500 (d=32) FID_N is biased by ≈ +0.66 (k ≈ 340),
    # the intercept's spread is ≈ 0.17 per set, so its mean over 5 sets must be within 0.25 (≈ 3 SE).
    mu_g, sigma_g, ref, true = _fid_inf_problem()
    est, plain = [], []
    for seed in range(5):
        g = np.random.default_rng(100 + seed).multivariate_normal(mu_g, sigma_g, size=500)
        res = fid.fid_infinity(g, ref, rng=seed, n_boot=0, draws=3)
        est.append(res.value)
        plain.append(res.details["fid_n"])
        assert len(res.details["points"]) == 14 * 3 + 1 and res.details["k"] > 0
    assert abs(np.mean(est) - true) < 0.25
    assert np.mean(plain) - true > 0.4  # the bias FID∞ removes is real in this setting


# reference implementations ------------------------------------------------------------------------------
def _cases():
    rng = np.random.default_rng(0)
    d = 64
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = np.logspace(-4, 0, d)
    return {
        "random": (_gauss(rng, 500, d), _gauss(rng, 400, d, 0.2, 1.3)),
        "ill-conditioned": (rng.standard_normal((3000, d)) * s @ q.T, rng.standard_normal((3000, d)) * s[::-1] @ q.T + 0.01),
        "rank-deficient": (_gauss(rng, 30, d), _gauss(rng, 40, d, 0.1)),
        "rank-deficient-relu": (np.maximum(_gauss(rng, 50, 256), 0), np.maximum(_gauss(rng, 60, 256, 0.1), 0)),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_frechet_matches_cleanfid(case):
    gen, ref = _cases()[case]
    sg, sr = gaussian_stats(gen), gaussian_stats(ref)
    expected = _cleanfid(sg["mu"], sg["sigma"], sr["mu"], sr["sigma"])
    tol = 1e-6 * max(abs(expected), 1.0)
    assert abs(fid.frechet_distance(sg["mu"], sg["sigma"], sr["mu"], sr["sigma"]) - expected) <= tol
    assert abs(fid.frechet_distance(sr["mu"], sr["sigma"], sg["mu"], sg["sigma"]) - expected) <= tol
    res = fid.fid_from_features(gen, ref, n_boot=0)  # Gram route (N ≤ d) or d × d route
    assert abs(res.value - expected) <= tol
    assert res.details["rank_deficient"] == (len(gen) <= gen.shape[1])


def test_rank_deficient_trace_matches_40_digit_arithmetic():
    # clean-fid's sqrtm is off by ~1e-8 relative on singular products; check ours against mpmath instead
    mpmath = pytest.importorskip("mpmath")
    rng = np.random.default_rng(2)
    gen, ref = _gauss(rng, 25, 40), _gauss(rng, 60, 40, 0.3, 1.2)
    sg, sr = gaussian_stats(gen), gaussian_stats(ref)
    with mpmath.workdps(40):
        y = mpmath.matrix(((gen - sg["mu"]) @ sr["sqrt_sigma"]).tolist())
        eig = mpmath.eigsy(y * y.T / (len(gen) - 1))[0]
        tr = float(sum(mpmath.sqrt(max(e, 0)) for e in eig))
    diff = sg["mu"] - sr["mu"]
    expected = diff @ diff + np.trace(sg["sigma"]) + np.trace(sr["sigma"]) - 2 * tr
    assert fid.frechet_distance(sg["mu"], sg["sigma"], sr["mu"], sr["sigma"]) == pytest.approx(expected, rel=1e-12)
    assert fid.fid_from_features(gen, ref, n_boot=0).value == pytest.approx(expected, rel=1e-12)


@pytest.mark.slow
def test_frechet_matches_cleanfid_at_1024():  # benchmarks/fid.py does d = 2048 (clean-fid's sqrtm: minutes here)
    rng = np.random.default_rng(3)
    gen, ref = np.abs(_gauss(rng, 300, 1024)), np.abs(_gauss(rng, 400, 1024, 0.05))
    sg, sr = gaussian_stats(gen), gaussian_stats(ref)
    expected = _cleanfid(sg["mu"], sg["sigma"], sr["mu"], sr["sigma"])
    assert abs(fid.fid_from_features(gen, ref, n_boot=0).value - expected) <= 1e-6 * expected


def test_stats_match_numpy_cov():
    x = _gauss(np.random.default_rng(1), 50, 7, 3.0)
    st = gaussian_stats(x)
    np.testing.assert_allclose(st["sigma"], np.cov(x, rowvar=False), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(st["mu"], x.mean(axis=0))
    np.testing.assert_allclose(st["sqrt_sigma"] @ st["sqrt_sigma"], st["sigma"], atol=1e-12)


@pytest.mark.parametrize("n,d", [(40, 64), (60, 8)])  # Gram route (s ≤ d) and d × d route (s > d)
def test_weighted_gram_equals_explicit_resample(n, d):
    rng = np.random.default_rng(2)
    gen, ref = _gauss(rng, n, d), _gauss(rng, 80, d, 0.3, 1.2)
    sr = gaussian_stats(ref)
    eng = GenGram(gen, sr["mu"], sr["sigma"], sr["sqrt_sigma"])
    for _ in range(3):
        idx = rng.integers(0, n, n)  # a bootstrap resample, with duplicates
        w = np.bincount(idx, minlength=n)
        sb = gaussian_stats(gen[idx], with_sqrt=False)
        got = eng.fid(w)[0]
        assert got == pytest.approx(fid.frechet_distance(sb["mu"], sb["sigma"], sr["mu"], sr["sigma"]), rel=1e-10)
        assert got == pytest.approx(_cleanfid(sb["mu"], sb["sigma"], sr["mu"], sr["sigma"]), rel=1e-6)
    sub = rng.choice(n, n // 2, replace=False)  # a subset without replacement (FID∞)
    w = np.zeros(n, dtype=int)
    w[sub] = 1
    ss = gaussian_stats(gen[sub], with_sqrt=False)
    assert eng.fid(w)[0] == pytest.approx(fid.frechet_distance(ss["mu"], ss["sigma"], sr["mu"], sr["sigma"]), rel=1e-8)


@pytest.mark.parametrize("n,d", [(40, 64), (60, 8)])
def test_threaded_replicates_equal_serial_for_any_worker_count(n, d):
    rng = np.random.default_rng(3)
    gen, ref = _gauss(rng, n, d), _gauss(rng, 80, d, 0.3, 1.2)
    sr = gaussian_stats(ref)
    eng = GenGram(gen, sr["mu"], sr["sigma"], sr["sqrt_sigma"])
    weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(9)])
    one_by_one = np.array([eng.fid(w)[0] for w in weights])
    serial = eng.fids(weights, workers=1)
    np.testing.assert_allclose(serial, one_by_one, rtol=1e-12)
    for workers in (2, 4):
        np.testing.assert_array_equal(eng.fids(weights, workers=workers), serial)
    assert eng.fids(np.zeros((0, n), dtype=int)).shape == (0,)
    full = fid.fid_family(gen, ref, rng=5, metrics=("fid", "fid_inf"), n_boot=12, workers=1)
    many = fid.fid_family(gen, ref, rng=5, metrics=("fid", "fid_inf"), n_boot=12, workers=3)
    for key in full:
        assert (full[key].value, full[key].ci_low, full[key].ci_high) == (many[key].value, many[key].ci_low, many[key].ci_high)
        assert full[key].details.get("points") == many[key].details.get("points")


def test_kid_matches_torchmetrics_on_the_same_subsets():
    pytest.importorskip("torchmetrics")
    from tests.tasks.kid_reference import torchmetrics_kid

    rng = np.random.default_rng(4)
    real, fake = np.abs(_gauss(rng, 70, 16)), np.abs(_gauss(rng, 60, 16, 0.1))
    tm_mean, tm_std, fidx, ridx = torchmetrics_kid(real, fake, subsets=5, m=40, seed=7)
    ours = fid.kid_subset_values(fake, real, fidx, ridx)
    assert ours.mean() == pytest.approx(tm_mean, rel=1e-9)
    assert ours.std() == pytest.approx(tm_std, rel=1e-7)


def test_kid_bootstrap_replicate_and_full_set_are_the_u_statistic():
    rng = np.random.default_rng(5)
    g, r = _gauss(rng, 30, 6), _gauss(rng, 25, 6, 0.2)
    k = lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3

    def mmd(x, y, same_x):  # unbiased MMD² with pairs allowed by the mask same_x (copies excluded)
        kxx = k(x, x)
        xx = kxx[~same_x].mean()
        kyy = k(y, y)
        yy = (kyy.sum() - np.trace(kyy)) / (len(y) * (len(y) - 1))
        return xx + yy - 2 * k(x, y).mean()

    res = fid.kid(g, r, n_boot=0, subsets=3)
    gc = fid._canonical(g)
    assert res.details["full_set_mmd2"] == pytest.approx(mmd(gc, r, np.eye(30, dtype=bool)), rel=1e-10)
    # one bootstrap replicate, recomputed by hand on the resampled set
    boot_rng, _, _ = np.random.default_rng(0).spawn(3)
    w = fid._boot_weights(boot_rng, 30, 1)[0]
    idx = np.repeat(np.arange(30), w)
    res1 = fid.kid(g, r, rng=np.random.default_rng(0), n_boot=1, subsets=3, resample_ref=False)
    assert res1.details["boot_mean"] == pytest.approx(mmd(gc[idx], r, idx[:, None] == idx[None, :]), rel=1e-10)


# invariances and determinism ------------------------------------------------------------------------------
def _family(gen, ref, seed=0, block=1024):
    return fid.fid_family(gen, ref, rng=seed, n_boot=50, fid_inf_sizes=5, fid_inf_draws=2, kid_subsets=10,
                          kid_subset_size=30, kid_block=block)


def _numbers(res):
    return {k: (v.value, v.ci_low, v.ci_high) for k, v in res.items()}


def test_same_seed_identical_and_seed_matters():
    rng = np.random.default_rng(6)
    gen, ref = _gauss(rng, 60, 12), _gauss(rng, 70, 12, 0.3)
    assert _numbers(_family(gen, ref)) == _numbers(_family(gen, ref))
    assert _numbers(_family(gen, ref, seed=1))["fid"][1] != _numbers(_family(gen, ref))["fid"][1]


def test_feature_order_and_block_size_do_not_change_results():
    rng = np.random.default_rng(7)
    gen, ref = _gauss(rng, 60, 12), _gauss(rng, 70, 12, 0.3)
    base = _numbers(_family(gen, ref))
    perm = _numbers(_family(gen[rng.permutation(60)], ref[rng.permutation(70)], block=7))
    for key in base:
        np.testing.assert_allclose(perm[key], base[key], rtol=1e-9)


def test_family_equals_single_functions():
    rng = np.random.default_rng(8)
    gen, ref = _gauss(rng, 60, 12), _gauss(rng, 70, 12, 0.3)
    fam = fid.fid_family(gen, ref, rng=3, n_boot=20, kid_subsets=5, kid_subset_size=30)
    assert fid.fid_from_features(gen, ref, rng=3, n_boot=20).ci_low == fam["fid"].ci_low
    assert fid.fid_infinity(gen, ref, rng=3, n_boot=20).value == fam["fid_inf"].value
    assert fid.kid(gen, ref, rng=3, n_boot=20, subsets=5, subset_size=30).ci_high == fam["kid"].ci_high


def test_cached_reference_stats_are_reused(monkeypatch):
    rng = np.random.default_rng(9)
    gen, ref = _gauss(rng, 40, 10), _gauss(rng, 50, 10, 0.2)
    stats = fid.reference_stats(ref)
    from_features = fid.fid_from_features(gen, ref, n_boot=10)

    def boom(*a, **k):
        raise AssertionError("reference square root recomputed")

    monkeypatch.setattr("tasks.fid.sqrtm_psd", boom)
    monkeypatch.setattr("tasks.fid_math.sqrtm_psd", boom)
    for res in (fid.fid_from_features(gen, stats, n_boot=10), fid.fid_from_features(gen, ref, ref_stats=stats, n_boot=10)):
        assert res.value == pytest.approx(from_features.value, rel=1e-12)
        assert res.ci_low == pytest.approx(from_features.ci_low, rel=1e-12)


# bad input -------------------------------------------------------------------------------------------------
def test_non_finite_features_name_the_set():
    rng = np.random.default_rng(10)
    gen, ref = _gauss(rng, 20, 4), _gauss(rng, 20, 4)
    gen[3, 1] = np.nan
    with pytest.raises(DataError, match="generated features.*row 3"):
        fid.fid_from_features(gen, ref)
    ref[5, 0] = np.inf
    with pytest.raises(DataError, match="reference features.*row 5"):
        fid.kid(_gauss(rng, 20, 4), ref)


def test_mismatched_dims_and_too_few_samples():
    rng = np.random.default_rng(11)
    with pytest.raises(DataError, match="dimensions differ"):
        fid.fid_from_features(_gauss(rng, 20, 4), _gauss(rng, 20, 5))
    with pytest.raises(DataError, match="dimensions differ"):
        fid.kid(_gauss(rng, 20, 4), _gauss(rng, 20, 5))
    with pytest.raises(DataError, match="at least 2"):
        fid.fid_from_features(_gauss(rng, 1, 4), _gauss(rng, 20, 4))
    with pytest.raises(DataError, match="different dimensions"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_fid_infinity_too_few_samples_is_a_clear_error():
    rng = np.random.default_rng(12)
    with pytest.raises(DataError, match="FID∞ needs .*N=6"):
        fid.fid_infinity(_gauss(rng, 6, 4), _gauss(rng, 30, 4))  # sizes 1..6: smallest subset < 2
    with pytest.raises(DataError, match="FID∞ needs"):
        fid.fid_infinity(_gauss(rng, 30, 4), _gauss(rng, 30, 4), sizes=[10, 20, 40])


def test_non_psd_covariance_reports_the_magnitude():
    bad = np.array([[1.0, 0.0], [0.0, -0.5]])
    with pytest.raises(DataError, match=r"not positive semi-definite: eigenvalue -5\.000e-01"):
        fid.frechet_distance(np.zeros(2), bad, np.zeros(2), np.eye(2))
    with pytest.raises(DataError, match=r"not positive semi-definite: eigenvalue -5\.000e-01"):
        fid.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), bad)


def test_non_psd_sigma2_hidden_in_the_null_space_of_sigma1_is_an_error():
    # A = Σ₁^½ = diag(1, 0) never sees Σ₂'s negative direction; the distance would be −0.5
    with pytest.raises(DataError, match=r"negative \(-5\.000e-01.*sigma2 is not positive semi-definite"):
        fid.frechet_distance(np.zeros(2), np.diag([1.0, 0.0]), np.zeros(2), np.diag([1.0, -0.5]))


def test_a_stale_or_malformed_cached_root_is_refused():
    rng = np.random.default_rng(16)
    gen, ref = _gauss(rng, 30, 6), _gauss(rng, 40, 6, 0.2, 1.5)
    good = fid.reference_stats(ref)
    assert fid.fid_from_features(gen, good, n_boot=0).value == pytest.approx(
        fid.fid_from_features(gen, ref, n_boot=0).value, rel=1e-12)
    for root, pattern in [(np.eye(6), "does not square to the covariance"), (np.eye(5), "shape"),
                          (np.full((6, 6), np.nan), "NaN"), (np.triu(np.ones((6, 6))), "not symmetric")]:
        with pytest.raises(DataError, match=pattern):
            fid.fid_from_features(gen, {**good, "sqrt_sigma": root}, n_boot=0)
    with pytest.raises(DataError, match="does not square"):
        fid.frechet_distance(good["mu"], good["sigma"], good["mu"], good["sigma"], sqrt_sigma1=np.eye(6))
    bad_sigma = np.diag([1.0, -0.5, 1, 1, 1, 1])  # a root that squares to diag(1, 0, ...) hides Σ's sign
    with pytest.raises(DataError, match="does not square"):
        fid.fid_from_features(gen, {"mu": good["mu"], "sigma": bad_sigma, "sqrt_sigma": np.diag([1.0, 0, 1, 1, 1, 1])},
                              n_boot=0)


def test_gram_route_without_the_precomputed_gram_matrix():
    rng = np.random.default_rng(17)
    gen, ref = _gauss(rng, 40, 64), _gauss(rng, 50, 64, 0.3)
    sr = gaussian_stats(ref)
    eng = GenGram(gen, sr["mu"], sr["sigma"], sr["sqrt_sigma"], gram_max=10)  # N > gram_max: K not stored
    assert eng.k is None
    idx = rng.integers(0, 40, 40)
    sb = gaussian_stats(gen[idx], with_sqrt=False)
    assert eng.fid(np.bincount(idx, minlength=40))[0] == pytest.approx(
        _cleanfid(sb["mu"], sb["sigma"], sr["mu"], sr["sigma"]), rel=1e-6)


def test_bad_fid_inf_and_subset_options_are_clear_errors():
    rng = np.random.default_rng(18)
    gen, ref = _gauss(rng, 40, 4), _gauss(rng, 40, 4)
    for draws in (0, -1):
        with pytest.raises(UsageError, match="≥ 1 draw"):
            fid.fid_infinity(gen, ref, draws=draws, n_boot=0)
    with pytest.raises(DataError, match="whole numbers"):
        fid.fid_infinity(gen, ref, sizes=[10.7, 20, 40], n_boot=0)
    with pytest.raises(DataError, match="repeats an index"):
        fid.kid_subset_values(gen, ref, np.array([[0, 0, 1]]), np.array([[0, 1, 2]]))
    with pytest.raises(DataError, match="same shape"):
        fid.kid_subset_values(gen, ref, np.array([[0, 1, 2, 3]]), np.array([[0, 1]]))
    with pytest.raises(DataError, match="0..39"):
        fid.kid_subset_values(gen, ref, np.array([[0, 40]]), np.array([[0, 1]]))
    assert set(fid.fid_family(gen, ref, metrics="fid,kid", n_boot=0, kid_subsets=2)) == {"fid", "kid"}


def test_kid_interval_brackets_the_subset_mean_it_reports():
    # subset size < N: the value (mean over subsets) and the full-set MMD² differ; the interval is centred on
    # the value (shifted bootstrap interval, widened by the subset noise)
    misses = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        gen, ref = _gauss(rng, 400, 16), _gauss(rng, 400, 16, 0.02)
        res = fid.kid(gen, ref, rng=seed, subsets=20, subset_size=50, n_boot=50)
        lo_f, hi_f = res.details["ci_full_set"]
        full = res.details["full_set_mmd2"]
        assert res.value - res.ci_low >= full - lo_f and res.ci_high - res.value >= hi_f - full
        misses += not res.ci_low <= res.value <= res.ci_high
    assert misses == 0


def test_fid_inf_interval_adds_fit_and_model_error_in_quadrature():
    rng = np.random.default_rng(19)
    res = fid.fid_infinity(_gauss(rng, 80, 5), _gauss(rng, 80, 5, 0.3), rng=3, n_boot=40)
    d = res.details
    z = 1.959963984540054
    pts = np.asarray(d["points"])
    a_quad = np.polynomial.polynomial.polyfit(pts[:, 0], pts[:, 1], 2)[0]
    assert d["a_quadratic"] == pytest.approx(a_quad, rel=1e-8)
    m = abs(a_quad - res.value)
    blo, bhi = d["ci_bootstrap"]
    assert res.ci_low == pytest.approx(res.value - np.sqrt((res.value - blo) ** 2 + (z * d["se_a"]) ** 2 + m**2), rel=1e-9)
    assert res.ci_high == pytest.approx(res.value + np.sqrt((bhi - res.value) ** 2 + (z * d["se_a"]) ** 2 + m**2), rel=1e-9)
    assert res.ci_low < blo < res.value < bhi < res.ci_high


def test_kid_needs_reference_features():
    stats = fid.reference_stats(_gauss(np.random.default_rng(13), 20, 4))
    with pytest.raises(UsageError, match="KID needs the reference features"):
        fid.kid(_gauss(np.random.default_rng(14), 20, 4), stats)


# the task ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("space,names", [
    ("inception", ["FID", "FID_inf", "KID", "FID_rel"]),
    ("radiomics", ["FD_radiomics", "FD_radiomics_inf", "KD_radiomics", "FD_radiomics_rel"]),
])
def test_task_reports_three_labelled_metrics(space, names):
    rng = np.random.default_rng(15)
    gen, ref = _gauss(rng, 60, 8), _gauss(rng, 60, 8, 0.5)
    stats = fid.reference_stats(ref)
    ctx = TaskContext(feature_space=space, rng=np.random.default_rng(0), gen_features=gen, ref_features=ref,
                      ref_stats=lambda: stats)
    task = fid.FIDTask(n_boot=20, kid_subsets=5)
    out = task.evaluate(ctx)
    assert [r.metric for r in out] == names
    for r in out:
        assert r.feature_space == space and r.details["feature_space"] == space and not r.higher_is_better
        assert r.ci_low <= r.value <= r.ci_high and r.n == 60
    direct = fid.fid_from_features(gen, ref, rng=np.random.default_rng(0), n_boot=20)
    assert out[0].value == pytest.approx(direct.value) and out[0].ci_low == pytest.approx(direct.ci_low)


def test_task_rejects_unknown_options_and_labels_substitutes():
    with pytest.raises(UsageError, match="no option"):
        fid.FIDTask(n_bot=3)
    rng = np.random.default_rng(16)
    ctx = TaskContext(feature_space="random-inception", rng=rng, gen_features=_gauss(rng, 40, 6),
                      ref_features=_gauss(rng, 40, 6), feature_substitute=True)
    out = fid.FIDTask(metrics="fid", n_boot=5).evaluate(ctx)
    assert [r.metric for r in out] == ["FD_random-inception"] and "NOT" in out[0].details["substitute"]


def test_progress_counts_every_fid_computed():
    rng = np.random.default_rng(8)
    gen, ref = _gauss(rng, 40, 6), _gauss(rng, 50, 6, 0.2)
    calls = []
    res = fid.fid_family(gen, ref, rng=1, n_boot=7, fid_inf_size_list=[10, 20, 40], fid_inf_draws=2,
                         progress=lambda k, total=None: calls.append((k, total)))
    assert calls[0] == (0, 7 + 2 + 2 + 1)  # bootstrap resamples + FID∞ subsets (one at the full size)
    assert sum(k for k, _ in calls) == 12 and all(t is None for _, t in calls[1:])
    assert len(res["fid_inf"].details["points"]) == 5
