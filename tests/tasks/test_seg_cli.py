"""End to end: `harness run --generator real --task seg-utility` with tiny task options (needs the runner wiring of
issue 17: label maps, conditions, the real training split, cache dir and device in the TaskContext)."""

from __future__ import annotations

import json

from tests.test_cli import harness

TINY = ["seg-utility.size=64", "seg-utility.channels=8,16,32", "seg-utility.res_units=0", "seg-utility.steps=40",
        "seg-utility.batch_size=8", "seg-utility.seeds=1", "seg-utility.n_boot=100"]


def seg_rows(*args: str) -> dict[str, dict]:
    """``harness run ARGS --json`` with the tiny seg-utility options: exit 0, the rows by metric."""
    proc = harness(*args, "--json", *[a for opt in TINY for a in ("--task-option", opt)])
    assert proc.returncode == 0, proc.stderr
    return {r["metric"]: r for r in map(json.loads, proc.stdout.splitlines())}


def test_cli_seg_utility_on_real():
    args = ["run", "--generator", "real", "--task", "seg-utility", "--n", "12", "--n-ref", "12", "--n-train", "24"]
    rows = seg_rows(*args)
    assert {"mean_dice", "dice_lv", "hd95_lv", "dice_la"} <= set(rows)
    assert 0 < rows["mean_dice"]["value"] <= 1 and rows["mean_dice"]["n"] == 12
    assert all(r["task"] == "seg-utility" for r in rows.values())
    # the second run loads the cached segmenter (same data, task options, seed) and prints the same numbers
    again = seg_rows(*args)
    assert {m: r["value"] for m, r in again.items()} == {m: r["value"] for m, r in rows.items()}


def test_cli_seg_utility_tests_on_a_users_labelled_folder(tmp_path):
    """`--reference folder:DIR` with images/ + labelmaps/ (phantom label values, LV = 3): the segmenter trained on
    the generated images is tested on the user's labelled frames, per structure found in their label maps."""
    import numpy as np
    from PIL import Image

    ref = tmp_path / "my_frames"
    proc = harness("data", "export", "phantom:test", "--n", "14", "--size", "64", "--out", str(ref))
    assert proc.returncode == 0, proc.stderr
    assert len(list((ref / "labelmaps").glob("*.png"))) == 14
    # keep only the LV in the user's label maps: the results must then be LV only
    for p in (ref / "labelmaps").glob("*.png"):
        lm = np.asarray(Image.open(p))
        Image.fromarray(np.where(lm == 3, 3, 0).astype(np.uint8)).save(p)
    rows = seg_rows("run", "--generator", "labelmap", "--task", "seg-utility", "--reference", f"folder:{ref}", "--n", "16")
    assert {m for m in rows if m.startswith("dice_")} == {"dice_lv"}, sorted(rows)
    assert rows["mean_dice"]["n"] == 14 and 0 <= rows["mean_dice"]["value"] <= 1
