"""EchoNet-Dynamic loader on a tiny synthetic dataset written here (AVI + CSVs)."""

import cv2
import numpy as np
import pytest

from harness.data.base import open_data_spec
from harness.data.echonet import EchoNetSource, tracing_mask
from harness.errors import DataError

N_FRAMES, SIDE = 6, 112


def _write_video(path, seed):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (SIDE, SIDE))
    assert writer.isOpened()
    for f in range(N_FRAMES):  # frame f has a flat brightness 30 + 30 f (robust to JPEG)
        frame = np.full((SIDE, SIDE, 3), 30 + 30 * f + seed, np.uint8)
        writer.write(frame)
    writer.release()


def _dataset(root, *, with_ext=False):
    (root / "Videos").mkdir(parents=True)
    rows = []
    for i, split in enumerate(["TRAIN", "TEST", "Val"]):
        name = f"0X{i:04d}"
        _write_video(root / "Videos" / f"{name}.avi", i)
        rows.append(f"{name}{'.avi' if with_ext else ''},60,30,70,{SIDE},{SIDE},25,{N_FRAMES},{split}")
    (root / "FileList.csv").write_text("FileName,EF,ESV,EDV,FrameHeight,FrameWidth,FPS,NumberOfFrames,Split\n"
                                       + "\n".join(rows) + "\n")
    lines = ["FileName,X1,Y1,X2,Y2,Frame"]
    for i in range(3):
        for frame, half in ((1, 30), (4, 20)):  # long axis row, then horizontal chords
            lines.append(f"0X{i:04d}.avi,56,20,56,90,{frame}")
            for y in range(25, 90, 5):
                lines.append(f"0X{i:04d}.avi,{56 - half},{y},{56 + half},{y},{frame}")
    (root / "VolumeTracings.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("with_ext", [False, True])
def test_traced_frames_round_trip(tmp_path, with_ext):
    root = _dataset(tmp_path / "echo", with_ext=with_ext)
    src, split = open_data_spec(f"echonet:{root}@TEST", size=64)
    assert split == "test" and src.count("test") == 2 and src.count("train") == 2 and src.count("val") == 2
    b = next(src.iter_batches("test", 2))
    assert b.images.shape == (2, 64, 64) and b.images.dtype == np.uint8
    assert b.ids == ["echonet/test/0X0001/0001", "echonet/test/0X0001/0004"]
    assert abs(b.images[0].mean() - (30 + 30 + 1)) < 6 and abs(b.images[1].mean() - (30 + 120 + 1)) < 6
    lv = (b.label_maps == 3).sum(axis=(1, 2))
    assert lv[0] > lv[1] > 0 and set(np.unique(b.label_maps)) == {0, 3}
    # the 112-pixel mask has the closed-form area of the traced rectangle ~ 61 x (2 half + 1) pixels
    mask = tracing_mask(np.array([[56, 20, 56, 90]] + [[26, y, 86, y] for y in range(25, 90, 5)], float), (SIDE, SIDE))
    assert abs(mask.sum() - 61 * 61) < 2 * 61


def test_all_frames_native_size(tmp_path):
    root = _dataset(tmp_path / "echo")
    src, _ = EchoNetSource.from_spec(f"{root}@train", frames="all", size=0)
    assert src.count("train") == N_FRAMES
    bs = list(src.iter_batches("train", N_FRAMES, batch_size=4))
    imgs = np.concatenate([b.images for b in bs])
    assert imgs.shape == (N_FRAMES, SIDE, SIDE)
    means = imgs.reshape(N_FRAMES, -1).mean(axis=1)
    assert np.all(np.abs(means - (30 + 30 * np.arange(N_FRAMES))) < 6)
    assert sum((b.extra["traced"] for b in bs), []) == [False, True, False, False, True, False]


def test_errors(tmp_path):
    root = _dataset(tmp_path / "echo")
    (root / "Videos" / "0X0002.avi").unlink()
    with pytest.raises(DataError, match="0X0002.avi"):
        EchoNetSource(root)
    (root / "FileList.csv").write_text("FileName,EF\n0X0000,50\n")
    with pytest.raises(DataError, match="missing column.*Split"):
        EchoNetSource(root)
    (root / "FileList.csv").unlink()
    with pytest.raises(DataError, match="FileList.csv"):
        EchoNetSource(root)
