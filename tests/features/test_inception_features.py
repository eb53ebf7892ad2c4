"""Inception extractors: clean resize vs clean-fid, weight lookup/errors, TorchScript wiring, random-inception."""

from __future__ import annotations

import hashlib
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import MissingWeightsError
from harness.features import inception as inc
from harness.features import weights as W
from harness.features.inception import InceptionExtractor, RandomInceptionExtractor


@pytest.fixture
def no_weights_anywhere(tmp_path, monkeypatch):
    """Every lookup place points at an empty temp location; downloads disabled unless a test enables them."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("ECHOBENCH_WEIGHTS", str(empty))
    monkeypatch.setenv("ECHOBENCH_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(inc, "cleanfid_cache_path", lambda: tmp_path / "cleanfid" / inc.INCEPTION_FILENAME)
    monkeypatch.setattr(W, "echobench_weights_dir", lambda: tmp_path / "ours")
    return tmp_path


def images(n: int, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size + 3 * i, 3), dtype=np.uint8) for i in range(n)]


# preprocessing -----------------------------------------------------------------------------------
def test_url_and_cache_path_match_cleanfid():
    from cleanfid.downloads_helper import inception_url

    assert inc.INCEPTION_URL == inception_url
    assert inc.cleanfid_cache_path() == Path("/tmp/inception-2015-12-05.pt")


def test_clean_resize_equals_cleanfid_resizer():
    """Reference: clean-fid's own "clean" resizer on the same image."""
    from cleanfid.resize import build_resizer

    img = images(1, size=71, seed=1)[0]
    ours = inc.clean_resize(img)
    ref = build_resizer("clean")(img)
    assert ours.shape == (299, 299, 3) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, ref)
    gray = img[..., 0]
    np.testing.assert_array_equal(inc.clean_resize(gray), build_resizer("clean")(np.repeat(gray[..., None], 3, 2)))


# weights -------------------------------------------------------------------------------------------
def test_missing_weights_message(no_weights_anywhere):
    ex = InceptionExtractor(device="cpu")
    with pytest.raises(MissingWeightsError) as err:
        ex.weights_id()
    msg = str(err.value)
    for part in ("inception-2015-12-05.pt", inc.INCEPTION_URL, "--weights", "ECHOBENCH_WEIGHTS",
                 str(no_weights_anywhere / "cleanfid" / "inception-2015-12-05.pt")):
        assert part in msg, part
    with pytest.raises(MissingWeightsError):
        ex.extract_batch(images(1))
    assert InceptionExtractor.availability().startswith("missing weights")


def test_failed_download_is_a_missing_weights_error(no_weights_anywhere, monkeypatch):
    """Online but unreachable: urlopen fails → the same single message, no hang, no partial file."""
    monkeypatch.delenv("ECHOBENCH_OFFLINE")
    seen = {}

    def fake_urlopen(url, timeout=None):
        seen["url"], seen["timeout"] = url, timeout
        raise urllib.error.URLError("name resolution failed")

    monkeypatch.setattr(W.urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(MissingWeightsError, match="download failed.*inception-2015-12-05.pt"):
        InceptionExtractor().weights_id()
    assert seen["url"] == inc.INCEPTION_URL and seen["timeout"] == W.DOWNLOAD_TIMEOUT_S
    assert not any((no_weights_anywhere / "ours").glob("*"))


def test_explicit_path_that_does_not_exist(tmp_path):
    with pytest.raises(MissingWeightsError, match="nope.pt"):
        InceptionExtractor(weights=str(tmp_path / "nope.pt")).weights_id()


class _Layers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 8 * 8, 2048)

    def forward(self, x):
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)
        return self.fc(pooled).view(x.shape[0], 2048, 1, 1)


class _Stub(torch.nn.Module):
    """Same interface as the real TorchScript file (a ``layers`` submodule), NOT the Inception network."""

    def __init__(self):
        super().__init__()
        self.layers = _Layers()

    def forward(self, x):
        return self.layers(x)


@pytest.fixture
def stub_weights(tmp_path, monkeypatch) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "stub" / inc.INCEPTION_FILENAME
    path.parent.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch>=2.9 flags TorchScript as deprecated
        torch.jit.save(torch.jit.script(_Stub()), str(path))
    # the stub is not the published file: for these wiring tests its own digest is the expected one
    monkeypatch.setattr(inc, "INCEPTION_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    return path


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_wiring_torchscript_file_is_loaded_like_cleanfid(stub_weights, no_weights_anywhere, monkeypatch):
    """WIRING TEST with a tiny stand-in TorchScript module (not Inception): our resize + normalisation +
    ``layers`` call give exactly what clean-fid's InceptionV3W + ResizeDataset give with the same file."""
    import torchvision
    from cleanfid.inception_torchscript import InceptionV3W
    from cleanfid.resize import build_resizer

    imgs = images(3, size=40, seed=2)
    ex = InceptionExtractor(weights=str(stub_weights), device="cpu", batch_size=2)
    ours = ex.extract_batch(imgs)
    ref_model = InceptionV3W(str(stub_weights.parent), download=False).eval()
    resize, to_tensor = build_resizer("clean"), torchvision.transforms.ToTensor()
    batch = torch.stack([to_tensor(resize(im)) for im in imgs])
    with torch.no_grad():
        ref = ref_model(batch).numpy()
    assert ours.shape == (3, 2048) and ours.dtype == np.float32 == ref.dtype
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    digest = hashlib.sha256(stub_weights.read_bytes()).hexdigest()[:12]
    assert ex.weights_id() == digest and ex.fingerprint() == f"inception-{digest}-pclean1"
    # the same file is found through $ECHOBENCH_WEIGHTS (a directory) and through clean-fid's cache path
    monkeypatch.setenv("ECHOBENCH_WEIGHTS", str(stub_weights.parent))
    assert InceptionExtractor().weights_path() == stub_weights
    assert InceptionExtractor.availability().startswith("ok")


def test_cleanfid_cache_location_is_searched(stub_weights, no_weights_anywhere, monkeypatch):
    monkeypatch.setattr(inc, "cleanfid_cache_path", lambda: stub_weights)
    assert InceptionExtractor().weights_path() == stub_weights


def test_not_torchscript_is_a_clear_error(tmp_path):
    bad = tmp_path / "inception-2015-12-05.pt"
    bad.write_bytes(b"truncated download")
    with pytest.raises(MissingWeightsError, match="not the published inception-2015-12-05.pt"):  # checked before loading
        InceptionExtractor(weights=str(bad), device="cpu").extract_batch(images(1))


# random-inception ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_random_inception_deterministic_and_batch_size_invariant():
    imgs = images(2, size=64, seed=3)
    state = torch.random.get_rng_state()
    a = RandomInceptionExtractor(device="cpu", batch_size=2).extract_batch(imgs)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is untouched
    b = RandomInceptionExtractor(device="cpu", batch_size=1).extract_batch(imgs)
    assert a.shape == (2, 2048) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    inc.build_random_inception.cache_clear()  # a fresh build gives the same network
    np.testing.assert_array_equal(RandomInceptionExtractor(device="cpu", batch_size=2).extract_batch(imgs[:1]), a[:1])
    assert 0.01 < np.abs(a).mean() < 100  # He-rescaled: O(1) features, not ~1e10
    assert not np.allclose(a[0], a[1])


def test_random_inception_metadata():
    ex = RandomInceptionExtractor()
    assert ex.feature_space == "random-inception" and ex.substitute and ex.dim == 2048
    assert ex.fingerprint() == "random-inception-random-seed0-pclean1"
    assert "NOT FID" in ex.description
