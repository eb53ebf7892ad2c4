"""Metric <-> human agreement against scipy and the paper's headline (FID ranks CycleGAN first, humans SD)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from human_eval.agreement import generator_ranking, image_level
from human_eval.examples import make_example_study


def test_image_level_matches_scipy():
    r, _ = make_example_study(0)
    rng = np.random.default_rng(0)
    imgs = r.groupby("image_id").rating.mean()
    m = pd.DataFrame({"image_id": imgs.index, "score": imgs.to_numpy() + rng.normal(0, 1, len(imgs))})
    out = image_level(r, m).iloc[0]
    assert out["spearman_rho"] == pytest.approx(sps.spearmanr(m.score, imgs.to_numpy()).statistic)
    assert out["kendall_tau"] == pytest.approx(sps.kendalltau(m.score, imgs.to_numpy()).statistic)
    assert out["spearman_rho"] > 0.3


def test_generator_ranking_paper_headline():
    r, _ = make_example_study(0)
    fid = pd.DataFrame({"source": ["cyclegan", "cut", "sd"], "metric": "fid", "value": [75.13, 146.99, 168.59],
                        "higher_is_better": False})
    summary, pairs = generator_ranking(fid, r)
    s = summary.iloc[0]
    assert s["best_by_metric"] == "cyclegan" and s["best_by_humans"] == "sd"
    # humans: sd > cyclegan > cut; FID: cyclegan > cut > sd -> concordant pairs 1 (cyclegan>cut), discordant 2
    assert s["kendall_tau"] == pytest.approx((1 - 2) / 3)
    assert pairs["agree"].sum() == 1
