"""Issue 19 audit, "Bad input", through the command line (in process): each case either is one ``error:`` line with
exit 2 or a "not applicable" row with exit 0.

- a generated set without label maps (``images`` without ``labelmaps/``): not-applicable rows for seg-utility and
  anatomy-faithfulness, and condition-fidelity's for an unconditional generator; exit 0, no number;
- a reference without label maps names the sources that have them; fewer than 10 labelled test images; a folder
  label map with values outside the table, of another size than its image or in colour (named by file): exit 2,
  one line.
- these reference problems are known from the plan (``Task.check_plan``): they leave no run row and no image
  folder behind.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.cli import run_cli
from harness.store import Store

TINY = ["--task-option", "seg-utility.size=32", "--task-option", "seg-utility.channels=8,16", "--task-option",
        "seg-utility.steps=2", "--task-option", "seg-utility.seeds=1", "--task-option", "seg-utility.res_units=0"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """12 labelled phantom test frames at 64 px (images/ + labelmaps/)."""
    out = tmp_path_factory.mktemp("export") / "frames"
    assert run_cli(["data", "export", "phantom:test", "--n", "12", "--size", "64", "--out", str(out)]) == 0
    return out


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = run_cli(list(args))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning: ")]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1, err
    return errors[0]


def test_images_without_label_maps_are_not_applicable_rows(exported, tmp_path, capsys):
    folder = tmp_path / "only_images"
    shutil.copytree(exported / "images", folder)
    rc, out, err = _cli(capsys, "run", "-g", "images", "--images", str(folder), "-t", "seg-utility", "-t",
                        "anatomy-faithfulness", "-t", "condition-fidelity", "--n", "12", "--json", *TINY)
    assert rc == 0, err
    rows = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    assert [(r["task"], r["metric"]) for r in rows] == [("seg-utility", "mean_dice"), ("anatomy-faithfulness", "mean_dice"),
                                                        ("condition-fidelity", "condition_accuracy")]
    assert all(r["value"] is None and r["ci_low"] is None and r["n"] == 0 for r in rows)
    assert rows[0]["not_applicable"] == rows[1]["not_applicable"] == \
        "not applicable: this generator does not produce labels (its image set has no label maps)"
    assert rows[2]["not_applicable"].startswith("not applicable: unconditional generator")
    (run,) = Store().runs()
    assert run.status == "ok"


def _ref_without_labels(exported: Path, tmp_path: Path) -> Path:
    ref = tmp_path / "ref_nolabels"
    shutil.copytree(exported / "images", ref / "images")
    return ref


def _ref_bad_value(exported: Path, tmp_path: Path) -> Path:
    ref = tmp_path / "ref_bad"
    shutil.copytree(exported, ref)
    p = sorted((ref / "labelmaps").glob("*.png"))[4]
    a = np.asarray(Image.open(p)).copy()
    a[0, 0] = 42
    Image.fromarray(a).save(p)
    return ref


CASES = {
    "reference-without-labels": (lambda e, t: ["--reference", f"folder:{_ref_without_labels(e, t)}"],
                                 r"reference set has no label maps \(sources with label maps: phantom .*camus .*"
                                 r"echonet .*folder:DIR with a labelmaps/ folder.*choose one with --reference"),
    "fewer-than-10-labelled": (lambda e, t: ["--n-ref", "9"], r"has 9 labelled images; at least 10 are needed"),
    "label-value-outside-table": (lambda e, t: ["--reference", f"folder:{_ref_bad_value(e, t)}"],
                                  r"label map .*ref_bad/labelmaps/\S+\.png: label value\(s\) \[42\] are not in the "
                                  r"folder label table"),
    "label-map-of-another-size": (lambda e, t: ["--reference", f"folder:{_ref_resized(e, t)}"],
                                  r"label map .*ref_size/labelmaps/\S+\.png is 32×32 but its image \S+ is 64×64"),
    "label-map-in-colour": (lambda e, t: ["--reference", f"folder:{_ref_rgb(e, t)}"],
                            r"label map .*ref_rgb/labelmaps/\S+\.png has 3 channels"),
}


def _ref_resized(exported: Path, tmp_path: Path) -> Path:
    ref = tmp_path / "ref_size"
    shutil.copytree(exported, ref)
    p = sorted((ref / "labelmaps").glob("*.png"))[2]
    Image.open(p).resize((32, 32), Image.NEAREST).save(p)
    return ref


def _ref_rgb(exported: Path, tmp_path: Path) -> Path:
    ref = tmp_path / "ref_rgb"
    shutil.copytree(exported, ref)
    p = sorted((ref / "labelmaps").glob("*.png"))[0]
    Image.open(p).convert("RGB").save(p)
    return ref


@pytest.mark.parametrize("case", sorted(CASES))
def test_reference_problems_are_one_line_exit_2(case, exported, tmp_path, capsys):
    extra, pattern = CASES[case]
    rc, _, err = _cli(capsys, "run", "-g", "labelmap", "-t", "seg-utility", "--n", "12", "--json",
                      *extra(exported, tmp_path), *TINY)
    assert rc == 2
    assert re.search(pattern, _one_error_line(err)), err


@pytest.mark.parametrize("case", sorted(CASES))
def test_reference_problems_leave_nothing_behind(case, exported, tmp_path, capsys):
    extra, _ = CASES[case]
    home = tmp_path / "runs"
    rc, _, _ = _cli(capsys, "run", "-g", "labelmap", "-t", "seg-utility", "--n", "12", "--out", str(home),
                    *extra(exported, tmp_path), *TINY)
    assert rc == 2
    assert Store().runs() == [] and not home.exists()


def test_palette_label_maps_are_read_as_their_indices(exported, tmp_path, capsys):
    """A palette PNG label map (the format of many annotation tools) holds label values as palette indices: read
    as such, not refused as colour."""
    ref = tmp_path / "ref_palette"
    shutil.copytree(exported, ref)
    for p in (ref / "labelmaps").glob("*.png"):
        im = Image.fromarray(np.asarray(Image.open(p)).astype(np.uint8), mode="L").convert("P")
        im.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)])
        im.save(p)
        assert Image.open(p).mode == "P"
    from harness.data.folder import FolderSource

    src = FolderSource(str(ref))
    src.check_label_maps("all", 12)
    (batch,) = list(src.iter_batches("all", 12, batch_size=12))
    want = np.stack([np.asarray(Image.open(exported / "labelmaps" / (Path(i).stem + ".png"))) for i in batch.ids])
    np.testing.assert_array_equal(batch.label_maps, want)
