"""Export samples of a data source to a plain folder that any tool can read.

Layout of ``out_dir``::

    images/000000.png ...     8-bit L (grayscale sources) or RGB
    labelmaps/000000.png ...  8-bit label values (when the source has label maps)
    captions.csv              file, caption, condition, id   (file names relative to images/)
    injected.csv              file, fault, copied_from       (one row per image; only when faults were injected)
    export.json               source fingerprint, split, n, start, seed

The folder is written into a temporary sibling and renamed into place, so ``out_dir`` either does not
exist or is complete. A non-empty ``out_dir`` is refused unless ``overwrite=True``. The folder is readable
again with the ``folder`` data source (``folder:OUT_DIR``).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from harness.data.base import DataSource
from harness.errors import DataError, UsageError

log = logging.getLogger(__name__)


def _save_png(array: np.ndarray, path: Path) -> None:
    mode = "L" if array.ndim == 2 else "RGB"
    Image.fromarray(np.ascontiguousarray(array), mode=mode).save(path, format="PNG", compress_level=1)


def export_data(source: DataSource, split: str, n: int, out_dir: str | Path, *, seed: int | None = None,
                start: int = 0, batch_size: int = 64, overwrite: bool = False,
                progress: Callable[[int], None] | None = None) -> Path:
    """Write samples ``start .. start+n-1`` of ``split`` to ``out_dir`` (layout in the module docstring).

    Parameters
    ----------
    source, split : the data source and split to export.
    n : number of samples (``n >= 2``; bounded by ``source.count(split)`` for finite sources).
    out_dir : the folder to create.
    seed : recorded in ``export.json`` (the source's own seed option decides the samples).
    progress : called as ``progress(k)`` with the number of samples written by each batch (as the runner's
        progress callbacks).

    Returns
    -------
    The path of the completed folder.
    """
    out = Path(out_dir).expanduser()
    if n < 1:
        raise UsageError(f"export: --n must be at least 1 (got {n})")
    available = source.count(split)
    if available is not None and start + n > available:
        raise UsageError(f"export: {source.name} split {split!r} has {available} samples; "
                         f"asked for {start}..{start + n - 1}")
    if out.exists():
        if not out.is_dir():
            raise DataError(f"export: {out} exists and is not a directory")
        if any(out.iterdir()) and not overwrite:
            raise DataError(f"export: {out} is not empty; choose another --out or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write(source, split, n, start, batch_size, tmp, progress)
        meta = {"source": source.fingerprint(), "split": split, "n": n, "start": start, "seed": seed}
        (tmp / "export.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %d %s/%s samples to %s", n, source.name, split, out)
    return out


def _write(source: DataSource, split: str, n: int, start: int, batch_size: int, tmp: Path,
           progress: Callable[[int], None] | None) -> None:
    images_dir = tmp / "images"
    images_dir.mkdir()
    labels_dir = None
    captions, injected = [], []
    any_fault = False
    done = 0
    for batch in source.iter_batches(split, n, start=start, batch_size=batch_size):
        for j in range(len(batch)):
            name = f"{start + done + j:06d}.png"
            _save_png(batch.images[j], images_dir / name)
            if batch.label_maps is not None:
                if labels_dir is None:
                    labels_dir = tmp / "labelmaps"
                    labels_dir.mkdir()
                _save_png(batch.label_maps[j], labels_dir / name)
            captions.append((name, batch.captions[j] if batch.captions else "",
                             (batch.conditions[j] or "") if batch.conditions else "", batch.ids[j]))
            if "injected" in batch.extra:
                fault = batch.extra["injected"][j]
                any_fault = any_fault or bool(fault)
                copied = batch.extra.get("copied_from", [None] * len(batch))[j]
                injected.append((name, fault or "", copied or ""))
        done += len(batch)
        if progress is not None:
            progress(len(batch))
    with (tmp / "captions.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "caption", "condition", "id"])
        w.writerows(captions)
    if any_fault or _declares_faults(source):
        with (tmp / "injected.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "fault", "copied_from"])
            w.writerows(injected)


def _declares_faults(source: DataSource) -> bool:
    return bool(getattr(source, "faults", None))
