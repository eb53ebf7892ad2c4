"""Pretrained files are checked against their published sha256 before use (issue 21): a file planted at another
library's fixed path (clean-fid's is in the world-writable /tmp) is never loaded."""

from __future__ import annotations

import hashlib

import pytest

from harness.errors import MissingWeightsError
from harness.features import weights as W

GOOD = b"the real weights"


def _spec(tmp_path):
    return W.WeightSpec("net.bin", "https://example.invalid/net.bin", (tmp_path / "shared-tmp" / "net.bin",),
                        sha256=hashlib.sha256(GOOD).hexdigest())


def test_known_digests_are_pinned():
    assert W.KNOWN_SHA256["inception-2015-12-05.pt"].startswith("f58cb9b6")
    assert W.KNOWN_SHA256["weights-inception-2015-12-05-6726825d.pth"].startswith("6726825d")  # name carries the prefix
    from harness.features.inception import inception_spec

    assert inception_spec().expected_sha256() == W.KNOWN_SHA256["inception-2015-12-05.pt"]


def test_planted_file_at_a_shared_path_is_skipped(tmp_path, monkeypatch, caplog):
    spec = _spec(tmp_path)
    planted = spec.known_locations[0]
    planted.parent.mkdir()
    planted.write_bytes(b"attacker's file")
    monkeypatch.setenv("ECHOBENCH_WEIGHTS", str(tmp_path / "none"))
    with caplog.at_level("WARNING"):
        assert W.find_weights(spec) is None
    assert "ignoring" in caplog.text and "not the published net.bin" in caplog.text
    planted.write_bytes(GOOD)
    assert W.find_weights(spec) == planted


def test_user_named_file_with_the_wrong_digest_is_an_error(tmp_path, monkeypatch):
    spec = _spec(tmp_path)
    bad = tmp_path / "mine" / "net.bin"
    bad.parent.mkdir()
    bad.write_bytes(b"truncated")
    with pytest.raises(MissingWeightsError, match="sha256 .* not the published net.bin"):
        W.find_weights(spec, bad)
    monkeypatch.setenv("ECHOBENCH_WEIGHTS", str(bad.parent))
    with pytest.raises(MissingWeightsError, match="get it again from https://example.invalid/net.bin"):
        W.find_weights(spec)
    bad.write_bytes(GOOD)
    assert W.find_weights(spec) == bad


def test_unknown_files_are_not_checked(tmp_path):
    spec = W.WeightSpec("other.bin", "https://example.invalid/o.bin")
    f = tmp_path / "other.bin"
    f.write_bytes(b"x")
    assert W.check_sha256(spec, f) is None
