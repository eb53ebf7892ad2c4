"""harness validate-intervals: the coverage study's known truths and the command (issue 23)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from tasks import interval_study as st


def test_poly3_kernel_mean_matches_monte_carlo():
    rng = np.random.default_rng(0)
    d = 3
    mu1, mu2 = np.array([0.5, -0.2, 0.1]), np.array([0.0, 0.3, -0.4])
    a, b = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    s1, s2 = a @ a.T / d + 0.2 * np.eye(d), b @ b.T / d + 0.3 * np.eye(d)
    x = rng.multivariate_normal(mu1, s1, 400_000)
    y = rng.multivariate_normal(mu2, s2, 400_000)
    k = (np.einsum("ij,ij->i", x, y) / d + 1.0) ** 3
    se = k.std() / np.sqrt(k.size)
    assert abs(st.poly3_kernel_mean(mu1, s1, mu2, s2) - k.mean()) < 4 * se
    assert st.poly3_kernel_mean(np.zeros(1), np.eye(1), np.zeros(1), np.eye(1)) == pytest.approx(4.0)  # E(xy+1)³
    assert st.poly3_mmd2(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-12)


def test_rating_expectation_matches_monte_carlo():
    z = np.random.default_rng(1).normal(3.4, 1.3, 1_000_000)
    assert st.rating_expectation(3.4, 1.3) == pytest.approx(np.clip(np.rint(z), 1, 5).mean(), abs=0.004)


def test_wilson_coverage_is_the_binomial_sum_over_statsmodels_intervals():
    from scipy.stats import binom
    from statsmodels.stats.proportion import proportion_confint

    n, p = 40, 0.1
    cov = sum(binom.pmf(k, n, p) for k in range(n + 1)
              if proportion_confint(k, n, method="wilson")[0] <= p <= proportion_confint(k, n, method="wilson")[1])
    assert st.wilson_coverage(n, p) == pytest.approx(cov, abs=1e-12)


def test_a_narrow_interval_fails_its_row(monkeypatch):
    from tasks import fid

    real_kid = fid.kid

    def half_width_kid(*a, **k):  # a 95 % interval shrunk to a third of its width: ≈ 50 % coverage
        r = real_kid(*a, **k)
        return fid.DistanceResult(r.value, r.value - (r.value - r.ci_low) / 3, r.value + (r.ci_high - r.value) / 3,
                                  r.n, r.details)

    monkeypatch.setattr(fid, "kid", half_width_kid)
    rows = st.coverage_study(dims=(4,), ns=(60,), kinds=("different",), reps=40, n_boot=50, families=("kid",))
    assert len(rows) == 1 and not rows[0].passed and rows[0].coverage < 0.8
    assert not st.all_passed(rows)


def test_quick_study_passes_and_prints_every_interval():
    res = CliRunner().invoke(app, ["validate-intervals", "--quick", "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert {r["interval"] for r in rows} == {"FID_N (centred bootstrap)", "FID∞", "KID", "cluster bootstrap (mean diff)",
                                             "TOST 90% CI (mean diff)", "Wilson (flag rate)",
                                             "CMMD (bootstrap, jackknife floor)", "mean Dice (bootstrap over test images)"}
    assert all(r["passed"] for r in rows)
    assert all(r["reps"] > 0 for r in rows)  # d = 8 < N = 100: FID∞'s interval is reported and checked
    cmmd_rows = [r for r in rows if r["interval"].startswith("CMMD")]
    assert len(cmmd_rows) == 3 and all(r["target"].startswith("E[CMMD_N | ref]") for r in cmmd_rows)
    fid_row = next(r for r in rows if r["interval"].startswith("FID_N"))
    assert fid_row["target"].startswith("E[FID_N]")  # it says what it covers


def test_bad_options_are_usage_errors():
    from harness.errors import UsageError  # harness.cli.main maps it to exit code 2

    res = CliRunner().invoke(app, ["validate-intervals", "--families", "fid,bogus"])
    assert isinstance(res.exception, UsageError) and "bogus" in str(res.exception)
    res = CliRunner().invoke(app, ["validate-intervals", "--dims", "8,x"])
    assert isinstance(res.exception, UsageError) and "--dims" in str(res.exception)


def test_an_interval_entirely_below_the_truth_never_covers(monkeypatch):
    from tasks import fid

    real_kid = fid.kid

    def shifted_kid(*a, **k):  # right width, wrong place: both ends below any plausible truth
        r = real_kid(*a, **k)
        return fid.DistanceResult(r.value, r.ci_low - 2.0, r.ci_low - 1.0, r.n, r.details)

    monkeypatch.setattr(fid, "kid", shifted_kid)
    (row,) = st.coverage_study(dims=(4,), ns=(40,), kinds=("different",), reps=10, n_boot=20, families=("kid",))
    assert row.covered == 0 and row.coverage == 0.0 and not row.passed


def test_rbf_closed_forms_match_monte_carlo():
    rng = np.random.default_rng(5)
    d, sigma = 3, 2.0
    mu, a = np.array([0.4, -0.3, 1.0]), rng.standard_normal((d, d))
    cov = a @ a.T / d + 0.5 * np.eye(d)
    y = np.array([[0.0, 0.5, -0.5], [2.0, 1.0, 0.0]])
    x = rng.multivariate_normal(mu, cov, 400_000)
    for j in range(2):
        k = np.exp(-((x - y[j]) ** 2).sum(axis=1) / (2 * sigma**2))
        assert st.rbf_kernel_mean(mu, cov, y[j:j + 1], sigma)[0] == pytest.approx(k.mean(), abs=4 * k.std() / np.sqrt(k.size))
    x2 = rng.multivariate_normal(mu, cov, 400_000)
    k = np.exp(-((x - x2) ** 2).sum(axis=1) / (2 * sigma**2))
    assert st.rbf_self_mean(cov, sigma) == pytest.approx(k.mean(), abs=4 * k.std() / np.sqrt(k.size))
    assert st.cmmd_population(mu, cov, mu, cov, sigma=sigma, scale=1000.0) == pytest.approx(0.0, abs=1e-12)


def test_cmmd_expectation_is_the_mean_of_the_reported_cmmd_over_generated_sets():
    from tasks.cmmd import cmmd

    rng = np.random.default_rng(6)
    d, n, sigma = 2, 8, 10.0
    mu, cov = np.array([3.0, -2.0]), np.diag([25.0, 49.0])  # spread ≈ σ: a curved kernel
    ref = rng.standard_normal((12, d)) * 6.0
    vals = np.array([cmmd(mu + rng.standard_normal((n, d)) * np.sqrt(np.diag(cov)), ref, n_boot=0).value
                     for _ in range(3000)])
    want = st.cmmd_expectation(mu, cov, ref, n, sigma=sigma, scale=1000.0)
    assert vals.mean() == pytest.approx(want, abs=4 * vals.std() / np.sqrt(vals.size))
    # the V-statistic's 1/N term matters here: without it the expectation is off by many standard errors
    assert abs(want - 1000.0 / n * (1 - st.rbf_self_mean(cov, sigma)) - vals.mean()) > 6 * vals.std() / np.sqrt(vals.size)


def test_study_fid_truth_equals_the_product_value():
    from tasks import fid

    for d, n in ((6, 40), (40, 12)):  # N > d (covariance route) and N ≤ d (Gram route)
        sc = st.gaussian_scenario(d, "different", 0)
        x = st._draw(np.random.default_rng(1), sc["mu_g"], sc["root_g"], n)
        ref = {"mu": sc["mu_r"], "sigma": sc["s_r"], "sqrt_sigma": sc["root_r"]}
        assert st.fid_against_standard_normal(x) == pytest.approx(fid.fid_from_features(x, ref, n_boot=0).value, rel=1e-8)
        assert sc["fid"] == pytest.approx(fid.frechet_distance(sc["mu_g"], sc["s_g"], sc["mu_r"], sc["s_r"]), rel=1e-9)


def test_fid_inf_interval_is_not_reported_at_n_le_d_and_its_row_says_so():
    from tasks import fid

    rng = np.random.default_rng(2)
    res = fid.fid_infinity(rng.standard_normal((20, 24)), rng.standard_normal((60, 24)), rng=0, n_boot=20)
    assert res.ci_low is None and res.ci_high is None and res.value == res.value
    assert "N = 20 ≤ d = 24" in res.details["ci_refused"]
    ok = fid.fid_infinity(rng.standard_normal((30, 24)) + 0.1, rng.standard_normal((60, 24)), rng=0, n_boot=20)
    assert ok.ci_low is not None and "ci_refused" not in ok.details  # N > d: reported
    (row,) = st.coverage_study(dims=(24,), ns=(20,), kinds=("different",), reps=2, n_boot=20, families=("fid_inf",))
    assert row.reps == 0 and row.passed and "not reported" in row.note and row.to_dict()["coverage"] is None


def test_dice_rows_use_the_task_interval(monkeypatch):
    from tasks import segmentation as seg

    real = seg.bootstrap_mean_ci

    def narrow(v, rng, **k):  # a plain-percentile-like interval shrunk to a third: must fail its row
        m, lo, hi = real(v, rng, **k)
        return m, m - (m - lo) / 3, m + (hi - m) / 3

    rows = st.coverage_study(families=("dice",), reps=60, dice_ns=(20,))
    assert len(rows) == 2 and all(r.passed for r in rows) and all(r.target.startswith("population mean Dice") for r in rows)
    monkeypatch.setattr(seg, "bootstrap_mean_ci", narrow)
    rows = st.coverage_study(families=("dice",), reps=60, dice_ns=(20,))
    assert not any(r.passed for r in rows)


def test_help_states_the_grid_rows_tolerance_and_exit_codes():
    out = CliRunner().invoke(app, ["validate-intervals", "--help"], env={"COLUMNS": "200"}).stdout
    for needle in ("--full", "512,2048", "Exit codes", "3 at least one row fails", "tolerance", "not reported when N ≤ d"):
        assert needle in out, needle


def test_full_grid_dims_pick_a_part_of_it(monkeypatch):
    from tasks import interval_study

    seen = {}

    def fake(**kw):
        seen.update(kw)
        return []

    monkeypatch.setattr(interval_study, "coverage_study", fake)
    for args, dims in ((["--full"], (8, 64, 512, 2048)), (["--full", "--dims", "8,64"], (8, 64)),
                       (["--full", "--dims", "2048"], (2048,)), ([], (8, 64))):
        seen.clear()
        res = CliRunner().invoke(app, ["validate-intervals", *args, "--json"])
        assert res.exit_code == 0, res.output
        assert tuple(seen["dims"]) == dims
        assert (seen.get("reps_for") is interval_study.full_grid_reps) == ("--full" in args)
