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
                                             "TOST 90% CI (mean diff)", "Wilson (flag rate)"}
    assert all(r["passed"] for r in rows)
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
