"""FID/KID/FID∞ numbers and intervals against independent computations (issue 23: a wrong number must fail).

Each test recomputes the reported quantity without the code under test: the unbiased MMD² by hand, KID by
torch-fidelity and torchmetrics on the same subset draws, FID∞'s standard errors by statsmodels OLS, and the
bootstrap spread by an explicit resampling loop with clean-fid's Fréchet distance.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tasks import fid


def _poly(a, b):
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x, y):
    """Unbiased MMD² (Gretton et al. 2012, eq. 3) with the KID kernel, written out directly."""
    kxx, kyy, kxy = _poly(x, x), _poly(y, y), _poly(x, y)
    n, m = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2.0 * kxy.mean())


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(23)
    gen = rng.standard_normal((120, 6)) * 1.2 + 0.3
    ref = rng.standard_normal((120, 6))
    return gen, ref


def test_kid_with_full_size_subsets_is_the_unbiased_mmd2_of_the_full_sets(sets):
    # subset size = N: every subset is the whole set (drawn without replacement), so every subset value, their
    # mean (the reported KID) and the full-set MMD² coincide and the subset spread is zero
    gen, ref = sets
    truth = _mmd2_unbiased(gen, ref)
    res = fid.kid(gen, ref, rng=1, subsets=7, subset_size=1000, n_boot=0)
    assert res.details["subset_size"] == 120
    assert res.value == pytest.approx(truth, rel=1e-10)
    assert res.details["full_set_mmd2"] == pytest.approx(truth, rel=1e-10)
    assert res.details["std"] <= 1e-9 * abs(truth)


def test_kid_subset_mean_is_unbiased_for_the_full_set_mmd2(sets):
    # E over random subsets of the subset MMD² is the full-set MMD²; 400 subsets of 60: within 4 standard errors
    gen, ref = sets
    res = fid.kid(gen, ref, rng=2, subsets=400, subset_size=60, n_boot=0)
    se = res.details["std"] / np.sqrt(400)
    assert res.details["subset_size"] == 60
    assert abs(res.value - _mmd2_unbiased(gen, ref)) < 4 * se


def _torch_fidelity_draws(n1, n2, subsets, m, seed):
    rng = np.random.RandomState(seed)  # torch_fidelity.metric_kid.kid_features_to_metric, draw for draw
    g, r = [], []
    for _ in range(subsets):
        g.append(rng.choice(n1, m, replace=False))
        r.append(rng.choice(n2, m, replace=False))
    return np.stack(g), np.stack(r)


def test_reported_kid_equals_torch_fidelity_on_the_same_subsets(sets):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_fidelity")
    from torch_fidelity.metric_kid import kid_features_to_metric

    gen, ref = sets
    ref = ref[:100]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = kid_features_to_metric(torch.from_numpy(gen), torch.from_numpy(ref), kid_subsets=9, kid_subset_size=50,
                                     rng_seed=5, verbose=False)
    gi, ri = _torch_fidelity_draws(len(gen), len(ref), 9, 50, 5)
    shuffled = np.random.default_rng(0).permutation(len(ref))  # indices follow the caller's row order
    inv = np.argsort(shuffled)
    res = fid.kid(gen, ref[shuffled], subset_indices=(gi, inv[ri]), n_boot=0)
    assert res.value == pytest.approx(out["kernel_inception_distance_mean"], rel=1e-9)
    assert res.details["std"] == pytest.approx(out["kernel_inception_distance_std"], rel=1e-7)


def test_reported_kid_equals_torchmetrics_on_the_same_subsets(sets):
    pytest.importorskip("torchmetrics")
    from tests.tasks.kid_reference import torchmetrics_kid

    gen, ref = sets
    real, fake = np.abs(ref[:70]), np.abs(gen[:60])
    tm_mean, tm_std, fidx, ridx = torchmetrics_kid(real, fake, subsets=6, m=40, seed=11)
    res = fid.kid(fake, real, subset_indices=(fidx, ridx), n_boot=0)
    assert res.value == pytest.approx(tm_mean, rel=1e-9)
    assert res.details["std"] == pytest.approx(tm_std, rel=1e-7)


def test_fid_infinity_fit_and_standard_errors_equal_statsmodels_ols():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(3)
    gen, ref = rng.standard_normal((150, 5)) * 1.3, rng.standard_normal((150, 5))
    res = fid.fid_infinity(gen, ref, rng=4, n_boot=0)
    pts = np.asarray(res.details["points"])
    ols = sm.OLS(pts[:, 1], sm.add_constant(pts[:, 0])).fit()
    assert res.value == pytest.approx(ols.params[0], rel=1e-9)
    assert res.details["k"] == pytest.approx(ols.params[1], rel=1e-9)
    assert res.details["se_a"] == pytest.approx(ols.bse[0], rel=1e-9)
    assert res.details["se_k"] == pytest.approx(ols.bse[1], rel=1e-9)
    assert res.details["rms_residual"] == pytest.approx(np.sqrt(np.mean(ols.resid**2)), rel=1e-9)
    # the points are FIDs of subsets of the stated sizes: the full-size point is the plain FID
    full = pts[np.isclose(pts[:, 0], 1 / 150)]
    assert full[:, 1] == pytest.approx([fid.fid_from_features(gen, ref, n_boot=0).value], rel=1e-9)


def _independent_fid_bootstrap_sd(gen, ref, n_boot, seed):
    from cleanfid.fid import frechet_distance

    rng = np.random.default_rng(seed)
    mr, sr = ref.mean(0), np.cov(ref, rowvar=False)
    vals = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n_boot):
            x = gen[rng.integers(0, len(gen), len(gen))]
            vals.append(float(frechet_distance(x.mean(0), np.cov(x, rowvar=False), mr, sr)))
    return float(np.std(vals, ddof=1))


def test_fid_interval_is_a_95_percent_interval_of_the_bootstrap_spread():
    rng = np.random.default_rng(8)
    gen, ref = rng.standard_normal((200, 6)) * 1.25 + 0.2, rng.standard_normal((300, 6))
    res = fid.fid_from_features(gen, ref, rng=0, n_boot=300)
    sd = _independent_fid_bootstrap_sd(gen, ref, 300, seed=99)
    assert res.details["boot_std"] == pytest.approx(sd, rel=0.2)
    # a 95 % interval of a near-normal spread is ≈ 2 × 1.96 sd wide (a 50 % one would be 2 × 0.67 sd)
    assert 0.8 < (res.ci_high - res.ci_low) / (2 * 1.96 * sd) < 1.25
    assert res.details["ci_level"] == 0.95
    # FID∞ is at least as uncertain as FID_N at the full size
    inf = fid.fid_infinity(gen, ref, rng=0, n_boot=300)
    assert (inf.ci_high - inf.ci_low) >= 0.95 * (res.ci_high - res.ci_low)


def test_kid_interval_is_a_95_percent_interval_of_an_independent_two_sample_bootstrap():
    rng = np.random.default_rng(9)
    gen, ref = rng.standard_normal((80, 4)) + 0.3, rng.standard_normal((80, 4)) * 1.3  # the reference is the noisier
    res = fid.kid(gen, ref, rng=0, n_boot=300, subset_size=1000, subsets=3)
    brng = np.random.default_rng(77)
    vals = []
    for _ in range(300):  # resample both sets; pairs of copies of one sample excluded (as the U-statistic)
        gi, ri = brng.integers(0, 80, 80), brng.integers(0, 80, 80)
        x, y = gen[gi], ref[ri]
        kxx, kyy = _poly(x, x), _poly(y, y)
        sx, sy = gi[:, None] == gi[None, :], ri[:, None] == ri[None, :]
        vals.append(kxx[~sx].mean() + kyy[~sy].mean() - 2 * _poly(x, y).mean())
    sd = float(np.std(vals, ddof=1))
    assert res.details["boot_std"] == pytest.approx(sd, rel=0.2)
    assert 0.8 < (res.ci_high - res.ci_low) / (2 * 1.96 * sd) < 1.25
    lo_f, hi_f = res.details["ci_full_set"]  # the bootstrap part on its own (the jackknife floor could hide it)
    assert 0.8 < (hi_f - lo_f) / (2 * 1.96 * sd) < 1.25
    fixed = fid.kid(gen, ref, rng=0, n_boot=300, subset_size=1000, subsets=3, resample_ref=False)
    assert fixed.value == res.value
    assert fixed.ci_high - fixed.ci_low < 0.85 * (res.ci_high - res.ci_low)  # the reference's noise is real


def test_kid_interval_adds_the_subset_noise():
    rng = np.random.default_rng(10)
    gen, ref = rng.standard_normal((300, 4)) * 1.3 + 0.2, rng.standard_normal((300, 4))
    res = fid.kid(gen, ref, rng=0, n_boot=100, subset_size=40, subsets=10)
    d = res.details
    z = 1.959963984540054
    se = d["std"] * np.sqrt(10 / 9) / np.sqrt(10)  # details["std"] has ddof=0 (torchmetrics); se: ddof=1 over S
    assert d["se_subsets"] == pytest.approx(se, rel=1e-9)
    lo_f, hi_f = d["ci_full_set"]
    down = max(d["full_set_mmd2"] - lo_f, z * d["se_jackknife"])
    up = max(hi_f - d["full_set_mmd2"], z * d["se_jackknife"])
    assert res.ci_low == pytest.approx(res.value - np.hypot(down, z * se), rel=1e-9)
    assert res.ci_high == pytest.approx(res.value + np.hypot(up, z * se), rel=1e-9)


def _mmd2_u(x, y):
    kxx, kyy = _poly(x, x), _poly(y, y)
    n, m = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * _poly(x, y).mean())


@pytest.mark.parametrize("resample_ref", [True, False])
def test_kid_jackknife_se_equals_a_direct_delete_one_jackknife(resample_ref):
    rng = np.random.default_rng(3)
    gen, ref = rng.standard_normal((25, 3)) * 1.2 + 0.3, rng.standard_normal((30, 3))
    res = fid.kid(gen, ref, rng=0, n_boot=30, subsets=2, resample_ref=resample_ref)
    tg = np.array([_mmd2_u(np.delete(gen, i, 0), ref) for i in range(25)])
    var = 24 / 25 * ((tg - tg.mean()) ** 2).sum()
    if resample_ref:
        tr = np.array([_mmd2_u(gen, np.delete(ref, j, 0)) for j in range(30)])
        var += 29 / 30 * ((tr - tr.mean()) ** 2).sum()
    assert res.details["se_jackknife"] == pytest.approx(np.sqrt(var), rel=1e-9)
    z = 1.959963984540054
    se = np.sqrt(var)
    d = res.details
    lo_f, hi_f = d["ci_full_set"]
    full = d["full_set_mmd2"]
    if resample_ref:
        assert full - lo_f < z * se  # the fixture: the jackknife floor decides the lower side
    down, up = max(full - lo_f, z * se), max(hi_f - full, z * se)
    sub = z * d["se_subsets"]  # the reference subsets (25 of 30) differ: subset noise in quadrature
    assert res.ci_low == pytest.approx(res.value - np.hypot(down, sub), rel=1e-9)
    assert res.ci_high == pytest.approx(res.value + np.hypot(up, sub), rel=1e-9)


def test_fid_interval_is_centred_on_the_estimate():
    # d = 20, N = 60: FID_N's bias (≈ k/N) is large and a resample adds it again, so the plain percentile
    # interval sits above the estimate; the reported (centred) one has the estimate at its replicates' mean
    rng = np.random.default_rng(12)
    gen, ref = rng.standard_normal((60, 20)) * 1.1, rng.standard_normal((400, 20))
    res = fid.fid_from_features(gen, ref, rng=0, n_boot=200)
    pct_lo, pct_hi = res.details["ci_percentile"]
    assert pct_lo > res.value  # the fixture: the percentile interval misses the estimate entirely
    shift = res.value - res.details["boot_mean"]
    assert [res.ci_low, res.ci_high] == pytest.approx([pct_lo + shift, pct_hi + shift], rel=1e-9)
    assert res.ci_low < res.value < res.ci_high
