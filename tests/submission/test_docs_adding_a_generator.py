"""docs/adding-a-generator.md, followed literally: every ``$ command`` of the page, in order, in a temp dir.

The only translations: ``harness`` → ``python -m harness.cli``, ``pip``/``pytest`` → ``python -m pip|pytest``
of this interpreter (pip with ``--no-deps`` so nothing is fetched), and ``RUN_ID`` → the id printed by the
previous ``harness run``. The scaffolded package is installed into this environment and uninstalled after.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "adding-a-generator.md"


def doc_commands(text: str) -> list[str]:
    """The ``$ ...`` lines of the page's ```console blocks, in order."""
    commands, in_block = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_block = line.strip() == "```console"
            continue
        if in_block and line.startswith("$ "):
            commands.append(line[2:].strip())
    return commands


def translate(command: str, run_id: str | None) -> list[str]:
    argv = shlex.split(command)
    if run_id is not None:
        argv = [run_id if a == "RUN_ID" else a for a in argv]
    head, rest = argv[0], argv[1:]
    if head == "harness":
        return [sys.executable, "-m", "harness.cli", *rest]
    if head == "pip" and rest[:1] == ["install"]:
        isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
        return [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *isolation, *rest[1:]]
    if head == "pytest":
        return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *rest]
    raise AssertionError(f"the doc uses a command this test cannot follow: {command}")


def test_doc_commands_parse():
    commands = doc_commands(DOC.read_text())
    assert [c.split()[0:2] for c in commands][:2] == [["harness", "new"], ["pip", "install"]]
    assert any(c.startswith("harness submit") and "RUN_ID" in c for c in commands)


@pytest.mark.slow
def test_follow_adding_a_generator_literally(tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    run_id = None
    outputs: dict[str, str] = {}
    try:
        for command in doc_commands(DOC.read_text()):
            proc = subprocess.run(translate(command, run_id), cwd=work, env=env, capture_output=True, text=True, check=False,
                                  timeout=300)
            assert proc.returncode == 0, f"`{command}` exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            outputs[command] = proc.stdout + proc.stderr
            if command.startswith("harness run"):
                ids = re.findall(r"│ ([0-9a-f]{8}) +│", proc.stdout)
                assert ids, proc.stdout
                run_id = ids[0]
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "echobench-my-gan"],
                       capture_output=True, text=True, check=False, timeout=120)

    listing = next(v for k, v in outputs.items() if k.startswith("harness list"))
    assert re.search(r"my-gan\s+│\s+package echobench-my-gan", listing), listing
    validation = next(v for k, v in outputs.items() if k.startswith("harness validate"))
    assert "meets the contract" in validation and "FAIL" not in validation
    assert (work / "my-gan.zip").is_file()
    with open(work / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and {r["generator"] for r in rows} == {"my-gan"}
    assert {r["origin"] for r in rows} == {"submitted"}
    assert any(r["metric"] == "FD_radiomics" and float(r["value"]) > 0 for r in rows)
    # uninstalled again: the entry point is gone
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "list", "generators"], cwd=work, env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0 and "my-gan" not in proc.stdout
