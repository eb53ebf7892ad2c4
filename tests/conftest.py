"""Shared fixtures: every test gets its own image-set home, feature cache and SQLite database."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

# Before any test module is imported (collection), point every EchoBench location at a throw-away folder, so
# nothing a module does at import time can reach the user's database, runs or caches. Each test then gets
# its own folders from ``isolated_env``.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="echobench-tests-"))
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)
os.environ.update({
    "ECHOBENCH_HOME": str(_SESSION_DIR / "runs"), "ECHOBENCH_CACHE": str(_SESSION_DIR / "cache"),
    "ECHOBENCH_DB": f"sqlite:///{_SESSION_DIR / 'echobench.db'}", "ECHOBENCH_WEIGHTS": str(_SESSION_DIR / "no-weights"),
})


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every EchoBench location at a temp dir so tests never touch the user's files."""
    monkeypatch.setenv("ECHOBENCH_HOME", str(tmp_path / "runs"))
    monkeypatch.setenv("ECHOBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ECHOBENCH_DB", f"sqlite:///{tmp_path / 'echobench.db'}")
    monkeypatch.setenv("ECHOBENCH_WEIGHTS", str(tmp_path / "no-weights"))
    return tmp_path


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server for the session; skipped (with the reason shown) only without server binaries."""
    from tests.pg import TempPostgres

    try:
        pg = TempPostgres()
    except FileNotFoundError as exc:
        pytest.skip(f"PostgreSQL server not installed: {exc}")
    url = pg.start()
    yield url
    pg.stop()
