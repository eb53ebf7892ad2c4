"""Which distance predicts downstream Dice: tau-b over replicates vs scipy, the table on a constructed store
(a distance that ranks like the Dice, one that ranks against it, a substitute space, the data-source match),
the interval by hand (paired bootstrap over test images), too few generators, the page and the command."""

from __future__ import annotations

import csv
import json
from math import factorial

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness.store import Store
from human_eval import trust

DICE = {"real": 0.85, "cut": 0.70, "cyclegan": 0.60, "labelmap": 0.30}
FD = {"real": 1.0, "cut": 5.0, "cyclegan": 8.0, "labelmap": 20.0}  # lower is better: ranks exactly like the Dice
PRECISION = {"real": 0.1, "cut": 0.2, "cyclegan": 0.3, "labelmap": 0.4}  # higher is better: exactly against it
MMD = {"real": 0.1, "cut": 0.5, "cyclegan": 0.4, "labelmap": 0.9}  # one swap (cut/cyclegan)


def test_tau_b_rows_equals_scipy_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (50, 6)).astype(float)
    y = rng.integers(0, 4, (50, 6)).astype(float)
    x[0] = 1.0  # a constant row: undefined
    got = trust.tau_b_rows(x, y)
    for b in range(50):
        want = sps.kendalltau(x[b], y[b]).statistic
        assert (np.isnan(got[b]) and np.isnan(want)) or got[b] == pytest.approx(want)


def _store(tmp_path, *, per_image: bool = False) -> Store:
    """4 generators with seg-utility Dice (CIs) on the phantom, three distances in two spaces, plus decoys: an
    anatomy-faithfulness mean_dice (must not be taken for seg-utility's), an FD on another data source, an SD-LoRA
    not-applicable Dice row."""
    store = Store(f"sqlite:///{tmp_path / 'u.db'}")
    rng = np.random.default_rng(5)
    for gen in DICE:
        rid = store.start_run(generator=gen, data_source="phantom", n=40, seed=0, feature_space="radiomics")
        store.finish_run(rid, [
            {"task": "fid", "metric": "FD_radiomics", "value": FD[gen], "ci_low": FD[gen] * 0.95,
             "ci_high": FD[gen] * 1.05, "higher_is_better": False, "feature_space": "radiomics"},
            {"task": "diversity", "metric": "precision", "value": PRECISION[gen], "ci_low": PRECISION[gen] - 0.01,
             "ci_high": PRECISION[gen] + 0.01, "higher_is_better": True, "feature_space": "radiomics"},
            # the reference set's own Vendi (a property of the reference, not of the generator): never ranked
            {"task": "diversity", "metric": "vendi_reference", "value": 9.0 + PRECISION[gen], "higher_is_better": True,
             "feature_space": "radiomics"}])
        rid = store.start_run(generator=gen, data_source="phantom", n=40, seed=0, feature_space="random-clip")
        store.finish_run(rid, [{"task": "cmmd", "metric": "MMD_random-clip", "value": MMD[gen], "higher_is_better": False,
                                "feature_space": "random-clip"}])
        rid = store.start_run(generator=gen, data_source="phantom", n=40, seed=0)
        arts = []
        if per_image:
            path = tmp_path / f"{gen}_per_image.csv"
            vals = np.clip(DICE[gen] + rng.normal(0, 0.05, 12), 0, 1)
            with path.open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["reference_index", "mean_dice", "dice_lv"])
                for i in rng.permutation(12):  # any order: rows are matched by reference index
                    w.writerow([i, f"{vals[i]:.4f}", f"{vals[i]:.4f}"])
            arts = [{"kind": "seg_utility_per_image", "path": str(path)}]
        store.finish_run(rid, [{"task": "seg-utility", "metric": "mean_dice", "value": DICE[gen],
                                "ci_low": DICE[gen] - 0.02, "ci_high": DICE[gen] + 0.02, "n": 12,
                                "higher_is_better": True}], arts)
        rid = store.start_run(generator=gen, data_source="phantom", n=40, seed=0)
        store.finish_run(rid, [{"task": "anatomy-faithfulness", "metric": "mean_dice", "value": 1 - DICE[gen],
                                "ci_low": 1 - DICE[gen] - 0.02, "ci_high": 1 - DICE[gen] + 0.02, "higher_is_better": True,
                                "details": {"per_image_mean_dice": [1 - DICE[gen]] * 3, "image_indices": [0, 1, 2]}}])
    # decoys: FD on another data source (would rank against the Dice), a not-applicable Dice
    rid = store.start_run(generator="cut", data_source="camus", n=40, seed=0, feature_space="radiomics")
    store.finish_run(rid, [{"task": "fid", "metric": "FD_radiomics", "value": 0.01, "higher_is_better": False,
                            "feature_space": "radiomics"}])
    rid = store.start_run(generator="sd-lora", data_source="phantom", n=40, seed=0, feature_space="radiomics")
    store.finish_run(rid, [{"task": "seg-utility", "metric": "mean_dice", "value": None, "higher_is_better": True},
                           {"task": "fid", "metric": "FD_radiomics", "value": 0.5, "higher_is_better": False,
                            "feature_space": "radiomics"}])
    return store


def test_utility_table_known_answers(tmp_path):
    store = _store(tmp_path)
    t = trust.store_utility_table(store, n_boot=300)
    seg = t[t["target"] == "seg-utility"].set_index("metric")
    assert set(seg.index) == {"FD_radiomics", "precision[radiomics]", "MMD_random-clip"}
    gens = sorted(DICE)
    dice = np.array([DICE[g] for g in gens])
    for metric, vals, sign in (("FD_radiomics", FD, -1), ("precision[radiomics]", PRECISION, 1),
                               ("MMD_random-clip", MMD, -1)):
        row = seg.loc[metric]
        want = sps.kendalltau(sign * np.array([vals[g] for g in gens]), dice, method="exact")
        assert row["kendall_tau"] == pytest.approx(want.statistic) and row["p"] == pytest.approx(want.pvalue)
        assert row["n_generators"] == 4 and row["min_p"] == pytest.approx(2 / factorial(4))
        assert row["baselines"] == "labelmap, real" and "sd" not in row["generators"].split(", ")
        assert row["p_method"] == "exact" and row["ci_low"] - 1e-9 <= row["kendall_tau"] <= row["ci_high"] + 1e-9
    assert seg.loc["FD_radiomics", "kendall_tau"] == pytest.approx(1.0)  # the camus FD (0.01) was not used
    assert seg.loc["FD_radiomics", "verdict"] == "predicts"
    assert seg.loc["precision[radiomics]", "kendall_tau"] == pytest.approx(-1.0)
    assert seg.loc["precision[radiomics]", "verdict"] == "inverts"
    assert seg.loc["FD_radiomics", "best_by_metric"] == seg.loc["FD_radiomics", "best_by_dice"] == "real"
    assert bool(seg.loc["MMD_random-clip", "substitute"]) and not bool(seg.loc["FD_radiomics", "substitute"])
    assert "stored Dice CI" in seg.loc["FD_radiomics", "uncertainty"]  # no per-image values on disk
    # anatomy-faithfulness's per-image values (in the details) are each generator's own images: not paired
    assert af_uncertainty(t).startswith("bootstrap over each run's images")
    # anatomy-faithfulness is its own target (its mean_dice, 1 - DICE, ranks against the FD)
    af = t[t["target"] == "anatomy-faithfulness"].set_index("metric")
    assert af.loc["FD_radiomics", "kendall_tau"] == pytest.approx(-1.0)
    line = trust.utility_headline(t)
    assert line.startswith("FD_radiomics ranks the generators by downstream Dice with τ = 1.00")
    assert "incl. the baselines labelmap, real" in line and "0.083" in line


def af_uncertainty(t: pd.DataFrame) -> str:
    return t.loc[t["target"] == "anatomy-faithfulness", "uncertainty"].iloc[0]


def test_utility_points_are_the_headline_distance_against_the_dice(tmp_path):
    store = _store(tmp_path)
    table = trust.store_utility_table(store, n_boot=50)
    pts = trust.utility_points(store.results_frame(), table)
    seg = pts[pts["target"] == "seg-utility"].set_index("source")
    assert set(seg["metric"]) == {"FD_radiomics"} and set(seg.index) == set(DICE)
    assert all(seg.at[g, "value"] == FD[g] and seg.at[g, "dice"] == DICE[g] for g in DICE)
    assert set(pts.loc[pts["target"] == "anatomy-faithfulness", "metric"]) == {"precision[radiomics]"}


def test_interval_by_hand_paired_bootstrap_over_test_images(tmp_path):
    store = _store(tmp_path, per_image=True)
    results = store.results_frame()
    dice, dist = trust.utility_inputs(results)
    per = trust.stored_per_image_dice(store, list(dice["run_id"]))
    assert len(per) == 4
    got = trust.utility_table(dice, dist[dist["metric"] == "MMD_random-clip"], rng=np.random.default_rng(7),
                              n_boot=200, per_image=per).iloc[0]
    assert got["uncertainty"].startswith("paired bootstrap over the 12 shared test images")
    # by hand: the same resampled test images for all four generators, scipy's tau per replicate
    rng = np.random.default_rng(7)
    table = {}
    for src, run in zip(dice["source"], dice["run_id"]):
        keys, vals = per[run]
        table[src] = vals[np.argsort(keys)]
    idx = rng.integers(0, 12, (200, 12))
    rng.standard_normal((200, 4))  # the distance draws (MMD has no stored CI: zero spread)
    mmd = -np.array([MMD[s] for s in dice["source"]])
    reps = np.array([sps.kendalltau(mmd, [table[s][i].mean() for s in dice["source"]]).statistic for i in idx])
    lo, hi = np.quantile(reps, [0.025, 0.975])
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((lo, hi))


def test_fewer_than_two_generators_say_so(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'one.db'}")
    rid = store.start_run(generator="real", data_source="phantom", n=10, seed=0, feature_space="radiomics")
    store.finish_run(rid, [{"task": "seg-utility", "metric": "mean_dice", "value": 0.8, "higher_is_better": True},
                           {"task": "fid", "metric": "FD_radiomics", "value": 1.0, "higher_is_better": False,
                            "feature_space": "radiomics"}])
    t = trust.store_utility_table(store, n_boot=50)
    assert (t["verdict"] == "n/a").all() and t["kendall_tau"].isna().all()
    assert trust.utility_headline(t).startswith("Fewer than 2 generators")
    assert trust.utility_headline(trust.store_utility_table(Store(f"sqlite:///{tmp_path / 'e.db'}"))).startswith("Fewer")
    page = trust.write_report(tmp_path / "rep", None, title="u", headline_text="h", utility=t).read_text()
    assert "Which distance predicts downstream Dice" in page and "Fewer than 2 generators" in page
    assert (tmp_path / "rep" / "utility_table.csv").is_file() and not (tmp_path / "rep" / "trust_table.csv").exists()


def test_page_and_command_without_a_study(tmp_path, monkeypatch, capsys):
    from harness.cli import run_cli

    _store(tmp_path)
    db = f"sqlite:///{tmp_path / 'u.db'}"
    assert run_cli(["human", "agreement", "--utility", "--db", db, "--out", str(tmp_path / "out"), "--n-boot", "100"]) == 0
    page = (tmp_path / "out" / "trust.html").read_text()
    assert "Which distance predicts downstream Dice" in page and "data:image/png;base64," in page
    assert "FD_radiomics ranks the generators by downstream Dice with τ = 1.00" in page
    assert "one point per generator" in page and page.count("data:image/png;base64,") == 2
    csv_t = pd.read_csv(tmp_path / "out" / "utility_table.csv")
    assert set(csv_t["target"]) == {"seg-utility", "anatomy-faithfulness"} and len(csv_t) == 6
    capsys.readouterr()
    assert run_cli(["human", "agreement", "--utility", "--db", db, "--json", "--n-boot", "50"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["utility"]) == 6 and payload["headline"][0].startswith("FD_radiomics ranks")
    for argv, needles in ((["human", "agreement", "--db", db, "--out", str(tmp_path / "o2")], ("--study", "--utility")),
                          (["human", "agreement", "--utility", "--data", "nowhere", "--db", db, "--out",
                            str(tmp_path / "o2")], ("nowhere", "phantom"))):
        capsys.readouterr()
        assert run_cli(argv) == 2
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and all(n in lines[0] for n in needles), lines
        assert not (tmp_path / "o2").exists()


def test_each_checkpoint_is_a_point_and_distances_come_from_the_same_checkpoint(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'ck.db'}")
    for ck, dice, fd in (("a" * 64, 0.7, 2.0), ("b" * 64, 0.5, 6.0), (None, 0.9, 1.0)):
        rid = store.start_run(generator="cyclegan" if ck else "real", checkpoint_hash=ck, data_source="phantom", n=10,
                              seed=0, feature_space="radiomics")
        store.finish_run(rid, [{"task": "seg-utility", "metric": "mean_dice", "value": dice, "higher_is_better": True},
                               {"task": "fid", "metric": "FD_radiomics", "value": fd, "higher_is_better": False,
                                "feature_space": "radiomics"}])
    dice, dist = trust.utility_inputs(store.results_frame())
    assert list(dice["source"]) == ["cyclegan@aaaaaaaa", "cyclegan@bbbbbbbb", "real"]
    row = trust.utility_table(dice, dist, rng=np.random.default_rng(0), n_boot=50).iloc[0]
    assert row["n_generators"] == 3 and row["kendall_tau"] == pytest.approx(1.0) and row["baselines"] == "real"
    assert row["min_p"] == pytest.approx(1 / 3) and row["p"] == pytest.approx(1 / 3)
    assert "no ranking of them can be significant" in trust.utility_headline(trust.utility_table(
        dice, dist, rng=np.random.default_rng(0), n_boot=50))


def test_study_page_has_both_sections(tmp_path, capsys):
    from harness.cli import run_cli
    from human_eval.db import import_study
    from human_eval.examples.make_study import write_study
    from human_eval.schema import read_study

    store = _store(tmp_path)
    write_study(tmp_path / "study")
    import_study(store, read_study(tmp_path / "study" / "ratings.csv", tmp_path / "study" / "participants.csv"), "example")
    assert run_cli(["human", "agreement", "--study", "example", "--db", f"sqlite:///{tmp_path / 'u.db'}", "--out",
                    str(tmp_path / "out"), "--no-spread", "--no-faults", "--n-boot", "50"]) == 0
    page = (tmp_path / "out" / "trust.html").read_text()
    assert "Which metric to trust" in page and "FD_radiomics ranks the generators by downstream Dice" in page
    assert {"trust_table.csv", "utility_table.csv"} <= {p.name for p in (tmp_path / "out").iterdir()}
    assert run_cli(["human", "agreement", "--study", "example", "--db", f"sqlite:///{tmp_path / 'u.db'}", "--out",
                    str(tmp_path / "o2"), "--no-spread", "--no-faults", "--n-boot", "50", "--no-utility"]) == 0
    assert not (tmp_path / "o2" / "utility_table.csv").exists()
    assert "downstream Dice" not in (tmp_path / "o2" / "trust.html").read_text()
