"""export_data: layout, captions, injected truth, atomic and no silent overwrite."""

import csv

import numpy as np
import pytest
from PIL import Image

from harness.data.export import export_data
from harness.data.folder import FolderSource
from harness.data.phantom import PhantomSource
from harness.errors import DataError


def _rows(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_export_phantom_with_faults_round_trip(tmp_path):
    src = PhantomSource(size=32, inject=["tint:0.5:orange"])
    seen = []
    out = export_data(src, "test", 6, tmp_path / "out", seed=0, batch_size=4, progress=seen.append)
    assert seen == [4, 2]
    files = sorted(p.name for p in (out / "images").iterdir())
    assert files == [f"{i:06d}.png" for i in range(6)]
    assert len(list((out / "labelmaps").iterdir())) == 6
    caps = _rows(out / "captions.csv")
    assert [r["file"] for r in caps] == files and all(r["caption"] and r["condition"] for r in caps)
    inj = _rows(out / "injected.csv")
    truth = sum((b.extra["injected"] for b in src.iter_batches("test", 6)), [])
    assert [r["fault"] for r in inj] == truth and any(truth)
    batch = next(src.iter_batches("test", 6))
    for i, name in enumerate(files):
        assert np.array_equal(np.asarray(Image.open(out / "images" / name)), batch.images[i])
        assert np.array_equal(np.asarray(Image.open(out / "labelmaps" / name)), batch.label_maps[i])
    back = next(FolderSource(out).iter_batches("all", 6))  # the export is a readable folder
    assert np.array_equal(back.images, batch.images) and np.array_equal(back.label_maps, batch.label_maps)
    assert back.captions == batch.captions
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_gray_export_no_injected_file_and_overwrite(tmp_path):
    out = export_data(PhantomSource(size=16), "train", 2, tmp_path / "o", seed=1)
    assert Image.open(out / "images" / "000000.png").mode == "L"
    assert not (out / "injected.csv").exists()
    with pytest.raises(DataError, match="not empty"):
        export_data(PhantomSource(size=16), "train", 3, out, seed=1)
    export_data(PhantomSource(size=16), "train", 3, out, seed=1, overwrite=True)
    assert len(list((out / "images").iterdir())) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
