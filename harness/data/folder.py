"""A folder of PNG/JPEG/BMP/TIFF images as a data source, with real splits.

``folder:DIR[@split]``. Where the images are: the image files directly inside a folder (not recursive), sorted by
file name; a folder with no images but an ``images/`` sub-folder (the layout of ``harness data export`` and of
image sets) is read through it, with ``labelmaps/`` beside ``images/`` as label maps (same stems, PNG, the phantom's
label values: see :mod:`harness.data.labels`) and an optional ``captions.csv`` (columns ``file, caption`` and
optionally ``condition``) supplying captions/conditions by file name.

Splits:

- ``DIR`` with ``train/``, ``val/`` and/or ``test/`` sub-folders: those are the splits (each laid out as above);
  ``all`` is their union (in that order).
- otherwise a deterministic split by file name: a file is in ``test`` when the first 8 hex digits of
  ``sha256(file name)``, read as a number in [0, 1), are below 0.2, else in ``train`` (80/20; the same on every
  machine, and adding a file never moves another); ``all`` keeps every file.

As ``--data folder:DIR`` the ``real`` baseline samples ``val`` (sub-folders) or ``train`` (hash split) and the
default reference is ``folder:DIR@test``; an explicit ``--reference folder:DIR`` (no ``@``) reads ``all``.
Images keep their own mode (grey (H, W) or RGB (H, W, 3)) and size; a batch whose images differ in shape is
returned as a list.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.data.base import DataSource, SampleBatch, split_at
from harness.errors import DataError, UsageError
from harness.io import list_images, read_image
from harness.registry import datasets

log = logging.getLogger(__name__)

def stack_or_list(images: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """One array when all images share a shape, else the list."""
    if images and all(im.shape == images[0].shape for im in images):
        return np.stack(images)
    return images


def read_captions(path: Path) -> dict[str, tuple[str, str | None]]:
    """``captions.csv`` → {file name: (caption, condition or None)}."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            if "file" not in fields or "caption" not in fields:
                raise DataError(f"{path}: needs columns 'file' and 'caption' (found: {', '.join(fields) or 'none'})")
            out = {}
            for row in reader:
                name = Path(row["file"] or "").name
                if name:
                    out[name] = (row["caption"] or "", row.get("condition") or None)
            return out
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read captions ({exc})") from None


#: fraction of a hash-split folder that goes to ``test``
TEST_FRACTION = 0.2
SUBFOLDER_SPLITS = ("train", "val", "test")


def hash_split(name: str, test_fraction: float = TEST_FRACTION) -> str:
    """``"test"`` or ``"train"`` for a file name (deterministic: the first 8 hex digits of its sha256)."""
    u = int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:8], 16) / 16**8
    return "test" if u < test_fraction else "train"


def _image_layout(folder: Path) -> tuple[list[Path], Path | None, Path | None]:
    """(image files, label-map folder or None, captions.csv or None) of one folder (see the module doc)."""
    files = list_images(folder)
    if not files and (folder / "images").is_dir():
        files = list_images(folder / "images")
    image_dir = files[0].parent if files else folder
    lm_dir = image_dir.parent / "labelmaps" if image_dir != folder else None
    cap = next((p for p in (folder / "captions.csv", image_dir / "captions.csv") if p.is_file()), None)
    return files, lm_dir if lm_dir is not None and lm_dir.is_dir() else None, cap


@dataclass
class _Split:
    files: list[Path]
    labelmap_dir: Path | None
    captions: dict


@datasets.register("folder")
class FolderSource(DataSource):
    """Any folder of PNG/JPEG/BMP/TIFF images (splits: sub-folders train/val/test, else an 80/20 file-name hash split; all)."""

    description = "Any folder of PNG/JPEG/BMP/TIFF images (train/val/test sub-folders or an 80/20 name-hash split)"
    splits = ("all", "train", "test")
    default_split = "all"
    reference_split = "test"
    heldout_split = "train"
    train_split = "train"

    def __init__(self, folder: str | Path):
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise DataError(f"image folder {root} does not exist or is not a directory")
        self.root = root
        subs = [s for s in SUBFOLDER_SPLITS if (root / s).is_dir()]
        self.layout = "subfolders" if subs else "hash"
        parts: dict[str, _Split] = {}
        every: list[Path] = []  # `all`: file-name order (hash split), or train, val, test in turn (sub-folders)
        for name in subs or [None]:
            files, lm_dir, cap = _image_layout(root / name if name else root)
            if lm_dir is not None:
                _check_labelmaps(files, lm_dir)
            captions = read_captions(cap) if cap is not None else {}
            every += files
            if name:
                parts[name] = _Split(files, lm_dir, captions)
            else:
                parts = {s: _Split([p for p in files if hash_split(p.name) == s], lm_dir, captions) for s in ("train", "test")}
        parts["all"] = _Split(every, None, {})
        self.parts = parts
        self.splits = ("all", *[s for s in SUBFOLDER_SPLITS if s in parts])  # instance: this folder's splits
        if "val" in parts:
            self.heldout_split = "val"
        total = len(parts["all"].files)
        if total < 2:
            where = root if not (root / "images").is_dir() else f"{root} (and {root / 'images'})"
            raise DataError(f"image folder {where} holds {total} image(s) (PNG/JPEG/BMP/TIFF); at least 2 are needed")
        self.files = parts["all"].files
        self.image_dir = self.files[0].parent
        self._owner = {p: part for name, part in parts.items() if name != "all" for p in part.files}

    @classmethod
    def from_spec(cls, arg: str | None, **options) -> tuple[FolderSource, str]:
        if options:
            raise UsageError(f"folder: unknown option(s) {', '.join(sorted(options))}; the folder source takes none")
        root, requested = split_at(arg)
        if not root:
            raise UsageError("folder needs a directory: folder:DIR or folder:DIR@split")
        source = cls(root)
        split = requested or cls.default_split
        source.check_split(split)
        source.requested_split = requested
        return source, split

    def spec_for(self, split: str) -> str:
        return f"folder:{self.root}@{split}"

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            how = "its train/val/test sub-folders" if self.layout == "subfolders" else "an 80/20 file-name hash split"
            raise UsageError(f"folder {self.root} has splits {', '.join(self.splits)} ({how}), not {split!r}")

    def _part(self, split: str) -> _Split:
        self.check_split(split)
        return self.parts[split]

    def count(self, split: str = "all") -> int:
        return len(self._part(split).files)

    def fingerprint(self) -> dict:
        h = hashlib.sha256()
        for p in self.files:
            st = p.stat()
            h.update(json.dumps([str(p.relative_to(self.root)), st.st_size, st.st_mtime_ns]).encode())
        return {"source": "folder", "path": str(self.root.resolve()), "layout": self.layout, "n": len(self.files),
                "files": h.hexdigest()[:16]}


    def iter_batches(self, split: str, n: int, *, start: int = 0, batch_size: int = 64) -> Iterator[SampleBatch]:
        files_all = self._part(split).files
        if start < 0 or n < 0 or start + n > len(files_all):
            raise UsageError(f"folder {self.root} split {split!r}: requested images {start}..{start + n - 1} but it "
                             f"holds {len(files_all)}")
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1 (got {batch_size})")
        for b0 in range(start, start + n, batch_size):
            files = files_all[b0:min(b0 + batch_size, start + n)]
            parts = [self._owner[p] for p in files]  # label maps/captions: the file's own split folder
            images = [read_image(p) for p in files]
            labels = None
            if all(s.labelmap_dir is not None for s in parts):
                maps = [_label_map(s.labelmap_dir / (p.stem + ".png"), im.shape[:2], p.name)
                        for s, p, im in zip(parts, files, images)]
                labels = stack_or_list(maps)
            caps = [s.captions.get(p.name) for s, p in zip(parts, files)]
            yield SampleBatch(
                images=stack_or_list(images),
                ids=[str(p.relative_to(self.root)) for p in files],
                label_maps=labels if isinstance(labels, np.ndarray) else None,
                conditions=[c[1] if c else None for c in caps] if any(c and c[1] for c in caps) else None,
                captions=[c[0] if c else "" for c in caps] if any(caps) else None,
            )

    @property
    def captions(self) -> dict[str, tuple[str, str | None]]:
        """Every ``captions.csv`` row of this folder (file name → (caption, condition)), all splits together."""
        return {k: v for name, part in self.parts.items() if name != "all" for k, v in part.captions.items()}

    @property
    def has_label_maps(self) -> bool:  # type: ignore[override]
        return all(s.labelmap_dir is not None for name, s in self.parts.items() if name != "all")

    def check_label_maps(self, split: str, n: int) -> None:
        """Before a run: the label maps of the first ``n`` images of ``split`` are single-channel, the size of their
        image and hold only values of the folder label table; a DataError names the first file that is not."""
        from PIL import Image

        for p in self._part(split).files[:n]:
            lm_dir = self._owner[p].labelmap_dir
            if lm_dir is None:
                return  # no label maps: the task says which sources have them
            with Image.open(p) as im:
                shape = im.size[::-1]
            _label_map(lm_dir / (p.stem + ".png"), shape, p.name)


def _label_map(path: Path, shape: tuple[int, int], image_name: str) -> np.ndarray:
    """One folder label map, checked: single-channel, the image's size, values in the folder label table."""
    from PIL import Image

    from harness.data.labels import check_values

    m = read_image(path)
    if m.ndim == 3:
        with Image.open(path) as im:
            if im.mode == "P":  # a palette PNG (e.g. ITK-SNAP / VOC style): its pixel values are the palette indices
                m = np.asarray(im)
    if m.ndim != 2:
        raise DataError(f"label map {path} has {m.shape[2]} channels; label maps are single-channel PNGs of label "
                        f"values (0 background, phantom values such as LV = 3: harness/data/labels.py)")
    if m.shape != tuple(shape):
        raise DataError(f"label map {path} is {m.shape[1]}×{m.shape[0]} but its image {image_name} is "
                        f"{shape[1]}×{shape[0]}; save the label map at the image's size")
    check_values(m, "folder", where=f"label map {path}")
    return m


def _check_labelmaps(files: list[Path], lm_dir: Path) -> None:
    """Every image needs its label map (same stem, .png) in ``lm_dir``: name the first one missing."""
    for p in files:
        if not (lm_dir / (p.stem + ".png")).is_file():
            raise DataError(f"{lm_dir}: no label map for image {p.name} (expected {lm_dir / (p.stem + '.png')}); "
                            f"labelmaps/ must hold one PNG per image in images/, same stem - add it or remove the "
                            f"labelmaps/ folder")
