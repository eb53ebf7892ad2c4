"""Checks of command-line values that must pass before anything is written (the run's plan stage).

Each raises :class:`~harness.errors.UsageError` (exit code 2, one line) naming the option and what to do:

- :func:`validate_device`: ``--device`` is ``auto``, ``cpu``, ``cuda``, ``cuda:N`` (N < the GPUs present) or ``mps``,
  and the device exists on this machine;
- :func:`check_output_file` / :func:`check_output_dir`: an output path is not the other kind of thing and can be
  made (its nearest existing parent is a writable folder);
- :func:`check_image_size`: images have at least :data:`MIN_IMAGE_SIDE` pixels per side.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from harness.errors import DataError, UsageError

#: Smallest image side EchoBench scores (feature extractors, MS-SSIM and the sector geometry need a few pixels).
MIN_IMAGE_SIDE = 8
_DEVICE = re.compile(r"(cpu|cuda|mps)(?::([0-9]+))?")


def validate_device(device: str, option: str = "--device") -> str:
    """Check ``device`` and return it normalised (``"auto"`` stays ``"auto"``: resolved where it is used).

    torch is imported only for a GPU device, so ``auto``/``cpu`` cost nothing.
    """
    value = str(device).strip().lower()
    if value in ("auto", "cpu"):
        return value
    m = _DEVICE.fullmatch(value)
    if m is None:
        raise UsageError(f"{option} {device!r} is not a device; use auto (GPU if present), cpu, cuda, cuda:N or mps")
    kind, index = m.group(1), m.group(2)
    if kind == "cpu":
        return "cpu"
    import torch

    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UsageError(f"{option} {device!r}: no Apple GPU (MPS) on this machine; use --device cpu or auto")
        return value
    if not torch.cuda.is_available():
        raise UsageError(f"{option} {device!r}: no CUDA GPU is visible on this machine (check CUDA_VISIBLE_DEVICES "
                         "and the driver); use --device cpu or auto")
    count = torch.cuda.device_count()
    if index is not None and int(index) >= count:
        raise UsageError(f"{option} {device!r}: this machine has {count} GPU(s), cuda:0..cuda:{count - 1}")
    return value


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_creatable(path: Path, option: str) -> None:
    anchor = _nearest_existing(path.parent if not path.exists() else path)
    if anchor.exists() and not anchor.is_dir():
        raise UsageError(f"{option} {path}: {anchor} is a file, so {path} cannot be created inside it")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: the folder {anchor} is not writable")


def check_output_file(path: Path | str, option: str = "--out") -> Path:
    """``path`` can be written as a file (it is not a folder; its folder exists or can be made)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; give a file name, e.g. {path / 'results.csv'}")
    if not path.name:
        raise UsageError(f"{option} {str(path)!r} is not a file name")
    _check_creatable(path, option)
    return path


def check_output_dir(path: Path | str, option: str = "--out", *, must_be_empty: bool = False,
                     hint: str = "choose another folder") -> Path:
    """``path`` can be used as an output folder (it is not a file; it exists or can be made; with
    ``must_be_empty``, it holds nothing yet)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file; give a folder (it is created when missing)")
    if must_be_empty and path.is_dir() and any(path.iterdir()):
        raise UsageError(f"{option} {path} is not empty; {hint}")
    _check_creatable(path / "x", option)
    return path


def check_image_size(shape: tuple[int, ...], where: str) -> None:
    """DataError when an image of ``shape`` (H, W[, C]) is smaller than :data:`MIN_IMAGE_SIDE` on a side."""
    if len(shape) < 2 or min(shape[0], shape[1]) < MIN_IMAGE_SIDE:
        size = "×".join(str(s) for s in shape[:2]) or "empty"
        raise DataError(f"{where} is {size} pixels; EchoBench needs images of at least {MIN_IMAGE_SIDE}×{MIN_IMAGE_SIDE} "
                        "(remove or re-export the tiny images)")
