"""A folder of PNG/JPEG/BMP/TIFF images as a data source.

``folder:DIR`` reads the image files directly inside ``DIR`` (not recursive), sorted by file name. When
``DIR`` holds no images but has an ``images/`` sub-folder (the layout written by ``harness data export`` and
by image sets), that sub-folder is read instead, with ``labelmaps/`` beside it used as label maps.

There is one split, ``all``; ``train`` and ``test`` are accepted as aliases of ``all`` so that a folder can
stand wherever a source with those splits is expected. Images keep their own mode (grayscale (H, W) or
RGB (H, W, 3); palette, alpha and 16-bit images are converted) and size; a batch whose images differ in
shape is returned as a list. An optional ``captions.csv`` (columns ``file, caption`` and optionally
``condition``) in ``DIR`` supplies captions/conditions by file name.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from harness.data.base import DataSource, SampleBatch
from harness.errors import DataError, UsageError
from harness.registry import datasets

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SPLIT_ALIASES = ("all", "train", "test")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix, case-insensitive), sorted by name."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: p.name)


def read_image(path: Path) -> np.ndarray:
    """Read one image as uint8 (H, W) or (H, W, 3); unreadable or truncated files raise :class:`DataError`."""
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                top = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
                return np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
            if mode == "F":
                arr = np.asarray(im, dtype=np.float64)
                return np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8)
            if mode in ("1", "L", "LA"):
                im = im.convert("L")
            elif mode != "RGB":
                im = im.convert("RGB")
            return np.asarray(im, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise DataError(f"{path}: image file disappeared while reading") from None
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read image ({exc}); the file is corrupt or truncated - remove or "
                        f"replace it") from None


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


@datasets.register("folder")
class FolderSource(DataSource):
    """Any folder of PNG/JPEG/BMP/TIFF images (split ``all``; ``train``/``test`` are aliases)."""

    description = "Any folder of PNG/JPEG/BMP/TIFF images"
    splits = SPLIT_ALIASES
    default_split = "all"

    def __init__(self, folder: str | Path):
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise DataError(f"image folder {root} does not exist or is not a directory")
        self.root = root
        files = list_images(root)
        if not files and (root / "images").is_dir():
            files = list_images(root / "images")
        if len(files) < 2:
            where = root if not (root / "images").is_dir() else f"{root} (and {root / 'images'})"
            raise DataError(f"image folder {where} holds {len(files)} image(s) (PNG/JPEG/BMP/TIFF); at least 2 are "
                            f"needed")
        self.files = files
        self.image_dir = files[0].parent
        lm_dir = self.image_dir.parent / "labelmaps" if self.image_dir != root else None
        self.labelmap_dir = lm_dir if lm_dir is not None and lm_dir.is_dir() else None
        cap = next((p for p in (root / "captions.csv", self.image_dir / "captions.csv") if p.is_file()), None)
        self.captions = read_captions(cap) if cap is not None else {}

    @classmethod
    def from_spec(cls, arg: str | None, **options) -> tuple[FolderSource, str]:
        if options:
            raise UsageError(f"folder: unknown option(s) {', '.join(sorted(options))}; the folder source takes none")
        if not arg:
            raise UsageError("folder needs a directory: folder:DIR")
        return cls(arg), cls.default_split

    def check_split(self, split: str) -> None:
        if split not in SPLIT_ALIASES:
            raise UsageError(f"data source 'folder' has one split 'all' (aliases: train, test), not {split!r}")

    def count(self, split: str = "all") -> int:
        self.check_split(split)
        return len(self.files)

    def fingerprint(self) -> dict:
        h = hashlib.sha256()
        for p in self.files:
            st = p.stat()
            h.update(json.dumps([p.name, st.st_size, st.st_mtime_ns]).encode())
        return {"source": "folder", "path": str(self.image_dir.resolve()), "n": len(self.files),
                "files": h.hexdigest()[:16]}

    def iter_batches(self, split: str, n: int, *, start: int = 0, batch_size: int = 64) -> Iterator[SampleBatch]:
        self.check_split(split)
        if start < 0 or n < 0 or start + n > len(self.files):
            raise UsageError(f"folder {self.image_dir}: requested images {start}..{start + n - 1} but it holds "
                             f"{len(self.files)}")
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1 (got {batch_size})")
        for b0 in range(start, start + n, batch_size):
            files = self.files[b0:min(b0 + batch_size, start + n)]
            images = [read_image(p) for p in files]
            labels = None
            if self.labelmap_dir is not None:
                paths = [self.labelmap_dir / (p.stem + ".png") for p in files]
                if all(q.is_file() for q in paths):
                    maps = [read_image(q) for q in paths]
                    if all(m.ndim == 2 and m.shape == im.shape[:2] for m, im in zip(maps, images)):
                        labels = stack_or_list(maps)
            caps = [self.captions.get(p.name) for p in files]
            yield SampleBatch(
                images=stack_or_list(images),
                ids=[p.name for p in files],
                label_maps=labels if isinstance(labels, np.ndarray) else None,
                conditions=[c[1] if c else None for c in caps] if any(c and c[1] for c in caps) else None,
                captions=[c[0] if c else "" for c in caps] if any(caps) else None,
            )
