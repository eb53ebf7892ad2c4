"""Thumbnail strips and the gallery's alignment on small hand-made image sets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from leaderboard import thumbs


def _set(root: Path, entries: list[dict], value: int) -> str:
    (root / "images").mkdir(parents=True)
    lines = []
    for i, e in enumerate(entries):
        Image.fromarray(np.full((32, 32), value + i, np.uint8)).save(root / "images" / f"{i:06d}.png")
        lines.append(json.dumps({"index": i, "file": f"images/{i:06d}.png", **e}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return str(root)


def test_gallery_lines_up_the_same_label_map_and_condition(tmp_path):
    real = _set(tmp_path / "real", [{"condition": "lvh", "source_id": "p/1"}, {"condition": "asd", "source_id": "p/2"},
                                    {"condition": "lvh", "source_id": "p/3"}], 10)
    label = _set(tmp_path / "labelmap", [{"condition": "lvh", "source_id": "p/3"}, {"condition": "lvh", "source_id": "p/1"},
                                         {"condition": "asd", "source_id": "p/2"}], 50)
    gan = _set(tmp_path / "gan", [{"condition": "asd"}, {"condition": "lvh"}], 90)
    folder = _set(tmp_path / "folder", [{}, {}], 130)
    names, rows, uncond = thumbs.gallery({"gan": gan, "labelmap": label, "folder": folder, "real": real}, "real")
    assert names == ["real", "gan", "labelmap", "folder"] and uncond == ["folder"]
    assert [r["condition"] for r in rows] == ["asd", "lvh"]
    lvh = rows[1]
    assert lvh["real"].name == "000000.png" and lvh["labelmap"].name == "000001.png"  # same source label map p/1
    assert lvh["gan"].name == "000001.png"  # same condition
    assert rows[0]["folder"].name == "000000.png" and lvh["folder"].name == "000001.png"  # i-th image
    assert thumbs.gallery({"x": str(tmp_path / "missing")}) == ([], [], [])


def test_strip_is_deterministic_and_sized(tmp_path):
    real = _set(tmp_path / "real", [{}] * 5, 10)
    a, b = thumbs.strip_for(real, height=40, k=3), thumbs.strip_for(real, height=40, k=3)
    assert a == b
    with Image.open(io.BytesIO(a)) as im:
        assert im.size == (3 * 32 + 2 * 2, 40)  # 32 px images are not enlarged; the strip is 40 px tall
    assert thumbs.data_uri(a).startswith("data:image/png;base64,")
    assert thumbs.strip_for(str(tmp_path / "nowhere")) is None and thumbs.data_uri(None) is None
