"""Shared fixtures: every test gets its own image-set home, feature cache and SQLite database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


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
