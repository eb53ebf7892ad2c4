"""Colour-shift threshold calibration on references with realistic chroma noise (issue 23).

The references are gray fans with a faint random colour cast per image (JPEG/scanner-like, mean-colour chroma
≈ 0.2–2 ΔE) and zero-mean colour noise per pixel, so the reference chroma has a real upper tail and the
calibration (upper quantile + margin) is exercised: a threshold from the wrong tail or one that ignores the
quantile fails these tests.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.data.faults import HUES, tint
from tasks import color_shift as cs


def _fan(size, rng):
    yy, xx = np.mgrid[:size, :size]
    ang = np.degrees(np.arctan2(xx - size / 2, yy + 1))
    inside = (np.hypot(yy, xx - size / 2) < size * 0.95) & (np.abs(ang) < 40)
    img = np.clip(110 + rng.normal(0, 25, (size, size)), 15, 255)
    return np.where(inside, img, 0), inside


def _noisy_echo(rng, cast_sd=0.012):
    """A gray fan with a faint random colour cast and per-pixel colour noise (uint8 RGB)."""
    gray, inside = _fan(32, rng)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    cast = 1.0 + rng.normal(0, cast_sd, 3)  # per-channel gain: a faint cast of random hue
    rgb = rgb * cast + rng.normal(0, 2.0, rgb.shape) * inside[..., None]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(2023)
    ref = cs.measure_images([_noisy_echo(rng) for _ in range(400)])
    clean = cs.measure_images([_noisy_echo(rng) for _ in range(200)])
    tinted = cs.measure_images([tint(_noisy_echo(rng)[..., 0], HUES["orange"]) for _ in range(10)])
    return ref, clean, tinted


def test_reference_chroma_has_a_realistic_tail(sets):
    ref, _, _ = sets
    q = np.quantile(ref.chroma, [0.5, 0.995])
    assert ref.chroma.min() >= 0 and 0.2 < q[0] < 3 and q[1] > 1.5 * q[0]


@pytest.mark.parametrize("quantile,margin", [(0.995, 2.0), (0.9, 0.5), (0.99, 0.0)])
def test_threshold_is_the_upper_quantile_of_the_reference_chroma_plus_margin(sets, quantile, margin):
    ref, _, _ = sets
    chroma = np.sort(ref.chroma)
    # the q-quantile with linear interpolation between order statistics (numpy's default, Hyndman–Fan type 7)
    h = (chroma.size - 1) * quantile
    expected = chroma[int(np.floor(h))] + (h - np.floor(h)) * (chroma[int(np.ceil(h))] - chroma[int(np.floor(h))])
    assert cs.calibrate_threshold(ref.chroma, quantile, margin) == pytest.approx(expected + margin, rel=1e-12)
    res = cs.color_shift(ref, ref, quantile=quantile, margin=margin)
    # the reference's own flag rate is the share above the threshold: at most 1 − q (equality up to ties)
    assert res.ref_flag_rate <= 1 - quantile + 1 / ref.chroma.size
    assert res.ref_flag_rate == pytest.approx(np.mean(ref.chroma > expected + margin))


def test_clean_images_pass_and_tinted_images_are_flagged(sets):
    ref, clean, tinted = sets
    res = cs.color_shift(clean, ref)
    assert res.value <= 0.01  # false-positive rate of clean images from the reference's own process
    assert res.details["ref_chroma_quantile"] == pytest.approx(np.quantile(ref.chroma, 0.995))
    res_t = cs.color_shift(tinted, ref)
    assert res_t.value == 1.0 and res_t.hue_classes == {"orange": 10}
    # a lower quantile flags more of the clean images than a higher one (the quantile is used, not ignored)
    lo = cs.color_shift(clean, ref, quantile=0.6, margin=0.0)
    assert 0.25 < lo.value < 0.55
    k = int(lo.flagged.sum())
    assert (lo.ci_low, lo.ci_high) == pytest.approx(cs.wilson_interval(k, clean.chroma.size))
