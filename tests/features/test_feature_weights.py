"""Weight-file lookup order, download (faked: no network here) and the weights hash."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from harness.errors import MissingWeightsError
from harness.features import weights as W

SPEC_NAME = "tiny.bin"


@pytest.fixture
def spec(tmp_path, monkeypatch):
    monkeypatch.setenv("ECHOBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ECHOBENCH_OFFLINE", raising=False)
    return W.WeightSpec(SPEC_NAME, "https://example.invalid/tiny.bin", (tmp_path / "libcache" / SPEC_NAME,))


def test_lookup_order(tmp_path, spec, monkeypatch):
    env_dir, lib = tmp_path / "env", spec.known_locations[0]
    for p in (env_dir / SPEC_NAME, lib):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    monkeypatch.setenv("ECHOBENCH_WEIGHTS", str(env_dir))
    assert W.find_weights(spec) == env_dir / SPEC_NAME
    assert W.find_weights(spec, explicit=lib) == lib
    assert W.find_weights(spec, explicit=lib.parent) == lib  # a directory holding the file
    monkeypatch.delenv("ECHOBENCH_WEIGHTS")
    assert W.find_weights(spec) == lib
    lib.unlink()
    assert W.find_weights(spec) is None


def test_download_is_atomic_and_hashed(tmp_path, spec, monkeypatch):
    payload = b"weights" * 1000
    monkeypatch.setattr(W.urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(payload))
    path = W.resolve_weights(spec)
    assert path == tmp_path / "cache" / "weights" / SPEC_NAME and path.read_bytes() == payload
    assert [p.name for p in path.parent.iterdir()] == [SPEC_NAME]  # no partial file left
    assert W.weights_hash(path) == hashlib.sha256(payload).hexdigest()[:12]
    # a changed file (size/mtime) is re-hashed, not served from the memo
    path.write_bytes(b"other")
    os.utime(path, ns=(1, 1))
    assert W.weights_hash(path) == hashlib.sha256(b"other").hexdigest()[:12]


def test_offline_and_disabled_downloads_raise(spec, monkeypatch):
    monkeypatch.setenv("ECHOBENCH_OFFLINE", "1")
    with pytest.raises(MissingWeightsError, match="ECHOBENCH_OFFLINE"):
        W.resolve_weights(spec)
    with pytest.raises(MissingWeightsError, match="tiny.bin.*https://example.invalid/tiny.bin"):
        W.resolve_weights(spec, allow_download=False)
