"""Contact sheets: small PNG galleries that tasks store as run artifacts.

``contact_sheet(images, captions, path)`` lays out thumbnails in a grid with one caption line under each;
``pair_sheet(pairs, captions, path)`` puts two images side by side per cell (e.g. a generated image and its
nearest training image). Images are uint8 (H, W) or (H, W, 3) of any size; thumbnails keep the aspect
ratio. Only Pillow is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness.data.base import to_rgb
from harness.errors import UsageError

CAPTION_H = 14
PAD = 4
BACKGROUND = (32, 32, 32)
TEXT = (235, 235, 235)


def _thumb(image: np.ndarray, size: int):
    from PIL import Image

    im = Image.fromarray(to_rgb(np.asarray(image, dtype=np.uint8)))
    im.thumbnail((size, size), Image.BILINEAR)
    return im


def _sheet(cells: Sequence[Sequence[np.ndarray]], captions: Sequence[str], path: str | Path, thumb: int,
           cols: int, title: str | None) -> Path:
    from PIL import Image, ImageDraw

    if len(cells) != len(captions):
        raise UsageError(f"gallery: {len(cells)} cells but {len(captions)} captions")
    if thumb < 8 or cols < 1:
        raise UsageError(f"gallery: thumb ≥ 8 and cols ≥ 1 needed (got {thumb}, {cols})")
    per = max((len(c) for c in cells), default=1)
    cell_w, cell_h = per * thumb + (per - 1) * 2, thumb + CAPTION_H
    n = max(len(cells), 1)
    cols = min(cols, n)
    rows = -(-n // cols)
    top = CAPTION_H + PAD if title else 0
    sheet = Image.new("RGB", (cols * (cell_w + PAD) + PAD, top + rows * (cell_h + PAD) + PAD), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((PAD, 2), title, fill=TEXT)
    if not cells:
        draw.text((PAD, top + PAD), "(nothing to show)", fill=TEXT)
    for i, (cell, caption) in enumerate(zip(cells, captions)):
        x0 = PAD + (i % cols) * (cell_w + PAD)
        y0 = top + PAD + (i // cols) * (cell_h + PAD)
        for j, image in enumerate(cell):
            sheet.paste(_thumb(image, thumb), (x0 + j * (thumb + 2), y0))
        draw.text((x0, y0 + thumb + 1), str(caption)[: max(4, cell_w // 6)], fill=TEXT)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path


def contact_sheet(images: Sequence[np.ndarray], captions: Sequence[str], path: str | Path, *, thumb: int = 128,
                  cols: int = 8, title: str | None = None) -> Path:
    """Write a grid of thumbnails with a caption under each to ``path`` (PNG); returns the path."""
    return _sheet([[im] for im in images], captions, path, thumb, cols, title)


def pair_sheet(pairs: Sequence[tuple[np.ndarray, np.ndarray]], captions: Sequence[str], path: str | Path, *,
               thumb: int = 128, cols: int = 4, title: str | None = None) -> Path:
    """Write a grid of side-by-side image pairs (left, right) with a caption under each pair (PNG)."""
    return _sheet([list(p) for p in pairs], captions, path, thumb, cols, title)
