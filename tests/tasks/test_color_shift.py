"""Colour shift: Wilson CI vs statsmodels, W1 vs scipy, hue classes of the harness's tint, bad input, task."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from harness.data.faults import HUES, tint
from harness.errors import DataError
from tasks import color_shift as cs
from tasks.base import TaskContext


def _fan(size: int, value: int = 120, seed: int = 0) -> np.ndarray:
    """A gray fan-shaped sector with some texture on black."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    ang = np.degrees(np.arctan2(xx - size / 2, yy + 1))
    inside = (np.hypot(yy, xx - size / 2) < size * 0.95) & (np.abs(ang) < 40)
    img = np.clip(value + rng.normal(0, 25, (size, size)), 15, 255).astype(np.uint8)
    return np.where(inside, img, 0).astype(np.uint8)


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (6, 400), (199, 200)])
def test_wilson_equals_statsmodels(k, n):
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert cs.wilson_interval(k, n) == pytest.approx((lo, hi), abs=1e-12)


def test_tint_hues_fall_in_their_named_class():
    ramp = np.tile(np.linspace(20, 250, 60).astype(np.uint8), (4, 1))
    for name, hue in HUES.items():
        chroma, measured, _, _ = cs.image_measures(tint(ramp, hue))
        assert chroma > 5 and cs.hue_class(measured) == name
        assert abs((measured - cs.HUE_CENTRES[name] + 180) % 360 - 180) < 4
    assert cs.hue_class(float("nan")) == "none"


def test_gray_wasserstein_equals_scipy():
    from scipy.stats import wasserstein_distance

    a = [_fan(48, 100, s) for s in range(3)]
    b = [_fan(48, 140, s) for s in range(3, 7)]
    ma, mb = cs.measure_images(a), cs.measure_images(b)

    def pixels(images):  # every image weighted equally, as the per-image normalised histograms
        vals, w = [], []
        for im in images:
            from harness.features.radiomics import sector_mask

            v = im[sector_mask(im / 255.0)].astype(float)
            vals.append(v)
            w.append(np.full(v.size, 1.0 / v.size))
        return np.concatenate(vals), np.concatenate(w)

    (va, wa), (vb, wb) = pixels(a), pixels(b)
    assert cs.gray_wasserstein(ma.histograms, mb.histograms) == pytest.approx(wasserstein_distance(va, vb, wa, wb), rel=1e-9)


def test_grayscale_sets_have_zero_chroma_and_no_flags():
    ref = cs.measure_images([_fan(32, seed=s) for s in range(200)])
    gen = cs.measure_images([np.repeat(_fan(32, seed=s)[..., None], 3, axis=2) for s in range(300, 340)])
    assert ref.chroma.max() == 0 and gen.chroma.max() == 0
    res = cs.color_shift(gen, ref)
    assert res.value == 0.0 and res.threshold == pytest.approx(2.0) and res.hue_classes == {}
    assert res.ci_low == 0.0 and res.ci_high > 0


def test_tinted_images_flagged_and_mixed_sizes():
    ref = cs.measure_images([_fan(32, seed=s) for s in range(200)])
    gen_imgs = [_fan(32 + 8 * (s % 3), seed=s) for s in range(20)]
    gen_imgs[3], gen_imgs[11] = tint(gen_imgs[3], HUES["orange"]), tint(gen_imgs[11], HUES["blue"])
    res = cs.color_shift(cs.measure_images(gen_imgs), ref)
    assert np.flatnonzero(res.flagged).tolist() == [3, 11]
    assert res.hue_classes == {"orange": 1, "blue": 1}
    assert res.sector_iou.shape == (20,)
    same = cs.color_shift(cs.measure_images([_fan(32, seed=s) for s in range(20)]), ref)
    assert same.sector_fraction == 0.0 and same.ref_sector_rate == 0.0  # same fan geometry as the reference


def test_reference_too_small_is_a_clear_error():
    ref = cs.measure_images([_fan(24, seed=s) for s in range(50)])
    with pytest.raises(DataError, match="at least 200"):
        cs.color_shift(ref, ref)
    assert cs.color_shift(ref, ref, threshold=5.0).value == 0.0  # a fixed threshold needs no calibration
    assert cs.min_reference_size(0.99) == 100


def test_task_stores_gallery_and_per_image_csv(tmp_path):
    ref = [_fan(32, seed=s) for s in range(200)]
    gen = [_fan(32, seed=s) for s in range(500, 530)]
    gen[5] = tint(gen[5], HUES["orange"])
    ctx = TaskContext(feature_space=None, rng=np.random.default_rng(0), gen_images=lambda: gen,
                      ref_images=lambda: ref, artifacts_dir=tmp_path / "art")
    res = {r.metric: r for r in cs.ColorShiftTask().evaluate(ctx)}
    frac = res["color_shift_fraction"]
    assert frac.value == pytest.approx(1 / 30) and frac.details["top_flagged"][0]["index"] == 5
    assert frac.details["hue_classes"] == {"orange": 1}
    assert {"gray_level_w1", "sector_departure_fraction"} <= set(res)
    from PIL import Image

    assert Image.open(ctx.artifacts["color_shift_gallery"]).size[0] > 32
    rows = list(csv.DictReader(ctx.artifacts["color_shift_per_image"].open()))
    assert len(rows) == 30 and rows[5]["flagged"] == "1"


def test_chroma_is_the_mean_colour_in_skimage_lab_and_ignores_colour_noise():
    from skimage.color import rgb2lab

    from harness.features.radiomics import sector_mask

    base = np.repeat(_fan(48, seed=5)[..., None], 3, axis=2)
    tinted = tint(base, HUES["orange"])
    m = sector_mask(tinted.max(axis=2) / 255.0)
    lab = rgb2lab(tinted[m][None] / 255.0)[0]
    assert cs.image_measures(tinted)[0] == pytest.approx(np.hypot(lab[:, 1].mean(), lab[:, 2].mean()), rel=1e-9)
    rng = np.random.default_rng(0)  # untinted gray fans with independent zero-mean noise per colour channel
    noisy = [np.clip(np.repeat(_fan(48, seed=s)[..., None], 3, axis=2) + rng.normal(0, 3, (48, 48, 3))
                     * (_fan(48, seed=s)[..., None] > 0), 0, 255).astype(np.uint8) for s in range(30)]
    ref = cs.measure_images([_fan(48, seed=s) for s in range(100, 300)])
    res = cs.color_shift(cs.measure_images(noisy), ref)
    assert res.value == 0.0  # the per-pixel mean chroma of these images is ≈ 2.6, above the 2.0 threshold
    res_t = cs.color_shift(cs.measure_images(noisy[:29] + [tint(noisy[29], HUES["orange"])]), ref)
    assert np.flatnonzero(res_t.flagged).tolist() == [29]
