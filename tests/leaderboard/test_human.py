"""Human-evaluation shaping and agreement against scipy / closed forms; chart functions on synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from leaderboard import charts, data, human
from leaderboard import table as tbl


def _ratings():
    rng = np.random.default_rng(0)
    rows = []
    for p in range(6):
        for src, mu in (("real", 3.5), ("cyclegan", 2.5), ("sd", 4.0), ("labelmap", 1.5)):
            for i in range(5):
                rows.append({"participant_id": f"P{p}", "image_id": f"{src}-{p}-{i}", "source": src,
                             "rating": int(np.clip(round(rng.normal(mu, 1)), 1, 5)),
                             "unnatural_artifacts": bool(rng.random() < 0.2)})
    return pd.DataFrame(rows)


def test_diverging_frame_shares_and_centre():
    r = pd.DataFrame({"source": ["a"] * 4 + ["b"] * 2, "rating": [3, 3, 3, 3, 1, 5]})
    f = human.diverging_frame(r)
    assert np.allclose(f.groupby("source")["share"].sum(), 1.0)
    a3 = f[(f.source == "a") & (f.rating == 3)].iloc[0]
    assert (a3.start, a3.end) == (-0.5, 0.5)  # the neutral level straddles zero
    b = f[f.source == "b"].set_index("rating")
    assert b.loc[1, "start"] == -0.5 and b.loc[5, "end"] == 0.5


def _table(values: dict[str, dict[str, float]], higher: dict[str, bool]) -> tbl.Table:
    rows = []
    for metric, per_gen in values.items():
        for g, v in per_gen.items():
            rows.append(dict(run_id=f"{g}", generator=g, checkpoint="—", data="phantom", run_n=20, seed=0,
                             started_at=pd.Timestamp("2026-01-01", tz="UTC"), task="t", metric=metric, value=v,
                             ci_low=None, ci_high=None, n=20, feature_space="radiomics",
                             higher_is_better=higher[metric], substitute=False, baseline=None, stand_in=None,
                             imageset_path=None))
    frame = pd.DataFrame(rows)
    frame["order"] = range(len(frame))
    return tbl.main_table(frame)


def test_ranking_agreement_matches_scipy_kendall():
    ratings = _ratings()
    means = human.mean_ratings(ratings)
    gens = ["real", "cyclegan", "sd-lora", "labelmap"]  # sd-lora is rated as source "sd"
    perfect = {g: -means[data.source_name(g)] for g in gens}  # lower distance = higher rating
    noisy = {"real": 1.0, "cyclegan": 0.5, "sd-lora": 2.0, "labelmap": 3.0}
    table = _table({"FD_x": perfect, "FD_y": noisy}, {"FD_x": False, "FD_y": False})
    scores = human.generator_scores(table, ratings)
    assert set(scores.index) == set(gens)
    higher = {c.header: c.higher_is_better for c in table.columns}
    agree = human.ranking_agreement(scores, higher).set_index("metric")
    assert agree.loc["FD_x ↓ [radiomics]", "tau"] == 1.0
    y = scores["FD_y ↓ [radiomics]"]
    expected = sps.kendalltau(-y, scores["mean rating"])
    assert np.isclose(agree.loc["FD_y ↓ [radiomics]", "tau"], expected.statistic)
    assert np.isclose(agree.loc["FD_y ↓ [radiomics]", "p"], expected.pvalue)
    ranks = human.rankings(scores, higher)
    assert ranks.loc["sd-lora", "mean rating"] == 1 and ranks.loc["sd-lora", "FD_x ↓ [radiomics]"] == 1


def test_per_image_scatter_links_by_id_and_file_name():
    ratings = pd.DataFrame({"participant_id": ["p1", "p2", "p1"], "image_id": ["i1", "i1", "i2"],
                            "source": ["sd", "sd", "real"], "rating": [4, 2, 5]})
    images = pd.DataFrame({"image_id": ["i1", "i2"], "source": ["sd", "real"], "path": ["x/000001.png", None]})
    per = pd.DataFrame({"metric": ["chroma", "chroma"], "image": ["000001.png", "i2"], "value": [0.5, 0.1]})
    out = human.per_image_scatter(per, ratings, images).set_index("image_id")
    assert out.loc["i1", "mean_rating"] == 3.0 and out.loc["i1", "n_ratings"] == 2
    assert out.loc["i2", "value"] == 0.1


def test_charts_build_valid_vega_lite():
    ratings = _ratings()
    from human_eval import stats

    pm = stats.participant_means(ratings, pd.DataFrame({"participant_id": [f"P{p}" for p in range(6)],
                                                       "experience_years": [1, 2, 5, 8, 10, 20],
                                                       "weekly_readings": [1, 5, 10, 20, 50, 100]}))
    fit = data.fid_inf_fit({"points": [[0.1, 5.0], [0.05, 4.5], [0.02, 4.2]], "a": 4.0, "k": 10.0})
    built = [
        charts.diverging_bars(human.diverging_frame(ratings)),
        charts.flag_rates_chart(stats.artifact_flags(ratings).dropna(subset=["rate"])),
        charts.participant_chart(pm, "weekly_readings", log_x=True),
        charts.fid_inf_chart(fit, "FD_radiomics_inf"),
        charts.metric_bars(pd.DataFrame({"metric": ["recall"], "value": [0.5], "ci_low": [0.4], "ci_high": [0.6],
                                         "feature_space": ["radiomics"]}), "diversity"),
        charts.ranking_chart(pd.DataFrame({"FD": [1, 2], "mean rating": [2, 1]},
                                          index=pd.Index(["a", "b"], name="generator"))),
    ]
    for chart in built:
        spec = chart.to_dict()
        assert "$schema" in spec
