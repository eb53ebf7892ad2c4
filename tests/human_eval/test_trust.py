"""Which metric to trust: Kendall's tau with a rater-bootstrap CI (vs scipy on a constructed ranking), the
cross-space table on the example study with results in two spaces, small-N spread, fault response, the page."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness.store import Store
from human_eval import trust
from human_eval.agreement import generator_ranking_ci


def _ratings():
    """4 sources, 6 raters; humans prefer d > c > b > a on average, with rater noise."""
    rng = np.random.default_rng(0)
    base = {"a": 2.0, "b": 2.6, "c": 3.1, "d": 3.9}
    rows = []
    for p in range(6):
        for src, mu in base.items():
            for i in range(5):
                rows.append({"participant_id": f"p{p}", "image_id": f"{src}{p}{i}", "source": src,
                             "rating": int(np.clip(round(mu + rng.normal(0, 1.2)), 1, 5))})
    return pd.DataFrame(rows)


def test_tau_and_rater_bootstrap_ci_against_scipy():
    ratings = _ratings()
    # metric: lower is better, ranks d best then b, c, a (one swap against the humans)
    values = pd.DataFrame({"source": list("abcd"), "metric": "FD_x", "value": [9.0, 5.0, 6.0, 1.0],
                           "higher_is_better": False})
    res = generator_ranking_ci(values, ratings, rng=np.random.default_rng(1), n_boot=300, exclude=())
    row = res.iloc[0]
    human = ratings.groupby("source")["rating"].mean().reindex(list("abcd"))
    want = sps.kendalltau(-values["value"].to_numpy(), human.to_numpy())
    assert row["kendall_tau"] == pytest.approx(want.statistic) and row["p"] == pytest.approx(want.pvalue)
    # the interval by hand: resample raters, recompute the source means, scipy's tau, percentiles
    rng = np.random.default_rng(1)
    raters = sorted(ratings["participant_id"].unique())
    idx = rng.integers(0, len(raters), (300, len(raters)))
    reps = []
    for draw in idx:
        r = pd.concat([ratings[ratings["participant_id"] == raters[i]] for i in draw])
        m = r.groupby("source")["rating"].mean().reindex(list("abcd"))
        reps.append(sps.kendalltau(-values["value"].to_numpy(), m.to_numpy()).statistic)
    reps = np.array(reps)
    reps = reps[np.isfinite(reps)]
    lo, hi = np.percentile(reps, [2.5, 97.5])
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi))
    assert row["n_raters"] == 6 and row["n_boot_used"] == reps.size and row["best_by_metric"] == "d"


def test_metric_family():
    assert trust.metric_family("FID", "inception") == "FD"
    assert trust.metric_family("KID", "inception") == "KD"
    assert trust.metric_family("CMMD", "clip") == "MMD"
    assert trust.metric_family("FD_dinov2", "dinov2") == "FD"
    assert trust.metric_family("FD_random-clip_rel", "random-clip") == "FD_rel"
    assert trust.metric_family("MMD_radiomics", "radiomics") == "MMD"
    assert trust.metric_family("precision[dinov2]", "dinov2") == "precision"


@pytest.fixture
def example_store(tmp_path):
    """The synthetic example study plus stored results for its generators in two spaces."""
    from human_eval.db import import_study
    from human_eval.examples.make_study import write_study
    from human_eval.schema import read_study

    write_study(tmp_path / "study")
    store = Store()
    tables = read_study(tmp_path / "study" / "ratings.csv", tmp_path / "study" / "participants.csv")
    import_study(store, tables, "example")
    # radiomics FD ranks like the paper's FID (CycleGAN first), random-clip MMD like the clinicians (SD first)
    values = {"radiomics": {"FD_radiomics": {"cyclegan": 1.0, "cut": 2.0, "sd-lora": 3.0}},
              "random-clip": {"MMD_random-clip": {"sd-lora": 0.1, "cut": 0.4, "cyclegan": 0.5}}}
    for space, metrics in values.items():
        for metric, per_gen in metrics.items():
            for gen, v in per_gen.items():
                rid = store.start_run(generator=gen, data_source="phantom", n=10, seed=0, feature_space=space)
                store.finish_run(rid, [{"task": "fid", "metric": metric, "value": v, "higher_is_better": False,
                                        "feature_space": space}])
    # diversity's MS-SSIM is stored in the "pixels" space, which is no feature extractor (the report must not
    # try to load one for it)
    # ... and the reference set's own values (same for every generator) and Dice rows (no space) are not ranked
    rid = store.start_run(generator="cut", data_source="phantom", n=10, seed=0, feature_space="radiomics")
    store.finish_run(rid, [{"task": "diversity", "metric": "ms_ssim_intra", "value": 0.3, "higher_is_better": False,
                            "feature_space": "pixels"},
                           {"task": "diversity", "metric": "vendi_reference", "value": 9.0, "higher_is_better": True,
                            "feature_space": "radiomics"},
                           {"task": "seg-utility", "metric": "mean_dice", "value": 0.7, "higher_is_better": True}])
    return store, tables


def test_cross_space_table_on_the_example_study(example_store):
    store, tables = example_store
    t = trust.cross_space_table(store, tables, rng=np.random.default_rng(0), n_boot=200)
    pixels = t[t["space"] == "pixels"]  # one generator only: listed, no ranking
    assert list(pixels["metric"]) == ["ms_ssim_intra[pixels]"] and list(pixels["verdict"]) == ["n/a"]
    full = t
    t = t[t["space"] != "pixels"].reset_index(drop=True)
    assert list(t["metric"]) == ["FD_radiomics", "MMD_random-clip"]
    assert list(t["space"]) == ["radiomics", "random-clip"] and list(t["substitute"]) == [False, True]
    human = tables.ratings.groupby("source")["rating"].mean()
    for _, row in t.iterrows():
        vals = {"FD_radiomics": {"cyclegan": 1.0, "cut": 2.0, "sd": 3.0},
                "MMD_random-clip": {"sd": 0.1, "cut": 0.4, "cyclegan": 0.5}}[row["metric"]]
        srcs = sorted(vals)
        want = sps.kendalltau([-vals[s] for s in srcs], human.reindex(srcs).to_numpy()).statistic
        assert row["kendall_tau"] == pytest.approx(want)
        assert row["ci_low"] <= row["kendall_tau"] <= row["ci_high"] and row["n_raters"] == 17
    line = trust.headline(t)
    assert "MMD_random-clip (substitute space)" in line and "τ =" in line
    pd.testing.assert_frame_equal(trust.agreement_table(store, "example", n_boot=200), full)


def test_small_n_spread_and_summary():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((300, 4))
    gen = {"near": rng.standard_normal((200, 4)) + 0.1, "far": rng.standard_normal((200, 4)) + 2.0}
    long = trust.small_n_spread(gen, ref, rng=np.random.default_rng(1), sizes=(20, 50, 200, 400), draws=3,
                                families=("FD", "MMD"))
    assert set(long["n"]) == {20, 50, 200} and len(long[(long["n"] == 200)]) == 2 * 2  # one draw at the full size
    one = long[(long["family"] == "FD") & (long["source"] == "far") & (long["n"] == 200)]["value"].iloc[0]
    from tasks.fid import fid_from_features

    assert one == pytest.approx(fid_from_features(gen["far"], ref, n_boot=0).value)
    summ = trust.spread_summary(long)
    assert set(summ["family"]) == {"FD", "MMD"} and (summ["ranking_stability"] == 1.0).all()
    assert (summ["stable_n"] == 20).all()


def test_fault_response_and_report(tmp_path, example_store):
    from tasks.validation import thumbnails

    f = trust.fault_response("radiomics", n=24, size=48, blur=(1.0, 3.0), speckle=(2.0, 4.0), families=("FD",),
                             extract=lambda ims: thumbnails(ims, 8))
    assert set(f["fault"]) == {"blur", "speckle"} and list(f["strength"][f["fault"] == "blur"]) == [0.0, 1.0, 3.0]
    for _, g in f.groupby("fault"):
        v = g["value"].to_numpy()
        assert g["monotone"].iloc[0] == bool(np.all(np.diff(v) > 0))
    store, tables = example_store
    table = trust.cross_space_table(store, tables, rng=np.random.default_rng(0), n_boot=50)
    full = trust.trust_table(table, faults=f)
    assert full.loc[full["space"] == "radiomics", "monotone_blur"].notna().all()
    page = trust.write_report(tmp_path / "rep", full, title="t <x>", headline_text=trust.headline(full), faults=f)
    text = page.read_text()
    assert "t &lt;x&gt;" in text and "data:image/png;base64," in text and "FD_radiomics" in text
    assert (tmp_path / "rep" / "trust_table.csv").is_file()


def test_command_writes_the_cross_space_page(tmp_path, example_store):
    from typer.testing import CliRunner

    from harness.cli import app

    res = CliRunner().invoke(app, ["human", "agreement", "--study", "example", "--out", str(tmp_path / "out"),
                                   "--no-spread", "--no-faults", "--n-boot", "100"])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "out" / "trust.html").read_text()
    assert "Which metric to trust" in page and "MMD_random-clip" in page
    # the distance-vs-Dice section is on the page; this store has no Dice, and the section says so
    assert "Which distance predicts downstream Dice" in page and "Fewer than 2 generators" in page
    assert (tmp_path / "out" / "utility_table.csv").is_file()
    bad = CliRunner().invoke(app, ["human", "agreement", "--study", "example", "--out", str(tmp_path / "o2"),
                                   "--no-spread", "--spaces", "radiomcs"])
    assert bad.exit_code != 0 and "radiomics" in str(bad.exception)
