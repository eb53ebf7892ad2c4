"""The small I/O layer every module shares: atomic writes, file hashes, image reading/listing, JSON-safe values.

One implementation of each; nothing else in the project writes a file in place, hashes a file, decodes an image
or turns results into JSON by itself.

- :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`atomic_write_json` / :func:`atomic_write`:
  write to a temporary file in the destination folder, then ``os.replace`` (a reader never sees half a file; a
  crash leaves the old file or none).
- :func:`sha256_file`, :func:`sha256_bytes`.
- :data:`IMAGE_SUFFIXES`, :func:`list_images`, :func:`read_image` (``mode="keep"``: grey stays (H, W), colour
  is (H, W, 3); ``mode="rgb"``: always (H, W, 3)); unreadable files are a :class:`DataError` naming the file.
- :func:`jsonable`: dataclasses, numpy scalars/arrays, paths and non-finite floats (→ ``None``) made JSON-safe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError

#: Image file suffixes EchoBench reads (lower case).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


# atomic writes ----------------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary path in ``path``'s folder, then rename it to ``path``.

    The temporary file is removed if ``write`` fails (or is interrupted); the folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """``obj`` as indented, key-sorted JSON (through :func:`jsonable`), written atomically."""
    atomic_write_bytes(path, (json.dumps(jsonable(obj), indent=2, sort_keys=True) + "\n").encode())


# hashes -----------------------------------------------------------------------------------------
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# images -----------------------------------------------------------------------------------------
def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix, case-insensitive, hidden files skipped), sorted by name."""
    return sorted((p for p in Path(folder).iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
                  key=lambda p: p.name)


def read_image(path: str | os.PathLike, mode: str = "keep") -> np.ndarray:
    """Read one image as uint8.

    ``mode="keep"``: grey (1-bit, L, LA, 16-bit, float) → (H, W); anything else → RGB (H, W, 3) (palette and alpha
    converted). ``mode="rgb"``: always (H, W, 3). 16-bit images are scaled to 0..255, float images in [0, 1] × 255.
    A missing, unreadable or truncated file raises :class:`DataError` naming it.
    """
    from PIL import Image, UnidentifiedImageError

    if mode not in ("keep", "rgb"):
        raise ValueError(f"mode must be 'keep' or 'rgb', not {mode!r}")
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                top = 65535.0 if im.mode.startswith("I;16") else max(float(arr.max()), 1.0)
                out = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
            elif im.mode == "F":
                arr = np.asarray(im, dtype=np.float64)
                out = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8)
            elif im.mode in ("1", "L", "LA"):
                out = np.asarray(im.convert("L"), dtype=np.uint8).copy()
            else:
                out = np.asarray(im if im.mode == "RGB" else im.convert("RGB"), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise DataError(f"{path}: image file does not exist (or disappeared while reading)") from None
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read image ({exc}); the file is corrupt or truncated - remove or "
                        f"replace it") from None
    if mode == "rgb" and out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return out


# JSON -------------------------------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """A JSON-safe copy of ``value``: dataclasses → dicts, numpy arrays → lists, numpy scalars → Python numbers,
    paths → strings, NaN/±inf → ``None``, dict keys → strings; objects with a ``fingerprint()`` (data sources)
    → their fingerprint. Anything else is returned as is (``json.dumps(default=str)`` decides)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return jsonable(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "fingerprint") and callable(value.fingerprint) and not isinstance(value, type):
        return jsonable(value.fingerprint())
    return value
