"""The CLI commands of the spine: list, describe, data export, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from harness.runner import RunRequest, run


def harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=300, env=os.environ)


def test_list_shows_every_kind_with_origin_and_status():
    proc = harness("list")
    assert proc.returncode == 0, proc.stderr
    for name in ("real", "labelmap", "images", "cyclegan", "sd-lora", "fid", "diversity", "radiomics", "inception", "phantom", "echonet"):
        assert name in proc.stdout
    assert "built-in" in proc.stdout
    # the Inception weights are absent in tests: the listing says so instead of failing
    inception_line = next(line for line in proc.stdout.splitlines() if "inception" in line and "random" not in line)
    assert "ok" not in inception_line.split("│")[-2]


def test_list_unknown_kind_is_exit_2():
    proc = harness("list", "generator")
    assert proc.returncode == 2 and "Did you mean 'generators'" in proc.stderr


def test_describe_generator_with_parameter_counts():
    proc = harness("describe", "generator", "cyclegan", "--preset", "paper")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["networks"]["G_A"]["parameters"] == 54_409_603  # unet_256, instance norm
    assert info["networks"]["D_A"]["parameters"] == 2_764_737  # 70x70 PatchGAN
    bad = harness("describe", "generator", "cyclegan", "--preset", "huge")
    assert bad.returncode == 2 and "paper" in bad.stderr


def test_data_export_phantom_with_injected_tint(tmp_path):
    out = tmp_path / "phantom"
    proc = harness("data", "export", "phantom", "--n", "20", "--size", "64", "--out", str(out), "--inject", "tint:0.25:orange")
    assert proc.returncode == 0, proc.stderr
    assert len(list((out / "images").glob("*.png"))) == 20 and len(list((out / "labelmaps").glob("*.png"))) == 20
    injected = pd.read_csv(out / "injected.csv")
    assert 0 < (injected["fault"].fillna("") != "").sum() < 20
    again = harness("data", "export", "phantom", "--n", "5", "--out", str(out))
    assert again.returncode == 2 and "--overwrite" in again.stderr.replace("\n", " ")
    bad = harness("data", "export", "phantom", "--n", "5", "--out", str(tmp_path / "x"), "--inject", "tint:lots")
    assert bad.returncode == 2 and "tint" in bad.stderr


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_results(tmp_path, fmt):
    out = run(RunRequest(generator="labelmap", tasks=["fid"], features="radiomics", n=10))
    path = tmp_path / f"results.{fmt}"
    proc = harness("export", "--format", fmt, "--out", str(path))
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    assert set(frame["run_id"]) == {out.run_id}
    assert {"generator", "checkpoint_hash", "data", "seed", "task", "metric", "value", "ci_low", "ci_high",
            "feature_space", "created"} <= set(frame.columns)
    assert harness("export", "--format", "xlsx", "--out", str(path)).returncode == 2
