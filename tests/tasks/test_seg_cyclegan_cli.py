"""Issue 19's "done when" on a micro CycleGAN checkpoint: `harness run --generator cyclegan --checkpoint CK --task
seg-utility --task anatomy-faithfulness --features radiomics` prints Dice per structure with CIs for both tasks (the
label maps CycleGAN translated reach the tasks through the image set's manifest)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.cli import run_cli
from tests.generators.test_cyclegan import MICRO

pytestmark = pytest.mark.usefixtures("torch_one_thread")  # ~10 s: a micro CycleGAN fit + 2 tiny models

TASK_OPTS = {"size": 32, "channels": "8,16", "steps": 20, "res_units": 0, "n_boot": 50}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from generators.cyclegan import CycleGANGenerator
    from harness.data.phantom import PhantomSource

    out = tmp_path_factory.mktemp("cyclegan")
    CycleGANGenerator().fit(PhantomSource.from_spec("train", size=32)[0], out, MICRO)
    return out


def test_cyclegan_checkpoint_seg_utility_and_anatomy_faithfulness(checkpoint, capsys):
    args = ["run", "--generator", "cyclegan", "--checkpoint", str(checkpoint), "--task", "seg-utility", "--task",
            "anatomy-faithfulness", "--features", "radiomics", "--n", "16", "--n-ref", "12", "--n-train", "16", "--json"]
    for task in ("seg-utility", "anatomy-faithfulness"):
        args += [a for k, v in TASK_OPTS.items() for a in ("--task-option", f"{task}.{k}={v}")]
    args += ["--task-option", "seg-utility.seeds=1"]
    capsys.readouterr()
    rc = run_cli(args)
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    rows = [json.loads(ln) for ln in cap.out.splitlines() if ln.strip()]
    by_task: dict[str, dict] = {}
    for r in rows:
        by_task.setdefault(r["task"], {})[r["metric"]] = r
    assert set(by_task) == {"seg-utility", "anatomy-faithfulness"}
    for task, got in by_task.items():
        assert "not_applicable" not in got["mean_dice"], got["mean_dice"]
        assert {"mean_dice", "dice_lv", "dice_la"} <= set(got), (task, sorted(got))
        m = got["mean_dice"]
        assert 0 <= m["value"] <= 1 and m["ci_low"] <= m["value"] <= m["ci_high"]
        assert np.isfinite(got["dice_lv"]["value"])
    assert by_task["seg-utility"]["mean_dice"]["n"] == 12  # tested on the 12 labelled reference images
    assert by_task["anatomy-faithfulness"]["mean_dice"]["n"] == 16  # every generated image scored
