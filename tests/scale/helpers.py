"""Running `harness run` in one or several processes, and reading what it left on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HARNESS = [sys.executable, "-m", "harness.cli"]


def env_for(root: Path) -> dict:
    """Image-set home, feature cache and SQLite DB under ``root`` (one set per compared run)."""
    root.mkdir(parents=True, exist_ok=True)
    return {"ECHOBENCH_HOME": str(root / "runs"), "ECHOBENCH_CACHE": str(root / "cache"),
            "ECHOBENCH_DB": f"sqlite:///{root / 'echobench.db'}"}


def harness(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def metrics(stdout: str) -> dict[str, tuple]:
    rows = [json.loads(line) for line in stdout.splitlines() if line.strip().startswith("{")]
    return {r["metric"]: (r["value"], r["ci_low"], r["ci_high"]) for r in rows}


def manifests(home: Path) -> dict[str, list[tuple[int, str]]]:
    """``{"<generator>/<key>": [(index, sha256), ...]}`` for every image set under ``home``."""
    out = {}
    for path in sorted(Path(home).glob("*/*/manifest.jsonl")):
        entries = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        out[f"{path.parent.parent.name}/{path.parent.name}"] = [(e["index"], e["sha256"]) for e in entries]
    return out


def cached_features(cache: Path) -> dict[str, np.ndarray]:
    out = {}
    for path in sorted((Path(cache) / "features").glob("*__features__*.npz")):
        with np.load(path) as z:
            out[path.name] = z["features"]
    return out


def leftovers(home: Path) -> list[Path]:
    """Shard manifests or per-rank feature files that should not survive a finished run."""
    return [p for pat in ("*/*/manifest.*.jsonl", "*/*/.features-*") for p in Path(home).glob(pat)]
