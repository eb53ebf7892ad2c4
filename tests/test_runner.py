"""End-to-end: data → generator → image set → features → task → store → printed results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.runner import RunRequest, run
from harness.store import Store
from tests.slowgen import PATH as SLOWGEN

HARNESS = [sys.executable, "-m", "harness.cli"]


def harness(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _value(outcome, metric_prefix="FD_radiomics"):
    return next(r.value for _, r in outcome.results if r.metric == metric_prefix)


def test_metric_separates_the_baselines():
    real = run(RunRequest(generator="real", tasks=["fid"], features="radiomics", n=60))
    labelmap = run(RunRequest(generator="labelmap", tasks=["fid"], features="radiomics", n=60))
    assert real.feature_space == "radiomics"
    fd_real, fd_label = _value(real), _value(labelmap)
    assert fd_label > 5 * fd_real, (fd_real, fd_label)
    frame = Store().results_frame()
    assert set(frame["generator"]) == {"real", "labelmap"}
    assert "FD_radiomics" in set(frame["metric"])
    assert not any(m.startswith(("FID", "KID")) for m in frame["metric"])  # never called FID outside Inception space


def test_rerun_reuses_images_and_features(monkeypatch):
    first = run(RunRequest(generator="labelmap", tasks=["fid"], features="radiomics", n=20))
    from harness.features import cache as cache_mod

    calls = []
    original = cache_mod.extract_features
    monkeypatch.setattr(cache_mod, "extract_features", lambda *a, **k: calls.append(1) or original(*a, **k))
    second = run(RunRequest(generator="labelmap", tasks=["fid"], features="radiomics", n=20))
    assert calls == []  # neither generated nor reference features were recomputed
    assert first.imageset == second.imageset
    assert _value(first) == _value(second)
    assert first.run_id != second.run_id


def test_json_output_has_one_object_per_result(tmp_path):
    proc = harness("run", "--generator", "real", "--task", "fid", "--features", "radiomics", "--n", "30", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert rows and {"run_id", "generator", "task", "metric", "value", "ci_low", "ci_high", "feature_space", "n"} <= set(rows[0])
    assert all(r["feature_space"] == "radiomics" and r["generator"] == "real" for r in rows)


def _write_folder(folder: Path, k: int, *, size=(40, 40), mode="L", seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(k):
        shape = size if mode == "L" else (*size, 3)
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode).save(folder / f"img{i:03d}.png")


def test_images_generator_scores_a_folder_against_a_folder(tmp_path):
    _write_folder(tmp_path / "gen", 12, size=(48, 40), mode="RGB")
    _write_folder(tmp_path / "gen", 3, size=(30, 30), mode="L", seed=5)  # mixed sizes and gray/RGB accepted
    _write_folder(tmp_path / "ref", 10, seed=1)
    out = run(RunRequest(generator="images", tasks=["fid"], features="radiomics",
                         generator_options={"images": str(tmp_path / "gen")}, reference=f"folder:{tmp_path / 'ref'}"))
    assert out.n == 12 and out.n_ref == 10
    assert np.isfinite(_value(out))


@pytest.mark.parametrize("k", [0, 1])
def test_too_few_images_is_exit_2(tmp_path, k):
    _write_folder(tmp_path / "gen", k)
    proc = harness("run", "--generator", "images", "--images", str(tmp_path / "gen"), "--task", "fid", "--features", "radiomics")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr


def test_truncated_image_is_named(tmp_path):
    _write_folder(tmp_path / "gen", 4)
    data = (tmp_path / "gen" / "img002.png").read_bytes()
    (tmp_path / "gen" / "img002.png").write_bytes(data[: len(data) // 2])
    proc = harness("run", "--generator", "images", "--images", str(tmp_path / "gen"), "--task", "fid",
                   "--features", "radiomics", "--reference", f"folder:{tmp_path / 'gen'}")
    assert proc.returncode == 2
    assert "img002.png" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_inception_weights_offline_is_exit_2_before_generating(tmp_path):
    t0 = time.time()
    proc = harness("run", "--generator", "real", "--task", "fid", "--n", "20")
    assert proc.returncode == 2, proc.stderr
    assert "inception-2015-12-05" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs" / "real").exists()  # failed before any long work
    assert time.time() - t0 < 120  # no hang (generous bound; a hang would time out at 300 s)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--generator", "reel", "--task", "fid"], "Did you mean 'real'"),
        (["--generator", "real", "--task", "fdi"], "Did you mean 'fid'"),
        (["--generator", "real", "--task", "fid", "--features", "radiomix"], "Did you mean 'radiomics'"),
        (["--generator", "real", "--task", "fid", "--features", "radiomics", "--db", "postgresql+psycopg://u:p@127.0.0.1:1/x"],
         "cannot connect"),
    ],
)
def test_user_errors_exit_2_with_one_message(args, needle):
    proc = harness("run", *args)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr.replace("\n", " ") and "Traceback" not in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_run_resumes_to_identical_images_and_result(tmp_path, sig):
    plugin = SLOWGEN
    gen = f"{plugin}:SlowLabelMap"
    args = ["run", "--generator", gen, "--task", "fid", "--features", "radiomics", "--n", "48", "--batch-size", "4", "--json"]
    env_a = {"ECHOBENCH_HOME": str(tmp_path / "a"), "ECHOBENCH_DB": str(tmp_path / "a.db")}
    # a shell's background jobs inherit SIGINT as ignored; restore the default so Ctrl-C behaves as in a terminal
    proc = subprocess.Popen([*HARNESS, *args], env={**os.environ, **env_a}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    manifest = None
    while time.time() < deadline:
        found = list((tmp_path / "a").glob("*/*/manifest.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 8:
            manifest = found[0]
            break
        time.sleep(0.05)
    assert manifest is not None, "generation never started"
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    killed_at = len(manifest.read_text().splitlines())
    assert 0 < killed_at < 48, "the run was not interrupted mid-generation"
    if sig == signal.SIGINT:
        assert proc.returncode == 130

    resumed = harness(*args, env=env_a)
    assert resumed.returncode == 0, resumed.stderr
    # the killed/interrupted run row was taken over by the re-run (not left `running` or a second row)
    assert [r.status for r in Store(str(tmp_path / "a.db")).runs()] == ["ok"]
    fresh = harness(*args, env={"ECHOBENCH_HOME": str(tmp_path / "b"), "ECHOBENCH_DB": str(tmp_path / "b.db")})
    assert fresh.returncode == 0, fresh.stderr

    def hashes(root):
        lines = next(Path(root).glob("*/*/manifest.jsonl")).read_text().splitlines()
        entries = [json.loads(x) for x in lines]
        return [(e["index"], e["sha256"]) for e in entries]

    ha, hb = hashes(tmp_path / "a"), hashes(tmp_path / "b")
    assert ha == hb and [i for i, _ in ha] == list(range(48))  # none missing, none duplicated
    va = {r["metric"]: r["value"] for r in map(json.loads, resumed.stdout.splitlines())}
    vb = {r["metric"]: r["value"] for r in map(json.loads, fresh.stdout.splitlines())}
    assert va == vb


def test_two_runs_asking_for_the_same_set_do_not_interleave(tmp_path):
    """Two independent `harness run`s of one request: the second waits for the set's writer lock, then reuses it."""
    args = ["run", "--generator", f"{SLOWGEN}:SlowLabelMap", "--task", "fid", "--features", "radiomics", "--n", "48",
            "--batch-size", "4", "--json"]
    env = {**os.environ, "ECHOBENCH_HOME": str(tmp_path / "h"), "ECHOBENCH_DB": str(tmp_path / "r.db")}
    first = subprocess.Popen([*HARNESS, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "h").glob("*/*/manifest.jsonl")):
        time.sleep(0.05)
    second = harness(*args, env=env)
    out_first, err_first = first.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, (err_first, second.stderr)
    assert "another process is writing the image set" in second.stderr.replace("\n", " ")
    [manifest] = [m for m in (tmp_path / "h").glob("*/*/manifest.jsonl") if m.parts[-3] != "_reference"]
    indices = [json.loads(x)["index"] for x in manifest.read_text().splitlines()]
    assert indices == list(range(48))  # none missing, none written twice
    va = {r["metric"]: r["value"] for r in map(json.loads, out_first.splitlines())}
    vb = {r["metric"]: r["value"] for r in map(json.loads, second.stdout.splitlines())}
    assert va == vb


def test_task_results_do_not_depend_on_which_tasks_ran_before():
    alone = run(RunRequest(generator="labelmap", tasks=["diversity"], features="radiomics", n=24))
    after = run(RunRequest(generator="labelmap", tasks=["fid", "diversity"], features="radiomics", n=24))
    values = lambda out: {r.metric: (r.value, r.ci_low, r.ci_high) for t, r in out.results if t == "diversity"}  # noqa: E731
    assert values(alone) == values(after) and any("ms_ssim" in m.lower() for m in values(alone))


def test_results_are_complete_where_made_and_the_substitute_flag_is_stored():
    """Every feature-space result names its space and carries the extractor's substitute flag (a stand-in space whose
    name does not start with "random"); the stored row has it too; two spaces in one run score each separately."""
    out = run(RunRequest(generator="real", tasks=["fid", "memorization"], n=24, n_train=24,
                         features="radiomics,tests.standin_features:StandInExtractor",
                         task_options={"fid": {"n_boot": 20}, "memorization": {"quantile": 0.25}}))
    by_space: dict[str, list] = {}
    for _, r in out.results:
        by_space.setdefault(r.feature_space, []).append(r)
    assert set(by_space) == {"radiomics", "pixel-standin"} and out.feature_space == "radiomics,pixel-standin"
    assert all(r.substitute for r in by_space["pixel-standin"]) and not any(r.substitute for r in by_space["radiomics"])
    assert {r.metric for r in by_space["pixel-standin"]} >= {"FD_pixel-standin", "KD_pixel-standin", "near_copy_fraction"}
    from sqlalchemy import select

    from harness.store import Result

    with Store().session() as s:
        rows = list(s.scalars(select(Result).where(Result.run_id == out.run_id)))
    assert {(r.feature_space, r.details["substitute_features"]) for r in rows} == {("radiomics", False), ("pixel-standin", True)}
    fd = next(r for r in rows if r.metric == "FD_radiomics")
    assert fd.details["n_ref"] == out.n_ref == 24  # the cached reference statistics keep n


def test_plan_errors_leave_no_run_row_and_no_image_folder(tmp_path):
    from harness.errors import UsageError

    home = tmp_path / "home"
    for req in (RunRequest(generator="real", tasks=["fid"], features="radiomics,nope", home=home),
                RunRequest(generator="real", tasks=["fid"], features="radiomics", task_options={"diversity": {"k": 3}}, home=home),
                RunRequest(generator="real", tasks=["fid"], features="radiomics", data="phantom:reference", home=home)):
        with pytest.raises(UsageError):
            run(req)
    assert Store().runs() == [] and not home.exists()


def _tiny_dinov2_weights(root: Path) -> None:
    """A save_pretrained DINOv2 folder at $ECHOBENCH_WEIGHTS/dinov2-large (tiny random config)."""
    from transformers import Dinov2Config, Dinov2Model

    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, patch_size=14, image_size=224)
    Dinov2Model(cfg).eval().save_pretrained(root / "dinov2-large")


def test_without_features_diversity_runs_in_dinov2_when_its_weights_are_here(tmp_path, monkeypatch):
    """dgm-eval's practice: no --features -> diversity in DINOv2 space if the weights are on this machine, else
    Inception; fid stays in Inception; an explicit --features (or --weights) applies to every task."""
    from harness import runner
    from harness.features import dinov2 as D
    from tasks.cmmd import CMMDTask
    from tasks.diversity import DiversityTask
    from tasks.fid import FIDTask

    monkeypatch.setenv("ECHOBENCH_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setenv("ECHOBENCH_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    tasks = [("fid", FIDTask()), ("diversity", DiversityTask()), ("cmmd", CMMDTask())]
    spaces = runner._task_spaces(RunRequest(generator="real", tasks=["fid", "diversity", "cmmd"]), tasks)
    assert spaces == {"fid": ["inception"], "diversity": ["inception"], "cmmd": ["inception"]}  # no weights here
    _tiny_dinov2_weights(tmp_path / "w")
    spaces = runner._task_spaces(RunRequest(generator="real", tasks=["fid", "diversity", "cmmd"]), tasks)
    assert spaces == {"fid": ["inception"], "diversity": ["dinov2"], "cmmd": ["inception"]}
    explicit = RunRequest(generator="real", tasks=["fid", "diversity"], features="radiomics,random-clip")
    assert runner._task_spaces(explicit, tasks[:2]) == {"fid": ["radiomics", "random-clip"],
                                                        "diversity": ["radiomics", "random-clip"]}
    weights_only = RunRequest(generator="real", tasks=["diversity"], weights="inception.pt")
    assert runner._task_spaces(weights_only, tasks[1:2]) == {"diversity": ["inception"]}

    # end to end: the diversity results are in the dinov2 space (tiny stand-in architecture accepted for the test)
    monkeypatch.setattr(D.DINOv2Extractor, "expected", {"hidden_size": 32, "num_hidden_layers": 2, "patch_size": 14})
    monkeypatch.setattr(D.DINOv2Extractor, "dim", 32)
    out = run(RunRequest(generator="real", tasks=["diversity"], n=24, task_options={"diversity": {"n_boot": 20}}))
    assert out.feature_space == "dinov2"
    assert {r.feature_space for _, r in out.results} == {"dinov2", "pixels"}  # MS-SSIM is computed on pixels
    assert {r.metric for _, r in out.results if r.feature_space == "dinov2"} >= {"precision", "recall", "vendi"}
    config = Store().runs()[-1].config
    assert config["task_spaces"] == {"diversity": ["dinov2"]}
