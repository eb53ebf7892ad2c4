"""A two-process run killed mid-generation resumes: nothing written is regenerated, the result is the same."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import psutil
import pytest

from harness.runner import RunRequest, run
from tests.scale.helpers import HARNESS, env_for, harness, leftovers, manifests, metrics
from tests.slowgen import PATH as SLOWGEN


def _shard_lines(home):
    return [json.loads(x) for p in home.glob("*/*/manifest.rank*.jsonl") for x in p.read_text().splitlines()
            if x.strip().endswith("}")]


def _proc(pid):
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def test_killed_two_process_run_resumes_to_the_images_and_result_of_one(tmp_path):
    plugin = SLOWGEN
    gen = f"{plugin}:SlowLabelMap"
    args = ["run", "--generator", gen, "--task", "fid", "--features", "radiomics", "--n", "32", "--batch-size", "2",
            "--json", "--num-processes", "2"]
    env = env_for(tmp_path / "two")
    home = tmp_path / "two" / "runs"
    proc = subprocess.Popen([*HARNESS, *args], env={**os.environ, **env, "ECHOBENCH_TEST_DELAY": "0.4"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            lines = _shard_lines(home)
            if {e["index"] < 16 for e in lines} == {True, False}:  # both ranks have written images
                break
            time.sleep(0.05)
        else:
            pytest.fail("generation never started on both ranks")
    finally:  # kill everything at once, like a lost machine (torchrun starts the workers in their own sessions)
        family = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
        for pid in reversed(family):
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=60)
        psutil.wait_procs([p for p in map(_proc, family) if p is not None], timeout=60)
    gen_sets = [p for p in home.glob("*/*/") if "_reference" not in str(p)]
    assert len(gen_sets) == 1 and not (gen_sets[0] / "manifest.jsonl").exists()  # nothing merged yet
    written = [e["index"] for e in _shard_lines(home)]
    assert 0 < len(written) < 32, "the run was not interrupted mid-generation"
    inodes = {i: os.stat(gen_sets[0] / "images" / f"{i:06d}.png").st_ino for i in written}

    resumed = harness(*args, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for i, ino in inodes.items():  # images written before the kill were kept, not regenerated
        assert os.stat(gen_sets[0] / "images" / f"{i:06d}.png").st_ino == ino
    assert not leftovers(home)

    one = run(RunRequest(generator=gen, tasks=["fid"], features="radiomics", n=32, batch_size=2))
    assert sorted(manifests(tmp_path / "runs").values()) == sorted(manifests(home).values())
    got = metrics(resumed.stdout)
    assert got == {r.metric: (r.value, r.ci_low, r.ci_high) for _, r in one.results}
