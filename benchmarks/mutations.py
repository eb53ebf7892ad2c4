"""Targeted mutation check: does the test suite kill each plausible wrong number? (issue 23)

Each mutation is a named, exact source edit (``old`` → ``new``, which must occur exactly ``count`` times) that
gives a wrong statistic a careless change could introduce: KID × 1.3, a 50 % interval reported as 95 %, a
cluster bootstrap that ignores participants, ... For each one this script copies the source tree to a
temporary folder, applies the edit there (the working tree is never touched), runs only the tests that
should catch it, and reports **killed** (a test failed) or **SURVIVED**. Exit code 0 when every mutation is
killed, 1 otherwise::

    python benchmarks/mutations.py               # all mutations, ~10-15 min on 2 busy cores
    python benchmarks/mutations.py --list        # names and targets
    python benchmarks/mutations.py --only kid_x1.3,fid_ci_50 --baseline

``--baseline`` first runs every selected test file unmutated (a mutation "killed" by a test that already
fails proves nothing). Results are printed as a table and, with ``--json PATH``, written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPY = ("harness", "tasks", "human_eval", "leaderboard", "generators", "tests", "pyproject.toml")

FIDREF = "tests/tasks/test_fid_references.py"
HSREF = "tests/human_eval/test_stats_references.py"
READBACK = "tests/human_eval/test_report_readback.py"
CHARTS = "tests/leaderboard/test_chart_specs.py"
CALIB = "tests/tasks/test_color_shift_calibration.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    why: str
    count: int = 1


MUTATIONS = (
    # ---- KID (issue 23 list)
    Mutation("kid_x1.3", "tasks/fid.py", "    value = float(vals.mean())\n", "    value = float(vals.mean()) * 1.3\n",
             (f"{FIDREF}::test_kid_with_full_size_subsets_is_the_unbiased_mmd2_of_the_full_sets",),
             "KID × 1.3"),
    Mutation("kid_median", "tasks/fid.py", "    value = float(vals.mean())\n", "    value = float(np.median(vals))\n",
             (f"{FIDREF}::test_reported_kid_equals_torch_fidelity_on_the_same_subsets",),
             "KID as the median of the subset values"),
    Mutation("kid_with_replacement", "tasks/fid.py", "rng.choice(ng, m, replace=False)", "rng.choice(ng, m, replace=True)",
             (f"{FIDREF}::test_kid_with_full_size_subsets_is_the_unbiased_mmd2_of_the_full_sets",),
             "KID subsets drawn with replacement"),
    Mutation("kid_subset_halved", "tasks/fid.py", "        m = min(subset_size, ng, nr)\n",
             "        m = max(2, min(subset_size, ng, nr) // 2)\n",
             (f"{FIDREF}::test_kid_with_full_size_subsets_is_the_unbiased_mmd2_of_the_full_sets",),
             "KID subset size halved"),
    # ---- bootstrap interval levels (issue 23 list)
    Mutation("fid_ci_50", "tasks/fid.py", "        lo, hi, info = _interval(value, reps, ci, ci_method)\n",
             "        lo, hi, info = _interval(value, reps, 0.5, ci_method)\n",
             (f"{FIDREF}::test_fid_interval_is_a_95_percent_interval_of_the_bootstrap_spread",),
             "FID bootstrap interval at 50 % instead of 95 %"),
    Mutation("kid_ci_50", "tasks/fid.py", '    lo, hi, info = _interval(full, reps, ci, "percentile")',
             '    lo, hi, info = _interval(full, reps, 0.5, "percentile")',
             (f"{FIDREF}::test_kid_interval_is_a_95_percent_interval_of_an_independent_two_sample_bootstrap",),
             "KID bootstrap interval at 50 % instead of 95 %"),
    # ---- FID∞ standard error (issue 23 list)
    Mutation("fid_inf_se_x10", "tasks/fid_math.py", '        "se_a": float(np.sqrt(cov[0, 0])),',
             '        "se_a": 10 * float(np.sqrt(cov[0, 0])),',
             (f"{FIDREF}::test_fid_infinity_fit_and_standard_errors_equal_statsmodels_ols",), "FID∞ standard error × 10"),
    Mutation("fid_inf_se_swapped", "tasks/fid_math.py",
             '        "se_a": float(np.sqrt(cov[0, 0])),\n        "se_k": float(np.sqrt(cov[1, 1])),',
             '        "se_a": float(np.sqrt(cov[1, 1])),\n        "se_k": float(np.sqrt(cov[0, 0])),',
             (f"{FIDREF}::test_fid_infinity_fit_and_standard_errors_equal_statsmodels_ols",),
             "FID∞ standard error swapped with the slope's"),
    # ---- colour shift calibration (issue 23 list)
    Mutation("colour_wrong_tail", "tasks/color_shift.py", "    return float(np.quantile(ref_chroma, quantile) + margin)",
             "    return float(np.quantile(ref_chroma, 1 - quantile) + margin)", (CALIB,),
             "colour-shift threshold from the wrong tail"),
    Mutation("colour_ignores_quantile", "tasks/color_shift.py",
             "    return float(np.quantile(ref_chroma, quantile) + margin)",
             "    return float(np.quantile(ref_chroma, 0.995) + margin)", (CALIB,),
             "colour-shift threshold ignores its quantile"),
    # ---- human evaluation (issue 23 list)
    Mutation("mwu_higher_reversed", "human_eval/stats.py",
             'res["higher"] = s if res["mean_rank"] > res["mean_rank_ref"] else reference',
             'res["higher"] = reference if res["mean_rank"] > res["mean_rank_ref"] else s',
             (f"{HSREF}::test_mann_whitney_rated_higher_follows_the_ratings",), "Mann-Whitney 'rated higher' reversed"),
    Mutation("cluster_bootstrap_ignores_participants", "human_eval/stats.py",
             '    sums = df.pivot_table(index=subject, columns=between, values=dv, aggfunc="sum", fill_value=0)[order]\n'
             '    cnts = df.pivot_table(index=subject, columns=between, values=dv, aggfunc="count", fill_value=0)[order]',
             '    sums = df.pivot_table(index="image_id", columns=between, values=dv, aggfunc="sum", fill_value=0)[order]\n'
             '    cnts = df.pivot_table(index="image_id", columns=between, values=dv, aggfunc="count", fill_value=0)[order]',
             (f"{HSREF}::test_cluster_bootstrap_equals_direct_participant_resampling",),
             "'participant-clustered' bootstrap that resamples single ratings"),
    Mutation("ordinal_not_cluster_robust", "human_eval/stats.py",
             'cov_type="cluster", cov_kwds={"groups": groups})', 'cov_type="nonrobust")',
             (f"{HSREF}::test_ordinal_model_matches_statsmodels_cluster_robust",),
             "ordinal model without cluster-robust standard errors"),
    # ---- wrappers / shared core (issue 23: fid_from_features etc. only compared with fid_family)
    Mutation("fid_core_scaled", "tasks/fid.py", "        value, tr_sqrt = eng.fid(np.ones(n, dtype=np.int64))\n",
             "        value, tr_sqrt = eng.fid(np.ones(n, dtype=np.int64))\n        value *= 1.01\n",
             ("tests/tasks/test_fid.py::test_frechet_matches_cleanfid",),
             "FID of the shared core 1 % off (every wrapper agrees with fid_family)"),
    Mutation("fid_inf_points_wrong_size", "tasks/fid.py", "                    inv_n.append(1.0 / size)\n",
             "                    inv_n.append(1.0 / (size + 1))\n",
             (f"{FIDREF}::test_fid_infinity_fit_and_standard_errors_equal_statsmodels_ols",),
             "FID∞ points plotted at the wrong 1/N"),
    # ---- report and charts (issue 23 list)
    Mutation("report_holm_family_size", "human_eval/report.py", "Holm-corrected over all {len(w)} source pairs",
             "Holm-corrected over all {len(ref_rows)} source pairs", (READBACK,),
             "report states the wrong Holm family size"),
    Mutation("report_bootstrap_ci_twice_low", "human_eval/report.py",
             '[{r.ci_low:+.2f}, {r.ci_high:+.2f}]', '[{r.ci_low:+.2f}, {r.ci_low:+.2f}]', (READBACK,),
             "report prints the bootstrap CI's lower end twice"),
    Mutation("report_best_source_min", "human_eval/report.py", '    best = d["mean"].idxmax()', '    best = d["mean"].idxmin()',
             (READBACK,), "report names the least realistic source as the most realistic"),
    Mutation("chart_error_bar_from_value", "leaderboard/charts.py",
             '    err = alt.Chart(data).mark_rule(color="black").encode(y="metric:N", x="ci_low:Q", x2="ci_high:Q")',
             '    err = alt.Chart(data).mark_rule(color="black").encode(y="metric:N", x="value:Q", x2="ci_high:Q")',
             (CHARTS,), "metric chart's error bar drawn from the value"),
    Mutation("chart_fid_inf_line_slope", "leaderboard/charts.py", '"fid_n": [fit["a"], fit["a"] + fit["k"] * xmax]',
             '"fid_n": [fit["a"], fit["a"] + fit["k"]]', (CHARTS,), "FID∞ chart's fitted line has the wrong slope"),
    # ---- our own: the interval methods this issue introduced or relies on
    Mutation("kid_reference_fixed", "tasks/fid.py", "        ci: float = 0.95, resample_ref: bool = True,",
             "        ci: float = 0.95, resample_ref: bool = False,",
             (f"{FIDREF}::test_kid_interval_is_a_95_percent_interval_of_an_independent_two_sample_bootstrap",),
             "KID interval ignores the reference set's sampling noise"),
    Mutation("kid_no_subset_noise", "tasks/fid.py", "z * se_sub", "0.0 * se_sub",
             (f"{FIDREF}::test_kid_interval_adds_the_subset_noise",), "KID interval without the subset draws' noise",
             count=2),
    Mutation("fid_inf_no_model_error", "tasks/fid.py", " + model_err**2)", ")",
             ("tests/tasks/test_fid.py::test_fid_inf_interval_adds_fit_and_model_error_in_quadrature",),
             "FID∞ interval without the extrapolation's model error", count=2),
    Mutation("fid_ci_not_centred", "tasks/fid.py", "    lo, hi = (centred if method == \"centred\" else raw).tolist()",
             "    lo, hi = raw.tolist()", (f"{FIDREF}::test_fid_interval_is_centred_on_the_estimate",),
             "FID interval not centred (plain percentile, above the estimate)"),
    Mutation("cluster_no_small_sample_expansion", "human_eval/stats.py",
             "    expand = float(np.sqrt(P / (P - 1)) * sps.t.ppf(1 - a, P - 1) / sps.norm.ppf(1 - a))",
             "    expand = 1.0", (f"{HSREF}::test_cluster_bootstrap_equals_direct_participant_resampling",),
             "cluster bootstrap without the few-participants expansion"),
    Mutation("tost_normal_quantile", "human_eval/stats.py", "        h = sps.t.ppf(1 - alpha, n - 1) * se",
             "        h = sps.norm.ppf(1 - alpha) * se", (f"{HSREF}::test_tost_interval_and_ps_from_the_t_distribution",),
             "TOST interval with a normal instead of a t quantile"),
    Mutation("wilson_wrong_z", "tasks/color_shift.py", "    z = float(norm.ppf(0.5 + level / 2))",
             "    z = float(norm.ppf(level))", ("tests/tasks/test_color_shift.py::test_wilson_equals_statsmodels",),
             "Wilson interval with a one-sided z"),
    Mutation("flag_rates_normal_ci", "human_eval/stats.py", 'proportion_confint(c, n, alpha=0.05, method="wilson")',
             'proportion_confint(c, n, alpha=0.05, method="normal")',
             (f"{CHARTS}::test_flag_rates_and_diverging_bars_carry_the_statistics",),
             "artifact-flag rates with a Wald instead of a Wilson interval"),
    Mutation("study_kernel_truth", "tasks/interval_study.py", "    return float(e_m3 + 3.0 * e_mv)",
             "    return float(e_m3 + 2.0 * e_mv)",
             ("tests/test_validate_intervals.py::test_poly3_kernel_mean_matches_monte_carlo",),
             "the coverage study's KID truth is wrong"),
    # ---- session 4: the KID/CMMD jackknife floors, FID∞ at N ≤ d, the Dice small-sample correction, study truths
    Mutation("kid_no_jackknife_floor", "tasks/fid.py", "        down, up = max(full - lo, z * se_jack), max(hi - full, z * se_jack)",
             "        down, up = full - lo, hi - full",
             (f"{FIDREF}::test_kid_jackknife_se_equals_a_direct_delete_one_jackknife",),
             "KID interval without the jackknife floor (the bootstrap alone under-covers)"),
    Mutation("kid_jackknife_no_factor", "tasks/fid.py", "    var = (n - 1) / n * float(((t_g - t_g.mean()) ** 2).sum())",
             "    var = float(((t_g - t_g.mean()) ** 2).sum()) / n",
             (f"{FIDREF}::test_kid_jackknife_se_equals_a_direct_delete_one_jackknife",),
             "KID jackknife variance without its (n−1) factor"),
    Mutation("fid_inf_interval_at_n_le_d", "tasks/fid.py", "            refused = n <= d ",
             "            refused = n < d // 2 ",
             ("tests/test_validate_intervals.py::test_fid_inf_interval_is_not_reported_at_n_le_d_and_its_row_says_so",),
             "FID∞ interval reported where N ≤ d (the extrapolation is off by far more than any error bar)"),
    Mutation("cmmd_no_jackknife_floor", "tasks/cmmd.py",
             "        lo, hi = value - max(value - lo, z * se_jack), value + max(hi - value, z * se_jack)",
             "        lo, hi = lo, hi",
             ("tests/tasks/test_cmmd.py::test_interval_is_the_wider_of_centred_bootstrap_and_a_direct_delete_one_jackknife",),
             "CMMD interval without the jackknife floor"),
    Mutation("cmmd_jackknife_row_once", "tasks/cmmd.py", "(s_gg - 2.0 * r_g + diag)", "(s_gg - r_g + diag)",
             ("tests/tasks/test_cmmd.py::test_interval_is_the_wider_of_centred_bootstrap_and_a_direct_delete_one_jackknife",),
             "CMMD jackknife replicates remove the deleted sample's kernel row only once (K is symmetric: twice)"),
    Mutation("dice_no_small_sample_correction", "tasks/segmentation.py",
             "    expand = math.sqrt(n / (n - 1)) * float(sps.t.ppf(1 - a, n - 1) / sps.norm.ppf(1 - a))",
             "    expand = 1.0",
             ("tests/tasks/test_segmentation_metrics.py::test_bootstrap_ci_matches_scipy_percentile_bootstrap",),
             "mean-Dice interval without the small-sample correction (88 % coverage at 10 test images)"),
    Mutation("study_cmmd_self_kernel", "tasks/interval_study.py",
             "np.eye(cov.shape[0]) + 2.0 * cov / sigma**2)", "np.eye(cov.shape[0]) + cov / sigma**2)",
             ("tests/test_validate_intervals.py::test_rbf_closed_forms_match_monte_carlo",),
             "the coverage study's CMMD truth uses Var(x) instead of Var(x − x′)"),
    Mutation("study_cmmd_no_v_bias", "tasks/interval_study.py",
             "    return float(scale * (1.0 / n + (1.0 - 1.0 / n) * rbf_self_mean(cov_g, sigma) + k_rr",
             "    return float(scale * (rbf_self_mean(cov_g, sigma) + k_rr",
             ("tests/test_validate_intervals.py::test_cmmd_expectation_is_the_mean_of_the_reported_cmmd_over_generated_sets",),
             "the coverage study's CMMD target forgets the V-statistic's 1/N term"),
    Mutation("study_fid_truth_wrong", "tasks/interval_study.py",
             "    return float(mean @ mean + np.trace(m) + d - 2.0 * np.sqrt(lam).sum())",
             "    return float(np.trace(m) + d - 2.0 * np.sqrt(lam).sum())",
             ("tests/test_validate_intervals.py::test_study_fid_truth_equals_the_product_value",),
             "the coverage study's E[FID_N] truth drops the mean term"),
    Mutation("study_dice_truth_wrong", "tasks/interval_study.py", "        truth = a / (a + b)", "        truth = a / (a + b + 1)",
             ("tests/test_validate_intervals.py::test_dice_rows_use_the_task_interval",),
             "the coverage study's Dice truth is wrong"),
    Mutation("study_hides_fid_inf", "tasks/interval_study.py", "                if v.ci_low is None:",
             "                if True:",
             ("tests/test_validate_intervals.py::test_quick_study_passes_and_prints_every_interval",),
             "the coverage study silently skips FID∞ everywhere (every row 'not reported')"),
    Mutation("study_counts_misses", "tasks/interval_study.py",
             'n_boot=n_boot)\n            hits.append(v.ci_low <= truth <= v.ci_high)',
             'n_boot=n_boot)\n            hits.append(v.ci_low <= truth)',
             ("tests/test_validate_intervals.py::test_an_interval_entirely_below_the_truth_never_covers",),
             "the coverage study counts one-sided hits"),
)


def _copy_tree(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)


def _pytest(cwd: Path, tests: tuple[str, ...], timeout: int) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": str(cwd), "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header",
                               *tests], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, "timeout", time.perf_counter() - t0
    tail = (proc.stdout.strip().splitlines() or [""])[-1]
    return proc.returncode, tail, time.perf_counter() - t0


def run(mutations, *, baseline: bool, timeout: int) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory(prefix="echobench-mutants-") as tmp:
        base = Path(tmp) / "tree"
        _copy_tree(base)
        if baseline:
            files = tuple(sorted({t for m in mutations for t in m.tests}))
            rc, tail, secs = _pytest(base, files, timeout * 3)
            print(f"baseline ({len(files)} test targets): rc={rc} {tail} [{secs:.0f}s]", flush=True)
            if rc != 0:
                raise SystemExit(f"baseline fails (rc={rc}): fix the tests before judging mutations")
        for m in mutations:
            path = base / m.file
            original = path.read_text(encoding="utf-8")
            found = original.count(m.old)
            if found != m.count:
                results.append({"name": m.name, "why": m.why, "status": "STALE",
                                "detail": f"expected {m.count} occurrence(s) in {m.file}, found {found}", "seconds": 0.0})
                print(f"{m.name:40s} STALE    ({found} occurrences of the target)", flush=True)
                continue
            path.write_text(original.replace(m.old, m.new), encoding="utf-8")
            try:
                rc, tail, secs = _pytest(base, m.tests, timeout)
            finally:
                path.write_text(original, encoding="utf-8")
            status = "killed" if rc != 0 else "SURVIVED"
            results.append({"name": m.name, "why": m.why, "status": status, "detail": tail, "seconds": round(secs, 1),
                            "tests": list(m.tests)})
            print(f"{m.name:40s} {status:8s} {secs:5.0f}s  {tail}", flush=True)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated mutation names")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--baseline", action="store_true", help="first run the selected tests unmutated")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per test run")
    ap.add_argument("--json", type=Path, help="write the results here as JSON")
    args = ap.parse_args(argv)
    chosen = MUTATIONS
    if args.only:
        names = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = names - {m.name for m in MUTATIONS}
        if unknown:
            ap.error(f"unknown mutation(s): {', '.join(sorted(unknown))}")
        chosen = tuple(m for m in MUTATIONS if m.name in names)
    if args.list:
        for m in chosen:
            print(f"{m.name:40s} {m.file:24s} {m.why}")
        return 0
    results = run(chosen, baseline=args.baseline, timeout=args.timeout)
    killed = sum(r["status"] == "killed" for r in results)
    print(f"\nkilled {killed}/{len(results)} mutations ({killed / max(len(results), 1):.0%})")
    for r in results:
        if r["status"] != "killed":
            print(f"  {r['status']}: {r['name']} — {r['why']} ({r['detail']})")
    if args.json:
        args.json.write_text(json.dumps({"killed": killed, "total": len(results), "results": results}, indent=1))
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
