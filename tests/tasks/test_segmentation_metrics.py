"""MONAI Dice/HD95 as used by the segmentation tasks vs hand computations on constructed masks (empty prediction and
empty ground truth included: documented behaviour), the seed/image summary, the bootstrap CI vs scipy, and the
training configuration's validation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_erosion
from scipy.spatial.distance import cdist

from harness.errors import UsageError
from tasks import segmentation as seg


def _hand_dice(p: np.ndarray, g: np.ndarray) -> float:
    return 2.0 * np.logical_and(p, g).sum() / (p.sum() + g.sum())


def _hand_hd95(p: np.ndarray, g: np.ndarray) -> float:
    """Symmetric 95th-percentile surface distance: boundary pixels (mask minus its erosion), brute-force nearest
    boundary pixel of the other mask, max of the two directed 95th percentiles (numpy's linear percentile)."""
    def edge(m):
        return np.argwhere(m & ~binary_erosion(m, structure=np.ones((3, 3)), border_value=0))

    d = cdist(edge(p), edge(g))
    return max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95))


def _masks():
    """Class maps (N=5, 40x40), classes 1 (a square) and 2 (a disc), with every empty case."""
    g = np.zeros((5, 40, 40), np.uint8)
    p = np.zeros_like(g)
    yy, xx = np.mgrid[:40, :40]
    disc = (yy - 25) ** 2 + (xx - 25) ** 2 <= 36
    g[0, 5:15, 5:15] = 1
    p[0, 7:17, 6:16] = 1  # shifted square
    g[0][disc] = 2
    p[0][(yy - 26) ** 2 + (xx - 24) ** 2 <= 49] = 2  # larger, shifted disc
    g[1, 5:15, 5:15] = 1  # image 1: empty prediction for class 1; class 2 empty on both sides
    p[2, 5:15, 5:15] = 1  # image 2: empty ground truth, a false positive for class 1
    # image 3: everything empty on both sides
    g[4, 2:30, 2:8] = 1
    p[4, 2:30, 2:9] = 1
    p[4][disc] = 2  # image 4: class 2 predicted but absent from the ground truth
    return p, g


def test_dice_and_hd95_equal_hand_computation():
    p, g = _masks()
    dice, hd = seg.dice_hd95(p, g, 3)
    assert dice.shape == hd.shape == (5, 2)
    for i, c in [(0, 1), (0, 2), (4, 1)]:
        assert dice[i, c - 1] == pytest.approx(_hand_dice(p[i] == c, g[i] == c), abs=1e-6)
        assert hd[i, c - 1] == pytest.approx(_hand_hd95(p[i] == c, g[i] == c), abs=1e-6)
    assert 0.5 < dice[0, 0] < 1 and hd[0, 0] > 0


def test_empty_cases_documented_behaviour():
    p, g = _masks()
    dice, hd = seg.dice_hd95(p, g, 3)
    assert dice[1, 0] == 0.0 and np.isnan(hd[1, 0])  # structure present, prediction empty: Dice 0, HD95 undefined
    assert dice[1, 1] == 1.0 and np.isnan(hd[1, 1])  # both empty: Dice 1 (MONAI ignore_empty=False), HD95 NaN
    assert dice[2, 0] == 0.0 and np.isnan(hd[2, 0])  # empty ground truth, false positive: Dice 0
    assert (dice[3] == 1.0).all() and np.isnan(hd[3]).all()
    assert dice[4, 1] == 0.0


def test_summary_skips_absent_structures_and_reports_them():
    p, g = _masks()
    dice, hd = seg.dice_hd95(p, g, 3)
    present = np.stack([(g == c).any(axis=(1, 2)) for c in (1, 2)], axis=1)
    pred_present = np.stack([(p == c).any(axis=(1, 2)) for c in (1, 2)], axis=1)
    scores, overall, per_image, det = seg.summarise_dice(["a", "b"], dice[None], hd[None], present, pred_present[None],
                                                         np.random.default_rng(0), n_boot=200)
    a, b = scores
    assert a.n == 3 and a.dice == pytest.approx(dice[[0, 1, 4], 0].mean())  # images 2 and 3 lack class 1
    assert a.details["n_absent"] == 2 and a.details["n_absent_false_positive"] == 1  # image 2's false positive
    assert a.details["n_missed"] == 1 and a.details["hd95_n"] == 2  # image 1: empty prediction, no HD95
    assert a.hd95 == pytest.approx(np.nanmean(hd[[0, 4], 0]))
    assert b.n == 1 and b.dice == pytest.approx(dice[0, 1]) and b.details["n_absent_false_positive"] == 1
    # per image: the mean over the structures its ground truth has; images without any are left out
    assert per_image[0] == pytest.approx(dice[0].mean()) and per_image[1] == 0.0 and np.isnan(per_image[2])
    assert overall[0] == pytest.approx(np.nanmean(per_image)) and det["n_images"] == 3


def test_seed_spread():
    rng = np.random.default_rng(1)
    dice = rng.uniform(0.5, 1, (3, 20, 2))
    present = np.ones((20, 2), bool)
    scores, overall, _, det = seg.summarise_dice(["a", "b"], dice, np.ones_like(dice), present,
                                                 np.ones((3, 20, 2), bool), rng, n_boot=100)
    assert scores[0].details["dice_per_seed"] == pytest.approx(list(dice[:, :, 0].mean(axis=1)))
    assert scores[0].details["seed_sd"] == pytest.approx(dice[:, :, 0].mean(axis=1).std(ddof=1))
    assert det["mean_dice_per_seed"] == pytest.approx(list(dice.mean(axis=(1, 2))))
    assert scores[0].dice == pytest.approx(dice[:, :, 0].mean())


def test_bootstrap_ci_matches_scipy_percentile_bootstrap():
    from scipy.stats import bootstrap

    v = np.random.default_rng(3).beta(5, 2, 60)
    mean, lo, hi = seg.bootstrap_mean_ci(v, np.random.default_rng(0), n_boot=4000)
    from scipy.stats import norm, t

    ref = bootstrap((v,), np.mean, n_resamples=4000, method="percentile", random_state=np.random.default_rng(1))
    assert mean == pytest.approx(v.mean())
    expand = np.sqrt(60 / 59) * t.ppf(0.975, 59) / norm.ppf(0.975)  # the small-sample correction (1.03)
    assert lo == pytest.approx(v.mean() - expand * (v.mean() - ref.confidence_interval.low), abs=0.006)
    assert hi == pytest.approx(v.mean() + expand * (ref.confidence_interval.high - v.mean()), abs=0.006)
    # n = 8: the correction is large (1.29): a plain percentile interval fails this
    w = np.random.default_rng(4).beta(5, 2, 8)
    m8, lo8, hi8 = seg.bootstrap_mean_ci(w, np.random.default_rng(0), n_boot=4000)
    ref8 = bootstrap((w,), np.mean, n_resamples=4000, method="percentile", random_state=np.random.default_rng(1))
    e8 = np.sqrt(8 / 7) * t.ppf(0.975, 7) / norm.ppf(0.975)
    assert lo8 == pytest.approx(m8 - e8 * (m8 - ref8.confidence_interval.low), abs=0.01)
    assert hi8 == pytest.approx(m8 + e8 * (ref8.confidence_interval.high - m8), abs=0.01)
    assert np.isnan(seg.bootstrap_mean_ci(np.array([np.nan]), np.random.default_rng(0))[0])


@pytest.mark.parametrize("bad", [{"size": 100}, {"channels": "8"}, {"steps": 0}, {"lr": "fast"}, {"augment": "maybe"}])
def test_bad_training_options_are_usage_errors(bad):
    with pytest.raises(UsageError, match="seg-utility"):
        seg.TrainConfig.from_params({**seg.TRAIN_PARAMETERS, **bad}, "seg-utility")


def test_config_parses_cli_strings():
    cfg = seg.TrainConfig.from_params({"channels": "8,16,32", "augment": "false", "size": "64"}, "t")
    assert cfg.channels == (8, 16, 32) and cfg.augment is False and cfg.size == 64
    assert seg.parse_seeds(3, "t") == [0, 1, 2] and seg.parse_seeds("4,7", "t") == [4, 7]
    with pytest.raises(UsageError):
        seg.parse_seeds("1,1", "t")
