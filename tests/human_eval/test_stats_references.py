"""Human-evaluation statistics against independent computations (issue 23: a wrong number must fail).

The fixture has strong participant × source effects, so that ignoring the participants (treating ratings as
independent) gives visibly different standard errors and intervals: a "clustered" bootstrap or a
"cluster-robust" model that ignores the clusters cannot pass.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from human_eval import stats as S


@pytest.fixture(scope="module")
def clustered():
    rng = np.random.default_rng(2323)
    rows = []
    effects = {"real": 3.0, "a": 2.6, "b": 3.6}
    for p in range(14):
        u = rng.normal(0, 0.4)
        for s, mu in effects.items():
            v = rng.normal(0, 0.9)  # participant × source: what clustering is about
            for j in range(12):
                rows.append((f"P{p:02d}", f"{s}-{p}-{j}", s, int(np.clip(np.rint(mu + u + v + rng.normal(0, 0.6)), 1, 5))))
    return pd.DataFrame(rows, columns=["participant_id", "image_id", "source", "rating"])


def _direct_cluster_bootstrap(df, source, n_boot, seed):
    """Resample participants with replacement, stack their rows, difference of pooled means (a plain loop)."""
    rng = np.random.default_rng(seed)
    pid = df["participant_id"].to_numpy()
    ids = np.unique(pid)
    rows_of = [np.flatnonzero(pid == p) for p in ids]
    rating, src = df["rating"].to_numpy(float), df["source"].to_numpy()
    out = []
    for _ in range(n_boot):
        idx = np.concatenate([rows_of[i] for i in rng.integers(0, len(ids), len(ids))])
        r, s = rating[idx], src[idx]
        out.append(r[s == source].mean() - r[s == "real"].mean())
    return np.array(out)


def _iid_bootstrap_sd(df, source, n_boot, seed):
    rng = np.random.default_rng(seed)
    x = df.loc[df.source == source, "rating"].to_numpy(float)
    y = df.loc[df.source == "real", "rating"].to_numpy(float)
    return np.std([rng.choice(x, x.size).mean() - rng.choice(y, y.size).mean() for _ in range(n_boot)], ddof=1)


def test_cluster_bootstrap_equals_direct_participant_resampling(clustered):
    cb = S.cluster_bootstrap(clustered, n_boot=2000, seed=1).set_index("source")
    for s in ("a", "b"):
        direct = _direct_cluster_bootstrap(clustered, s, 600, seed=7)
        iid_sd = _iid_bootstrap_sd(clustered, s, 600, seed=8)
        assert np.std(direct, ddof=1) > 1.6 * iid_sd  # the fixture: clusters matter
        row = cb.loc[s]
        obs = clustered.groupby("source")["rating"].mean()
        assert row["diff"] == pytest.approx(obs[s] - obs["real"], rel=1e-12)
        assert row["se"] == pytest.approx(np.std(direct, ddof=1), rel=0.12)
        width = np.quantile(direct, 0.975) - np.quantile(direct, 0.025)
        assert row["ci_high_percentile"] - row["ci_low_percentile"] == pytest.approx(width, rel=0.15)
        assert row["ci_low_percentile"] == pytest.approx(np.quantile(direct, 0.025), abs=0.1 * width)
        # reported CI: percentile distances from the estimate expanded for P = 14 participants
        c = np.sqrt(14 / 13) * sps.t.ppf(0.975, 13) / sps.norm.ppf(0.975)
        assert row["expansion"] == pytest.approx(c, rel=1e-12)
        assert row["ci_low"] == pytest.approx(row["diff"] - c * (row["diff"] - row["ci_low_percentile"]), rel=1e-12)
        assert row["ci_high"] == pytest.approx(row["diff"] + c * (row["ci_high_percentile"] - row["diff"]), rel=1e-12)


def test_ordinal_model_matches_statsmodels_cluster_robust(clustered):
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    om = S.ordinal_model(clustered).set_index("term")
    X = pd.get_dummies(clustered["source"])[["a", "b"]].astype(float)
    groups = pd.factorize(clustered["participant_id"])[0]
    model = OrderedModel(clustered["rating"].to_numpy(), X, distr="logit")
    robust = model.fit(method="bfgs", disp=False, maxiter=500, cov_type="cluster", cov_kwds={"groups": groups})
    naive = model.fit(method="bfgs", disp=False, maxiter=500)
    for term in ("a", "b"):
        assert om.loc[term, "coef"] == pytest.approx(robust.params[term], rel=1e-4)
        assert om.loc[term, "se"] == pytest.approx(robust.bse[term], rel=1e-3)
        assert om.loc[term, "p"] == pytest.approx(robust.pvalues[term], rel=1e-3, abs=1e-12)
        lo, hi = np.asarray(robust.conf_int().loc[term])
        assert (om.loc[term, "ci_low"], om.loc[term, "ci_high"]) == pytest.approx((lo, hi), rel=1e-3)
        assert om.loc[term, "odds_ratio"] == pytest.approx(np.exp(robust.params[term]), rel=1e-4)
        assert abs(om.loc[term, "se"] / naive.bse[term] - 1) > 0.3  # the fixture: clustering changes the SE


def test_mann_whitney_rated_higher_follows_the_ratings():
    rng = np.random.default_rng(4)
    rows = [("P0", f"i{s}{k}", s, int(v)) for s, mu in (("real", 3.0), ("hi", 4.2), ("lo", 1.8))
            for k, v in enumerate(np.clip(np.rint(rng.normal(mu, 0.8, 60)), 1, 5))]
    df = pd.DataFrame(rows, columns=["participant_id", "image_id", "source", "rating"])
    mw = S.mann_whitney_vs_reference(df, n_perm=0).set_index("source")
    assert mw.loc["hi", "higher"] == "hi" and mw.loc["lo", "higher"] == "real"
    ref = sps.mannwhitneyu(df.loc[df.source == "hi", "rating"], df.loc[df.source == "real", "rating"])
    assert mw.loc["hi", "U1"] == ref.statistic and ref.statistic > 60 * 60 / 2  # scipy's U₁ > n₁n₂/2: hi ranks higher


def test_tost_interval_and_ps_from_the_t_distribution(clustered):
    t = S.tost_vs_reference(clustered, margin=0.4).set_index("source")
    m = clustered.groupby(["participant_id", "source"])["rating"].mean().unstack()
    for s in ("a", "b"):
        d = (m[s] - m["real"]).to_numpy()
        res = sps.ttest_1samp(d, 0.0)
        ci = res.confidence_interval(0.90)
        assert (t.loc[s, "ci90_low"], t.loc[s, "ci90_high"]) == pytest.approx((ci.low, ci.high), rel=1e-10)
        p_lo = sps.ttest_1samp(d, -0.4, alternative="greater").pvalue
        p_hi = sps.ttest_1samp(d, 0.4, alternative="less").pvalue
        assert t.loc[s, "p"] == pytest.approx(max(p_lo, p_hi), rel=1e-10)
        assert t.loc[s, "equivalent"] == (max(p_lo, p_hi) < 0.05)
