"""EchoNet-Dynamic (user-provided): apical-4-chamber frames with LV tracings.

``echonet:DIR`` or ``echonet:DIR@split`` (split ``train``, ``val`` or ``test``, case-insensitive). As a reference
(``--reference echonet:DIR``) the default split is ``test``; as ``--data echonet:DIR`` the ``real`` baseline samples
``val`` and the default reference is ``echonet:DIR@test`` (disjoint: the noise floor is never a set against itself);
``--data echonet:DIR@train`` makes ``real`` sample ``train``. ``DIR`` holds ``FileList.csv`` (FileName, EF, ESV,
EDV, FrameHeight, FrameWidth, FPS, NumberOfFrames, Split), ``VolumeTracings.csv`` (FileName, X1, Y1, X2, Y2, Frame) and ``Videos/*.avi``.

Options:
    frames: ``"traced"`` (default): the frames with an LV tracing (end-diastole and end-systole), in
        FileList order then frame number; videos without tracings are skipped. ``"all"``: every frame
        (``NumberOfFrames`` of FileList.csv), each video in order.
    size: output side in pixels (default 256, the paper's size; the native clips are 112×112); ``0`` or
        ``None`` keeps the native size. Frames are converted to grayscale and resized with area
        interpolation (down) or bicubic (up).

The LV tracing becomes a label map (value ``LABELS["lv"]`` = 3 of the phantom, 0 elsewhere) built like the
EchoNet-Dynamic reference code: the polygon through the chord ends (X1, Y1) then (X2, Y2) reversed,
skipping the first row (the long axis). Samples without a tracing (``frames="all"``) have an all-zero map;
``extra["traced"]`` says which are traced.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import skimage.draw

from harness.data.base import DataSource, SampleBatch, resize_frame, split_at
from harness.errors import DataError, UsageError
from harness.registry import datasets

log = logging.getLogger(__name__)

FILELIST_COLUMNS = ("FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split")
TRACING_COLUMNS = ("FileName", "X1", "Y1", "X2", "Y2", "Frame")
LV_LABEL = 3  # harness.data.phantom.LABELS["lv"]


def _stem(name: str) -> str:
    name = str(name).strip()
    return name[:-4] if name.lower().endswith(".avi") else name


def _read_csv(path: Path, columns: tuple[str, ...]):
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path} not found: an EchoNet-Dynamic folder needs {path.name} beside Videos/")
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(map(str, df.columns))})")
    return df


def tracing_mask(trace: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """LV mask (bool, ``shape``) from the (k, 4) chords X1, Y1, X2, Y2 of one traced frame."""
    x1, y1, x2, y2 = trace[:, 0], trace[:, 1], trace[:, 2], trace[:, 3]
    x = np.concatenate((x1[1:], np.flip(x2[1:])))
    y = np.concatenate((y1[1:], np.flip(y2[1:])))
    r, c = skimage.draw.polygon(np.rint(y).astype(int), np.rint(x).astype(int), shape)
    mask = np.zeros(shape, dtype=bool)
    mask[r, c] = True
    return mask


@datasets.register("echonet")
class EchoNetSource(DataSource):
    """EchoNet-Dynamic (FileList.csv, VolumeTracings.csv, Videos/*.avi)."""

    description = "EchoNet-Dynamic (FileList.csv, VolumeTracings.csv, Videos/*.avi)"
    splits = ("train", "val", "test")
    default_split = "test"
    reference_split = "test"  # the default reference set
    heldout_split = "val"  # what `real` samples: disjoint from the reference (never the same frames)
    has_label_maps = True
    OPTIONS = ("frames", "size")

    def __init__(self, root: str | Path, *, frames: str = "traced", size: int | None = 256):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"EchoNet-Dynamic folder {self.root} does not exist")
        if frames not in ("traced", "all"):
            raise UsageError(f"echonet option frames={frames!r}: use 'traced' or 'all'")
        self.frames = frames
        try:
            self.size = int(size) if size not in (None, "", "native") else 0
        except (TypeError, ValueError):
            raise UsageError(f"echonet option size={size!r}: expected an integer (0 = native)") from None
        if self.size < 0:
            raise UsageError(f"echonet option size={self.size}: must be >= 0")
        files = _read_csv(self.root / "FileList.csv", FILELIST_COLUMNS)
        self._csv_hash = hashlib.sha256((self.root / "FileList.csv").read_bytes())
        trace_path = self.root / "VolumeTracings.csv"
        self.traces: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
        if trace_path.is_file():
            tr = _read_csv(trace_path, TRACING_COLUMNS)
            self._csv_hash.update(trace_path.read_bytes())
            try:
                coords = tr[["X1", "Y1", "X2", "Y2"]].to_numpy(dtype=np.float64)
                frame_no = tr["Frame"].to_numpy(dtype=np.int64)
            except (TypeError, ValueError) as exc:
                raise DataError(f"{trace_path}: columns X1, Y1, X2, Y2, Frame must be numbers ({exc})") from None
            groups: dict[tuple[str, int], list[int]] = defaultdict(list)
            for i, name in enumerate(tr["FileName"].astype(str)):
                groups[(_stem(name), int(frame_no[i]))].append(i)
            for (stem, f), rows in groups.items():
                self.traces[stem][f] = coords[rows]
        elif frames == "traced":
            raise DataError(f"{trace_path} not found: frames='traced' needs the tracings (or use frames='all')")
        videos = self.root / "Videos"
        if not videos.is_dir():
            raise DataError(f"{videos} not found: EchoNet-Dynamic videos go in DIR/Videos/*.avi")
        present = {p.name.lower(): p for p in videos.iterdir()}
        self.samples: dict[str, list[tuple[Path, int]]] = {s: [] for s in self.splits}
        missing = []
        for i, row in enumerate(files.itertuples(index=False)):
            stem = _stem(row.FileName)
            split = str(row.Split).strip().lower()
            if split not in self.samples:
                continue  # e.g. EXTERNAL: not one of the three splits
            path = present.get(stem.lower() + ".avi")
            if path is None:
                missing.append(stem + ".avi")
                continue
            if frames == "traced":
                idx = sorted(self.traces.get(stem, {}))
            else:
                try:
                    idx = list(range(int(row.NumberOfFrames)))
                except (TypeError, ValueError):
                    raise DataError(f"{self.root / 'FileList.csv'} line {i + 2}, column NumberOfFrames: "
                                    f"{row.NumberOfFrames!r} is not an integer") from None
            self.samples[split].extend((path, f) for f in idx)
        if missing:
            raise DataError(f"{len(missing)} video(s) listed in FileList.csv are missing from {videos}: "
                            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")

    @classmethod
    def from_spec(cls, arg: str | None, **options) -> tuple[EchoNetSource, str]:
        unknown = sorted(set(options) - set(cls.OPTIONS))
        if unknown:
            raise UsageError(f"echonet: unknown option(s) {', '.join(unknown)}; valid: {', '.join(cls.OPTIONS)}")
        if not arg:
            raise UsageError("echonet needs the dataset folder: echonet:DIR or echonet:DIR@split")
        root, requested = split_at(arg)
        split = requested or cls.default_split
        source = cls(root, **options)
        source.check_split(split)
        source.requested_split = requested
        return source, split

    def spec_for(self, split: str) -> str:
        return f"echonet:{self.root}@{split}"

    def count(self, split: str) -> int:
        self.check_split(split)
        return len(self.samples[split])

    def fingerprint(self) -> dict:
        return {"source": "echonet", "path": str(self.root.resolve()), "frames": self.frames, "size": self.size,
                "csv": self._csv_hash.hexdigest()[:16]}

    def _read_frames(self, path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise DataError(f"{path}: cannot open video (corrupt file or unsupported codec)")
        out, i, last = {}, 0, max(wanted)
        try:
            while i <= last:
                ok, frame = cap.read()
                if not ok:
                    break
                if i in wanted:
                    out[i] = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
                i += 1
        finally:
            cap.release()
        lost = sorted(wanted - set(out))
        if lost:
            raise DataError(f"{path}: frame {lost[0]} requested (traced or NumberOfFrames) but the video has {i} "
                            f"readable frame(s)")
        return out

    def _resize(self, image: np.ndarray, nearest: bool = False) -> np.ndarray:
        return resize_frame(image, self.size, nearest=nearest)

    def iter_batches(self, split: str, n: int, *, start: int = 0, batch_size: int = 64) -> Iterator[SampleBatch]:
        self.check_split(split)
        samples = self.samples[split]
        if start < 0 or n < 0 or start + n > len(samples):
            raise UsageError(f"echonet split {split!r} has {len(samples)} frame(s); requested {start}..{start + n - 1}")
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1 (got {batch_size})")
        for b0 in range(start, start + n, batch_size):
            chunk = samples[b0:min(b0 + batch_size, start + n)]
            by_video: dict[Path, set[int]] = defaultdict(set)
            for path, f in chunk:
                by_video[path].add(f)
            frames = {p: self._read_frames(p, fs) for p, fs in by_video.items()}
            images, labels, traced = [], [], []
            for path, f in chunk:
                frame = frames[path][f]
                trace = self.traces.get(_stem(path.name), {}).get(f)
                mask = np.zeros(frame.shape, np.uint8)
                if trace is not None and len(trace) > 1:
                    mask[tracing_mask(trace, frame.shape)] = LV_LABEL
                images.append(self._resize(frame))
                labels.append(self._resize(mask, nearest=True))
                traced.append(trace is not None)
            same = all(im.shape == images[0].shape for im in images)
            yield SampleBatch(
                images=np.stack(images) if same else images,
                ids=[f"echonet/{split}/{p.stem}/{f:04d}" for p, f in chunk],
                label_maps=np.stack(labels) if same else None,
                extra={"traced": traced, "video": [p.name for p, _ in chunk], "frame": [f for _, f in chunk]},
            )
