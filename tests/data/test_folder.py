"""The folder data source: modes, sizes, captions and clear errors."""

import numpy as np
import pytest
from PIL import Image

from harness.data.base import open_data_spec
from harness.data.folder import FolderSource
from harness.errors import DataError, UsageError


def _png(path, array):
    Image.fromarray(array).save(path)


def test_mixed_sizes_and_modes(tmp_path):
    rng = np.random.default_rng(0)
    g = rng.integers(0, 255, (20, 30), dtype=np.uint8)
    c = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    _png(tmp_path / "b.png", g)
    Image.fromarray(c).save(tmp_path / "a.bmp")
    Image.fromarray(c).save(tmp_path / "c.tif")
    Image.fromarray(np.dstack([c, np.full((16, 16), 255, np.uint8)])).save(tmp_path / "d.png")  # RGBA
    (tmp_path / "notes.txt").write_text("not an image")
    src, split = open_data_spec(f"folder:{tmp_path}")
    assert split == "all" and src.count("all") == 4 and src.count("train") + src.count("test") == 4
    batches = list(src.iter_batches("all", 4, batch_size=3))
    assert isinstance(batches[0].images, list)  # mixed sizes
    assert batches[0].ids == ["a.bmp", "b.png", "c.tif"]
    assert np.array_equal(batches[0].images[0], c) and np.array_equal(batches[0].images[1], g)
    assert np.array_equal(batches[0].images[2], c) and np.array_equal(batches[1].images[0], c)
    same = next(src.iter_batches("all", 1, start=2))
    assert isinstance(same.images, np.ndarray) and same.images.shape == (1, 16, 16, 3)
    assert src.fingerprint()["n"] == 4


def test_jpeg_and_captions(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / f"{i}.jpg", quality=95)
    (tmp_path / "captions.csv").write_text("file,caption,condition\n0.jpg,first,asd\n2.jpg,third,normal\n")
    b = next(FolderSource(tmp_path).iter_batches("all", 3))
    assert b.images.shape == (3, 8, 8)
    assert abs(int(b.images[1].mean()) - 40) <= 2
    assert b.captions == ["first", "", "third"] and b.conditions == ["asd", None, "normal"]


def test_truncated_file_named(tmp_path):
    _png(tmp_path / "good.png", np.zeros((32, 32), np.uint8))
    _png(tmp_path / "bad.png", np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8))
    data = (tmp_path / "bad.png").read_bytes()
    (tmp_path / "bad.png").write_bytes(data[: len(data) // 2])
    src = FolderSource(tmp_path)
    with pytest.raises(DataError, match="bad.png"):
        list(src.iter_batches("all", 2))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match="bad.png"):
        list(src.iter_batches("all", 2))


def test_empty_single_missing(tmp_path):
    with pytest.raises(DataError, match="at least 2"):
        FolderSource(tmp_path)
    _png(tmp_path / "one.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="1 image"):
        FolderSource(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        FolderSource(tmp_path / "nope")
    _png(tmp_path / "two.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(UsageError, match="split"):
        FolderSource(tmp_path).count("val")
    with pytest.raises(UsageError, match="holds 2"):
        list(FolderSource(tmp_path).iter_batches("all", 3))
