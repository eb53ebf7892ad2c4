"""human_eval.stats against scipy / pingouin / statsmodels / krippendorff and closed forms."""

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from scipy import stats as sps

from human_eval import stats as S
from human_eval.examples import make_example_study


@pytest.fixture(scope="module")
def study():
    r, p = make_example_study(seed=0)
    return r, p


def small(seed=1, n_p=8, per=6, sources=("real", "a", "b")):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_p):
        for s_i, s in enumerate(sources):
            for j in range(per):
                rows.append((f"P{i}", f"{s}_{rng.integers(0, 15)}_{i}_{j}", s,
                             int(np.clip(np.round(3 + 0.4 * s_i + rng.normal(0, 1.2)), 1, 5))))
    return pd.DataFrame(rows, columns=["participant_id", "image_id", "source", "rating"])


def test_descriptives(study):
    r, _ = study
    d = S.descriptives(r).set_index("source")
    for s, g in r.groupby("source")["rating"]:
        assert d.loc[s, "mean"] == pytest.approx(g.mean())
        assert d.loc[s, "sd"] == pytest.approx(g.std(ddof=1))
        assert d.loc[s, "median"] == g.median() and d.loc[s, "n"] == len(g)


def test_mwu_closed_form_with_ties():
    # x = [1, 2, 2], y = [2, 3]: pairs x>y: 0; ties: (2,2)x2 -> U1 = 1.0; U2 = 6 - 1 = 5
    df = pd.DataFrame({"source": ["a"] * 3 + ["real"] * 2, "rating": [1, 2, 2, 2, 3]})
    row = S.mann_whitney_vs_reference(df, n_perm=0).iloc[0]
    assert row["U1"] == 1.0 and row["U"] == 1.0
    # tie-corrected variance: n1 n2/12 * ((N+1) - sum(t^3-t)/(N(N-1))), ties: value 2 three times
    var = 3 * 2 / 12 * (6 - (27 - 3) / 20)
    assert row["Z"] == pytest.approx((1.0 - 3.0) / np.sqrt(var))
    assert row["r"] == pytest.approx(abs(row["Z"]) / np.sqrt(5))


def test_mwu_matches_scipy(study):
    r, _ = study
    res = S.mann_whitney_vs_reference(r, n_perm=2000, seed=0).set_index("source")
    y = r.loc[r.source == "real", "rating"].to_numpy(float)
    for s in ("cut", "cyclegan", "sd"):
        x = r.loc[r.source == s, "rating"].to_numpy(float)
        ref = sps.mannwhitneyu(x, y, method="asymptotic", use_continuity=False)
        assert res.loc[s, "U1"] == ref.statistic
        assert res.loc[s, "U"] == min(ref.statistic, x.size * y.size - ref.statistic)
        assert res.loc[s, "p"] == pytest.approx(ref.pvalue, rel=1e-9)
        assert abs(res.loc[s, "p_perm"] - ref.pvalue) < 0.01
    # the paper's Table 2, reproduced by the example study (U exact, Z/r/p to the printed digits)
    assert res.loc["cyclegan", "U"] == 12497 and res.loc["cut", "U"] == 11340.5 and res.loc["sd", "U"] == 10166
    assert [round(res.loc[s, "Z"], 2) for s in ("cyclegan", "cut", "sd")] == [-2.22, -3.54, -4.91]
    assert [round(res.loc[s, "r"], 2) for s in ("cyclegan", "cut", "sd")] == [0.12, 0.19, 0.27]
    assert round(res.loc["cyclegan", "p"], 3) == 0.026 and round(res.loc["cyclegan", "p_exact"], 3) == 0.031


@pytest.mark.parametrize("n1,n2,shift", [(1, 2, 0.0), (5, 7, 0.3), (20, 13, 0.3), (40, 45, 0.6)])
def test_exact_p_matches_scipy(n1, n2, shift):
    rng = np.random.default_rng(n1)
    x = rng.integers(1, 6, n1).astype(float)
    y = rng.integers(1, 6, n2) + shift
    ref = sps.mannwhitneyu(x, y, method="exact")
    assert S.mwu_exact_p(ref.statistic, n1, n2) == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


def test_permutation_p_matches_scipy_exact_enumeration():
    x, y = np.array([1, 2, 2, 3, 5.0]), np.array([2, 3, 4, 4, 5, 5.0])
    rk = sps.rankdata(np.r_[x, y])
    c = x.size * (x.size + y.size + 1) / 2
    ref = sps.permutation_test((rk[:5], rk[5:]), lambda a, b, axis: np.abs(a.sum(axis=axis) - c),
                               n_resamples=10**6, alternative="greater")  # all 462 splits: exact
    got = S._mwu_one(x, y, np.random.default_rng(0), 100_000)["p_perm"]
    assert got == pytest.approx(ref.pvalue, abs=0.005)
    assert S._mwu_one(x, y, np.random.default_rng(3), 5000)["p_perm"] == \
        S._mwu_one(x, y, np.random.default_rng(3), 5000)["p_perm"]  # seeded


def test_normality_matches_references(study):
    from statsmodels.stats.diagnostic import lilliefors

    r, _ = study
    n = S.normality(r).set_index(["source", "test"])
    x = r.loc[r.source == "cut", "rating"].to_numpy(float)
    assert n.loc[("cut", "kolmogorov_smirnov"), "statistic"] == pytest.approx(
        sps.kstest(x, "norm", args=(x.mean(), x.std(ddof=1))).statistic)
    assert n.loc[("cut", "lilliefors"), "statistic"] == pytest.approx(lilliefors(x, pvalmethod="table")[0])
    assert n.loc[("cut", "shapiro_wilk"), "statistic"] == pytest.approx(sps.shapiro(x).statistic)
    assert n.loc[("cut", "anderson_darling"), "statistic"] == pytest.approx(
        sps.anderson(x, "norm", method="interpolate").statistic)
    pgn = pg.normality(x)
    assert n.loc[("cut", "shapiro_wilk"), "p"] == pytest.approx(pgn["pval"].iloc[0])
    # paper Table 1 (KS, SW to 2 decimals)
    for s, ks, sw in (("cut", 0.23, 0.83), ("cyclegan", 0.23, 0.82), ("sd", 0.27, 0.79)):
        assert round(n.loc[(s, "kolmogorov_smirnov"), "statistic"], 2) == ks
        assert round(n.loc[(s, "shapiro_wilk"), "statistic"], 2) == sw


def test_friedman_matches_scipy_and_pingouin(study):
    r, _ = study
    f = S.friedman(r).iloc[0]
    m = r.groupby(["participant_id", "source"], as_index=False)["rating"].mean()
    wide = m.pivot(index="participant_id", columns="source", values="rating")
    ref = sps.friedmanchisquare(*[wide[c] for c in wide.columns])
    assert f["Q"] == pytest.approx(ref.statistic) and f["p"] == pytest.approx(ref.pvalue)
    pgf = pg.friedman(m, dv="rating", within="source", subject="participant_id")
    assert f["W"] == pytest.approx(pgf["W"].iloc[0]) and f["p"] == pytest.approx(pgf["p_unc"].iloc[0])


def test_wilcoxon_posthoc_matches_pingouin_and_scipy(study):
    df = small(n_p=12, per=1)  # one rating per cell: participant means are exact, no float ties issue
    w = S.wilcoxon_posthoc(df)
    ref = pg.pairwise_tests(df, dv="rating", within="source", subject="participant_id", parametric=False,
                            padjust="holm")
    for row in w.itertuples():
        hit = ref[((ref.A == row.A) & (ref.B == row.B)) | ((ref.A == row.B) & (ref.B == row.A))].iloc[0]
        assert row.p == pytest.approx(hit["p_unc"], rel=1e-9)
    from statsmodels.stats.multitest import multipletests
    assert np.allclose(w["p_holm"], multipletests(w["p"], method="holm")[1])
    r, _ = study
    w = S.wilcoxon_posthoc(r).set_index(["A", "B"])
    m = r.groupby(["participant_id", "source"])["rating"].sum().unstack()  # integer sums, 10 per cell
    ref = sps.wilcoxon((m["real"] - m["cut"]) / 10)
    assert w.loc[("real", "cut"), "p"] == pytest.approx(ref.pvalue, rel=1e-9)


def test_tost_matches_pingouin(study):
    r, _ = study
    t = S.tost_vs_reference(r, margin=0.5).set_index("source")
    m = r.groupby(["participant_id", "source"])["rating"].mean().unstack()
    for s in ("cut", "cyclegan", "sd"):
        ref = pg.tost(m[s], m["real"], bound=0.5, paired=True)
        assert t.loc[s, "p"] == pytest.approx(ref["pval"].iloc[0], rel=1e-9)


def test_agreement_matches_references(study):
    import krippendorff

    r, _ = study
    a = S.agreement(r).set_index(["source", "measure"])
    cnt = r.groupby("image_id").size()
    multi = r[r.image_id.isin(cnt[cnt >= 2].index)]
    rel = multi.pivot(index="participant_id", columns="image_id", values="rating").to_numpy(float)
    ref = krippendorff.alpha(reliability_data=rel, level_of_measurement="ordinal", value_domain=[1, 2, 3, 4, 5])
    assert a.loc[("all", "krippendorff_alpha_ordinal"), "value"] == pytest.approx(ref)
    two = r[r.image_id.isin(cnt[cnt == 2].index)].copy()
    two["k"] = two.groupby("image_id").cumcount()
    icc = pg.intraclass_corr(two, targets="image_id", raters="k", ratings="rating").set_index("Type")
    assert a.loc[("all", "ICC1"), "value"] == pytest.approx(icc.loc["ICC(1,1)", "ICC"])
    # one-way ICC closed form: (MSB - MSW) / (MSB + (k-1) MSW), k = 2
    g = two.groupby("image_id")["rating"]
    msb = 2 * ((g.mean() - two.rating.mean()) ** 2).sum() / (g.ngroups - 1)
    msw = ((two.rating - g.transform("mean")) ** 2).sum() / (len(two) - g.ngroups)
    assert a.loc[("all", "ICC1"), "value"] == pytest.approx((msb - msw) / (msb + msw))


def test_agreement_not_applicable_without_overlap():
    df = small()
    df["image_id"] = [f"u{i}" for i in range(len(df))]
    a = S.agreement(df)
    assert a["value"].isna().all() and a["note"].str.contains("not applicable").all()


def test_ordinal_model_and_bootstrap():
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    df = small(n_p=10)
    o = S.ordinal_model(df).set_index("term")
    X = pd.get_dummies(df.source)[["a", "b"]].astype(float)
    ref = OrderedModel(df.rating.to_numpy(), X, distr="logit").fit(method="bfgs", disp=False)
    assert o.loc["a", "coef"] == pytest.approx(ref.params["a"], abs=1e-4)
    assert o.loc["b", "coef"] == pytest.approx(ref.params["b"], abs=1e-4)
    b1 = S.cluster_bootstrap(df, n_boot=300, seed=5)
    b2 = S.cluster_bootstrap(df, n_boot=300, seed=5)
    pd.testing.assert_frame_equal(b1, b2)
    obs = df.groupby("source").rating.mean()
    row = b1.set_index("source").loc["b"]
    assert row["diff"] == pytest.approx(obs["b"] - obs["real"])
    assert row["ci_low"] <= row["diff"] <= row["ci_high"]


def test_artifact_flags_wilson_and_association(study):
    from statsmodels.stats.proportion import proportion_confint

    r, _ = study
    f = S.artifact_flags(r).set_index(["source", "flag"])
    d = r[r.source == "cut"]
    c = int(d.walls_not_visible.sum())
    lo, hi = proportion_confint(c, len(d), method="wilson")
    row = f.loc[("cut", "walls_not_visible")]
    assert row["count"] == c and row["ci_low"] == pytest.approx(lo) and row["ci_high"] == pytest.approx(hi)
    assert row["r_pb"] == pytest.approx(sps.pointbiserialr(d.walls_not_visible, d.rating).statistic)


def test_source_with_one_rating_does_not_crash():
    df = small(n_p=5)
    df = pd.concat([df, pd.DataFrame([{"participant_id": "P0", "image_id": "z", "source": "lonely", "rating": 3}])])
    assert "insufficient data (n=1)" in S.descriptives(df).set_index("source").loc["lonely", "note"]
    mw = S.mann_whitney_vs_reference(df, n_perm=100).set_index("source")
    assert mw.loc["lonely", "note"] == "insufficient data (n=1)"
    assert S.normality(df).query("source == 'lonely'")["note"].str.contains("insufficient").all()
    assert S.artifact_flags(df.assign(cropped_image=False)).query("source == 'lonely'")["note"].str.contains(
        "insufficient").all()
    # participants lacking a source are dropped from participant-level tests, with a note
    assert "dropped" in S.friedman(df).iloc[0]["note"]
    S.wilcoxon_posthoc(df), S.tost_vs_reference(df), S.cluster_bootstrap(df, n_boot=50), S.ordinal_model(df)
    S.participant_means(df)


def test_missing_ratings_are_left_out_everywhere_alike():
    from human_eval.examples import make_example_study

    r, _ = make_example_study(0)
    holed = r.copy()
    holed["rating"] = holed["rating"].astype(float)
    holed.loc[holed.index[5], "rating"] = np.nan
    dropped = r.drop(index=r.index[5])
    mw_h, mw_d = S.mann_whitney_vs_reference(holed, n_perm=50), S.mann_whitney_vs_reference(dropped, n_perm=50)
    assert mw_h["U"].tolist() == mw_d["U"].tolist() and mw_h["Z"].tolist() == pytest.approx(mw_d["Z"].tolist())
    d = S.descriptives(holed).set_index("source")
    assert d["n"].sum() == 679 and np.isfinite(d["mean"]).all()
    pm = S.participant_means(holed)
    assert pm["n"].sum() == 679
    assert S.friedman(holed).iloc[0]["Q"] == pytest.approx(S.friedman(dropped).iloc[0]["Q"])


def test_pairwise_tests_use_every_participant_who_rated_both_sources():
    r, _ = make_example_study(0)
    gone = r["participant_id"].unique()[0]
    unbalanced = r[~((r["participant_id"] == gone) & (r["source"] == "cut"))]  # one rater never saw CUT
    w = S.wilcoxon_posthoc(unbalanced).set_index(["A", "B"])
    assert w.loc[("real", "sd"), "n"] == 17 and w.loc[("real", "cut"), "n"] == 16
    assert "left out" in w.loc[("real", "cut"), "note"] and w.loc[("real", "sd"), "note"] == ""
    means = unbalanced.groupby(["participant_id", "source"])["rating"].mean().unstack()
    ref = sps.wilcoxon(np.round((means["real"] - means["sd"]).to_numpy(), 9))
    assert w.loc[("real", "sd"), "p"] == pytest.approx(ref.pvalue) and w.loc[("real", "sd"), "W"] == ref.statistic
    t = S.tost_vs_reference(unbalanced).set_index("source")
    assert t.loc["sd", "n"] == 17 and t.loc["cut", "n"] == 16
    x, y = means["sd"], means["real"]
    assert t.loc["sd", "p"] == pytest.approx(pg.tost(x, y, bound=0.5, paired=True)["pval"].iloc[0], rel=1e-6)
    assert S.friedman(unbalanced).iloc[0]["n"] == 16  # Friedman needs complete cases


def test_permutation_p_of_a_source_does_not_depend_on_the_other_sources():
    r, _ = make_example_study(0)
    full = S.mann_whitney_vs_reference(r, n_perm=300).set_index("source")
    alone = S.mann_whitney_vs_reference(r[r["source"].isin(["real", "cyclegan"])], n_perm=300).set_index("source")
    assert alone.loc["cyclegan", "p_perm"] == full.loc["cyclegan", "p_perm"]
    assert 0.005 < full.loc["cyclegan", "p_perm"] < 0.1  # not at the floor 1/(n_perm+1), so the stream matters
