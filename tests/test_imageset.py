from __future__ import annotations

import numpy as np
import pytest

from harness.errors import DataError
from harness.imageset import ImageSet, read_image


def _imgs(k, start=0):
    return np.stack([np.full((8, 8), start + i, np.uint8) for i in range(k)])


def test_write_resume_and_content_hash(tmp_path):
    s = ImageSet.open(tmp_path / "set", {"g": 1}, key="k1")
    s.write_batch(0, _imgs(3))
    s2 = ImageSet.open(tmp_path / "set", {"g": 1}, key="k1")
    assert len(s2) == 3
    s2.write_batch(3, _imgs(2, 3))
    one_go = ImageSet.open(tmp_path / "other", {"g": 1}, key="k1")
    one_go.write_batch(0, _imgs(5))
    assert s2.content_hash() == one_go.content_hash()
    assert s2.content_hash(3) != s2.content_hash()
    assert read_image(s2.root / "images" / "000004.png", mode="rgb").shape == (8, 8, 3)


def test_key_mismatch_refused(tmp_path):
    ImageSet.open(tmp_path / "set", {}, key="k1")
    with pytest.raises(DataError, match="belongs to run key"):
        ImageSet.open(tmp_path / "set", {}, key="k2")


def test_truncated_manifest_line_is_repaired_on_resume(tmp_path):
    s = ImageSet.open(tmp_path / "set", {}, key="k")
    s.write_batch(0, _imgs(4))
    lines = s.manifest_path.read_text().splitlines()
    s.manifest_path.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])  # killed mid-line
    resumed = ImageSet.open(tmp_path / "set", {}, key="k")
    assert len(resumed) == 2  # indices 2 and 3 are regenerated
    assert len(resumed.manifest_path.read_text().splitlines()) == 2


def test_corrupt_manifest_line_is_an_error_when_reading(tmp_path):
    s = ImageSet.open(tmp_path / "set", {}, key="k")
    s.write_batch(0, _imgs(3))
    lines = s.manifest_path.read_text().splitlines()
    lines[1] = "{not json"
    s.manifest_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="line 2"):
        ImageSet.read(tmp_path / "set")


def test_missing_image_file_ends_prefix(tmp_path):
    s = ImageSet.open(tmp_path / "set", {}, key="k")
    s.write_batch(0, _imgs(3))
    (s.root / "images" / "000001.png").unlink()
    assert len(ImageSet.open(tmp_path / "set", {}, key="k")) == 1


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(DataError, match="bad.png"):
        read_image(bad)


def test_read_only_folder_is_a_clear_error(tmp_path):
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores permission bits; use a path under a regular file instead
            target = tmp_path / "afile"
            target.write_text("x")
            with pytest.raises(DataError, match="cannot write"):
                ImageSet.open(target / "set", {}, key="k")
        else:
            with pytest.raises(DataError, match="cannot write"):
                ImageSet.open(ro / "set", {}, key="k")
    finally:
        ro.chmod(0o700)
