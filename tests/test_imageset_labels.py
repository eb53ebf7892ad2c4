"""Label maps and conditions read back from an image set (what the segmentation tasks get), and the `real`
generator copying its source's label maps."""

from __future__ import annotations

import numpy as np
import pytest

from generators.real import RealGenerator
from harness.data.phantom import PhantomSource
from harness.errors import DataError
from harness.imageset import ImageSet


def test_label_maps_and_conditions_round_trip(tmp_path):
    src = PhantomSource(size=32)
    gen = RealGenerator(data=src)
    assert gen.label_source == "phantom"
    s = ImageSet.open(tmp_path / "set", {}, key="k")
    index = 0
    for batch in gen.sample(5, seed=0, batch_size=3):
        s.write_batch(index, batch.images, label_maps=batch.label_maps, conditions=batch.conditions)
        index += len(batch)
    s.write_batch(5, np.zeros((1, 32, 32), np.uint8))  # an image without label map or condition
    truth = next(src.iter_batches("test", 5, batch_size=5))
    again = ImageSet.read(tmp_path / "set")
    maps = again.load_label_maps()
    assert maps[5] is None and len(maps) == 6
    for got, want in zip(maps[:5], truth.label_maps):
        assert got.dtype == np.uint8 and got.shape == (32, 32)
        np.testing.assert_array_equal(got, want)  # values as written, never converted to RGB
    assert again.conditions() == [*truth.conditions, None]
    assert len(again.load_label_maps(2)) == 2 and again.conditions(2) == truth.conditions[:2]


def test_unreadable_label_map_names_the_file(tmp_path):
    s = ImageSet.open(tmp_path / "set", {}, key="k")
    s.write_batch(0, np.zeros((1, 8, 8), np.uint8), label_maps=np.ones((1, 8, 8), np.uint8))
    (s.root / "labelmaps" / "000000.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read label map .*000000.png"):
        ImageSet.read(tmp_path / "set").load_label_maps()
