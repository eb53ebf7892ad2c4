"""Radiomics features: shape, determinism, colour sensitivity, and the statistics vs scikit-image/scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from skimage.feature import graycomatrix, graycoprops

from harness.errors import UsageError
from harness.features import radiomics as R
from harness.features.radiomics import DIM, RadiomicsExtractor, feature_names


def fan(seed: int, size: int = 96, hole: bool = False) -> np.ndarray:
    """A grayscale speckled fan (sector) on black, optionally with a dark chamber inside."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    ang = np.arctan2(xx - size / 2, yy + 1.0)
    r = np.hypot(xx - size / 2, yy)
    sector = (np.abs(ang) < 0.6) & (r < size - 4)
    img = rng.gamma(2.0, 40.0, (size, size)) * sector
    if hole:
        img[(yy - size // 2) ** 2 + (xx - size // 2) ** 2 < (size // 8) ** 2] = 0
    return img.clip(0, 255).astype(np.uint8)


def idx(name: str) -> int:
    return feature_names().index(name)


def test_shape_dtype_and_names():
    assert DIM == len(feature_names()) == len(set(feature_names())) == 97
    ex = RadiomicsExtractor()
    imgs = [np.repeat(fan(0)[..., None], 3, 2), np.repeat(fan(1, size=140)[..., None], 3, 2)]
    out = ex.extract_batch(imgs)
    assert out.shape == (2, DIM) and out.dtype == np.float32 and np.isfinite(out).all()
    assert ex.feature_space == "radiomics" and not ex.substitute and ex.fingerprint() == "radiomics-none-p1"
    with pytest.raises(UsageError):
        RadiomicsExtractor(weights="x.pt")


def test_deterministic_and_batch_independent():
    imgs = [np.repeat(fan(s)[..., None], 3, 2) for s in range(3)]
    a = RadiomicsExtractor().extract_batch(imgs)
    b = np.concatenate([RadiomicsExtractor().extract_batch([im]) for im in imgs])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[0], a[1])


def test_gray_equals_replicated_rgb_and_has_no_chroma():
    g = fan(4)
    f_gray = RadiomicsExtractor().extract_batch([g])
    f_rgb = RadiomicsExtractor().extract_batch([np.repeat(g[..., None], 3, 2)])
    np.testing.assert_array_equal(f_gray, f_rgb)
    for name in ("cb_mean", "cr_mean", "chroma_mean", "chroma_std", "chroma_p95"):
        assert abs(f_gray[0, idx(name)]) < 1e-6


def test_tint_changes_colour_features():
    g = fan(5).astype(np.float64)
    gray = np.repeat(g[..., None], 3, 2).astype(np.uint8)
    orange = np.clip(g[..., None] * np.array([1.0, 0.7, 0.3]), 0, 255).astype(np.uint8)
    f = RadiomicsExtractor().extract_batch([gray, orange])
    assert f[1, idx("chroma_mean")] > 0.02 > f[0, idx("chroma_mean")]
    assert f[1, idx("cr_mean")] > 0 > f[1, idx("cb_mean")]  # red up, blue down


def test_glcm_matches_skimage_graycoprops():
    """Reference: skimage graycomatrix + graycoprops on the same quantised, masked image."""
    img = np.repeat(fan(6, size=128)[..., None], 3, 2)
    _, y, mask = R.working_image(img)
    q = R.quantise(y, mask)
    assert q.min() == 0 and q.max() <= R.GLCM_LEVELS and (q[mask] > 0).all()
    P = graycomatrix(q, list(R.GLCM_DISTANCES), list(R.GLCM_ANGLES), levels=R.GLCM_LEVELS + 1, symmetric=True)[1:, 1:]
    ours = R.glcm_props(P)
    ref = {p: graycoprops(P, p) for p in R.GLCM_PROPS}
    for p in R.GLCM_PROPS:
        np.testing.assert_allclose(ours[p], ref[p], rtol=1e-12, atol=1e-12, err_msg=p)
    f = R.radiomics_features(img)
    for i, d in enumerate(R.GLCM_DISTANCES):
        assert f[idx(f"glcm_contrast_d{d}")] == pytest.approx(np.log1p(ref["contrast"][i].mean()))
        assert f[idx(f"glcm_homogeneity_d{d}")] == pytest.approx(ref["homogeneity"][i].mean())
        assert f[idx(f"glcm_ASM_d{d}")] == pytest.approx(np.log(ref["ASM"][i].mean() + R.EPS))
        assert f[idx(f"glcm_energy_d{d}")] == pytest.approx(ref["energy"][i].mean())
        assert f[idx(f"glcm_correlation_d{d}")] == pytest.approx(ref["correlation"][i].mean())
    # flat image: skimage's conventions (correlation 1) hold too
    flat = np.full((8, 8), 3, dtype=np.uint8)
    Pf = graycomatrix(flat, [1], [0.0], levels=17, symmetric=True)[1:, 1:]
    for p in R.GLCM_PROPS:
        np.testing.assert_allclose(R.glcm_props(Pf)[p], graycoprops(Pf, p), err_msg=p)


def test_first_order_matches_scipy_and_numpy():
    img = fan(7, size=128)
    _, y, mask = R.working_image(img)
    v = y[mask]
    f = R.radiomics_features(img)
    assert f[idx("mean")] == pytest.approx(v.mean())
    assert f[idx("std")] == pytest.approx(v.std())
    sk, ku = scipy.stats.skew(v), scipy.stats.kurtosis(v)
    assert f[idx("skew")] == pytest.approx(np.sign(sk) * np.log1p(abs(sk)))
    assert f[idx("kurtosis")] == pytest.approx(np.sign(ku) * np.log1p(abs(ku)))
    for p in R.PERCENTILES:
        assert f[idx(f"p{p}")] == pytest.approx(np.percentile(v, p))
    assert f[idx("mask_fraction")] == pytest.approx(mask.mean())
    assert sum(f[idx(f"hist{i:02d}")] for i in range(R.HIST_BINS)) == pytest.approx(1.0)


def test_sector_mask_keeps_dark_chambers_inside_the_fan():
    img = fan(8, size=128, hole=True)
    mask = R.working_image(img)[2]
    assert mask[64, 64]  # the dark disc at the centre stays inside the mask
    assert not mask[5, 2] and not mask[120, 2]  # black corners are outside
    # an all-black image falls back to the whole frame instead of failing
    f = R.radiomics_features(np.zeros((50, 50), dtype=np.uint8))
    assert np.isfinite(f).all() and f[idx("mask_fraction")] == 1.0
