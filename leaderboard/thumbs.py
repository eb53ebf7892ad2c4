"""Pictures for the leaderboard: a thumbnail strip per generator and the side-by-side gallery.

Images come from each run's image set (``run.imageset_path``: ``images/*.png`` + ``manifest.jsonl``), never
regenerated. The gallery lines up images by the condition each manifest line records (the same phantom
condition / label map rendered by every generator), next to a real image of that condition; sets without
conditions are lined up by index. Output is deterministic (same files → same PNG bytes).
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from leaderboard.data import sample_images

log = logging.getLogger(__name__)

THUMB_PX = 64  # height of one thumbnail
STRIP_K = 4  # thumbnails per strip


def _open(path: Path, size: int) -> Image.Image | None:
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((size, size), Image.Resampling.LANCZOS)
            return im.copy()
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s for a thumbnail: %s", path, exc)
        return None


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)  # no text chunks, no timestamp: same pixels → same bytes
    return buf.getvalue()


def thumbnail(path: str | Path, size: int = 192) -> bytes | None:
    """One image as a PNG no larger than ``size``² (``None`` if it cannot be read)."""
    im = _open(Path(path), size)
    return None if im is None else _png(im)


def strip(paths: Sequence[Path], height: int = THUMB_PX, k: int = STRIP_K, gap: int = 2) -> bytes | None:
    """The first ``k`` images side by side, each ``height`` px tall, as one PNG; ``None`` when none is readable."""
    ims = [im for im in (_open(p, height) for p in list(paths)[:k]) if im is not None]
    if not ims:
        return None
    width = sum(im.width for im in ims) + gap * (len(ims) - 1)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    x = 0
    for im in ims:
        canvas.paste(im, (x, (height - im.height) // 2))
        x += im.width + gap
    return _png(canvas)


def strip_for(imageset_path: str | None, height: int = THUMB_PX, k: int = STRIP_K) -> bytes | None:
    """The thumbnail strip of a run's image set (``None`` when the set is not on this machine)."""
    return strip(sample_images(imageset_path, k), height, k)


def data_uri(png: bytes | None) -> str | None:
    """A ``data:image/png;base64,…`` URI (what Streamlit's ImageColumn and a static page can show inline)."""
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def manifest(imageset_path: str | None) -> list[dict]:
    """The manifest lines of an image set (index, file, condition, …) whose image exists, in index order;
    [] when the set is missing. A line that is not JSON (a run killed mid-write) ends the list."""
    if not imageset_path:
        return []
    root = Path(imageset_path)
    path = root / "manifest.jsonl"
    out = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break
            if isinstance(entry, dict) and entry.get("file") and (root / str(entry["file"])).is_file():
                out.append(entry)
    elif (root / "images").is_dir():  # a bare folder of images
        out = [{"index": i, "file": f"images/{p.name}"} for i, p in enumerate(sample_images(imageset_path, 10**9))]
    return sorted(out, key=lambda e: e.get("index", 0))


def gallery_sets(keys, paths, baselines) -> tuple[dict[str, str | None], str | None]:
    """Gallery columns from the leaderboard's rows (``(generator, checkpoint)`` keys, image-set paths, baseline
    roles, in table order): one image set per generator (its first row) and the generator of the real images
    (the noise floor)."""
    sets: dict[str, str | None] = {}
    real = None
    for (g, _c), path, base in zip(keys, paths, baselines):
        if g not in sets:
            sets[g] = path
            if base == "noise floor" and real is None:
                real = g
    return sets, real


def gallery(sets: dict[str, str | None], real: str | None = None,
            rows: int = 4) -> tuple[list[str], list[dict[str, Path]], list[str]]:
    """Line up images of several image sets: ``sets`` maps a column name (generator) to its image set path;
    ``real`` names the column of real images, put first.

    Returns ``(columns, rows, unconditional)``: each row maps column → image path and has the key
    ``"condition"`` when the row is one condition (in each set the image of the same source label map as the
    first column's, else the first image of that condition); sets that record no condition
    (``unconditional``) show their i-th image in row i. Without shared conditions rows are image indices.
    ``rows`` rows at most; conditions in sorted order.
    """
    names = ([real] if real in sets else []) + [g for g in sets if g != real]
    entries = {g: manifest(sets[g]) for g in names}
    entries = {g: e for g, e in entries.items() if e}
    names = [g for g in names if g in entries]
    if not names:
        return [], [], []
    by_cond: dict[str, dict[str, Path]] = {}
    sources: dict[str, str] = {}  # condition → source_id of the first set's image (the real one when present)
    for g in names:
        root = Path(sets[g])
        for e in entries[g]:
            cond = e.get("condition")
            if not cond:
                continue
            row = by_cond.setdefault(str(cond), {})
            same = e.get("source_id") is not None and sources.get(str(cond)) == e.get("source_id")
            if g not in row or same:  # the same label map as the first column's image wins over the first found
                row[g] = root / e["file"]
                if str(cond) not in sources and e.get("source_id") is not None:
                    sources[str(cond)] = e["source_id"]
    shared = [c for c in sorted(by_cond) if len(by_cond[c]) >= 2]
    unconditional = [g for g in names if not any(e.get("condition") for e in entries[g])]
    if shared:
        out = [{"condition": c, **by_cond[c]} for c in shared[:rows]]
        for i, row in enumerate(out):
            row.update({g: Path(sets[g]) / entries[g][i]["file"] for g in unconditional if i < len(entries[g])})
        return names, out, unconditional
    out = []
    for i in range(rows):
        row = {g: Path(sets[g]) / entries[g][i]["file"] for g in names if i < len(entries[g])}
        if row:
            out.append(row)
    return names, out, unconditional
