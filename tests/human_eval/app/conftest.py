"""Tiny image sources for rating-app tests: four folders of small PNGs (one a real image set)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SOURCES = ("real", "cut", "cyclegan", "sd")


def write_pngs(folder: Path, n: int, size: int = 32, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"{i:06d}.png"
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8), mode="L").save(p)
        paths.append(p)
    return paths


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    """``{source: folder}`` with 12 images each; ``real`` is an image set (manifest.jsonl)."""
    import numpy as np

    from harness.imageset import ImageSet

    out = {}
    for k, s in enumerate(SOURCES):
        if s == "real":
            iset = ImageSet.open(tmp_path / "sets" / s, {"generator": "real"}, key="k")
            rng = np.random.default_rng(k)
            iset.write_batch(0, rng.integers(0, 255, (12, 32, 32), dtype=np.uint8))
            out[s] = tmp_path / "sets" / s
        else:
            write_pngs(tmp_path / "sets" / s, 12, seed=k)
            out[s] = tmp_path / "sets" / s
    return out
