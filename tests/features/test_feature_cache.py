"""Feature cache: hits, keys, corrupt files, reference statistics (vs numpy/scipy), re-batching."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.linalg

from harness.errors import DataError
from harness.features.base import FeatureExtractor
from harness.features.cache import FeatureCache, extract_features
from tasks.fid_math import gaussian_stats, sqrtm_psd


class Dummy(FeatureExtractor):
    """Mean colour of each image (3-d): a weight-free stand-in that records its batch sizes."""

    name = "dummy"
    feature_space = "dummy"
    dim = 3

    def __init__(self, wid: str = "w1", batch_size: int = 4):
        super().__init__(batch_size=batch_size)
        self.wid = wid
        self.calls: list[int] = []

    def weights_id(self) -> str:
        return self.wid

    def extract_batch(self, images):
        self.calls.append(len(images))
        return np.stack([np.asarray(im, dtype=np.float64).reshape(-1, 3).mean(0) for im in images])


def test_root_from_env_and_explicit(tmp_path, monkeypatch):
    monkeypatch.setenv("ECHOBENCH_CACHE", str(tmp_path / "c"))
    assert FeatureCache().root == tmp_path / "c" / "features"
    assert FeatureCache(tmp_path / "x").root == tmp_path / "x"


def test_hit_returns_identical_array_without_compute(tmp_path):
    cache = FeatureCache(tmp_path)
    ex = Dummy()
    feats = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    out1 = cache.get_or_compute("abc123", ex, lambda: feats)
    assert (cache.hits, cache.misses) == (0, 1)

    def boom():
        raise AssertionError("compute must not be called on a hit")

    out2 = cache.get_or_compute("abc123", ex, boom)
    assert (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(out1, feats)
    np.testing.assert_array_equal(out2, feats)
    assert out2.dtype == np.float32
    # a fresh cache object (another process) sees the same file
    assert FeatureCache(tmp_path).get_or_compute("abc123", ex, boom).shape == (7, 3)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("dummy-w1-p1__abc123__features__") and files[0].endswith(".npz")


def test_key_changes_with_fingerprint_and_content(tmp_path):
    cache = FeatureCache(tmp_path)
    a, b = Dummy("w1"), Dummy("w2")
    assert cache.key("h", a) != cache.key("h", b)
    assert cache.key("h", a) != cache.key("g", a)
    assert cache.key("h", a, "features") != cache.key("h", a, "stats1")
    cache.get_or_compute("h", a, lambda: np.zeros((2, 3)))
    out = cache.get_or_compute("h", b, lambda: np.ones((2, 3)))
    assert cache.misses == 2 and out[0, 0] == 1.0


def test_corrupt_file_is_recomputed(tmp_path, caplog):
    cache = FeatureCache(tmp_path)
    ex = Dummy()
    path = cache.path("h", ex)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING):
        out = cache.get_or_compute("h", ex, lambda: np.full((2, 3), 5.0))
    assert out[0, 0] == 5.0 and cache.misses == 1
    assert "unreadable" in caplog.text and str(path) in caplog.text
    # the rewritten file is valid now; no temporary files are left behind
    assert cache.get_or_compute("h", ex, lambda: np.zeros((2, 3)))[0, 0] == 5.0
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_reference_stats_against_numpy_and_scipy(tmp_path):
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 3.0
    cache = FeatureCache(tmp_path)
    stats = cache.reference_stats("ref", Dummy(), feats)
    np.testing.assert_allclose(stats["mu"], feats.mean(0))
    np.testing.assert_allclose(stats["sigma"], np.cov(feats, rowvar=False, ddof=1))
    s = stats["sqrt_sigma"]
    np.testing.assert_allclose(s, s.T)
    np.testing.assert_allclose(s @ s, stats["sigma"], atol=1e-10)
    np.testing.assert_allclose(s, scipy.linalg.sqrtm(stats["sigma"]).real, atol=1e-8)
    again = cache.reference_stats("ref", Dummy(), feats)
    assert cache.hits == 1
    for k in ("mu", "sigma", "sqrt_sigma"):
        np.testing.assert_array_equal(again[k], stats[k])
    assert stats["n"] == again["n"] == len(feats)  # the cached statistics keep N (FID results report n_ref)


def test_sqrt_psd_singular_covariance():
    """N < D: singular covariance, tiny negative eigenvalues are clipped (no NaN)."""
    feats = np.random.default_rng(2).normal(size=(4, 10))
    stats = gaussian_stats(feats)
    s = stats["sqrt_sigma"]
    assert np.isfinite(s).all()
    np.testing.assert_allclose(s @ s, stats["sigma"], atol=1e-10)
    assert np.linalg.eigvalsh(s).min() > -1e-10
    np.testing.assert_allclose(sqrtm_psd(np.diag([4.0, 9.0, 0.0])), np.diag([2.0, 3.0, 0.0]), atol=1e-12)


def test_statistics_need_two_images():
    with pytest.raises(DataError):
        gaussian_stats(np.zeros((1, 3)))


def test_extract_features_rebatches_in_order():
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 255, (5, 6, 3), dtype=np.uint8) for _ in range(9)]
    batches = [images[:3], np.stack(images[3:8]), images[8:]]
    ex = Dummy(batch_size=4)
    seen: list[int] = []
    out = extract_features(ex, batches, total=9, progress=seen.append)
    assert ex.calls == [4, 4, 1] and sum(seen) == 9
    assert out.dtype == np.float32 and out.shape == (9, 3)
    np.testing.assert_allclose(out, np.stack([im.reshape(-1, 3).mean(0) for im in images]), rtol=1e-6)
    with pytest.raises(DataError, match="expected 10 images"):
        extract_features(Dummy(), batches, total=10)
    assert extract_features(Dummy(), [], total=0).shape == (0, 3)


def test_builtin_extractors_resolve_through_the_registry():
    from harness.features.inception import InceptionExtractor, RandomInceptionExtractor
    from harness.features.radiomics import RadiomicsExtractor
    from harness.registry import features

    assert features.get("inception") is InceptionExtractor
    assert features.get("random-inception") is RandomInceptionExtractor
    assert features.get("radiomics") is RadiomicsExtractor
    assert InceptionExtractor.name == "inception" and RandomInceptionExtractor.name == "random-inception"
