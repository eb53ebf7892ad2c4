"""Several `harness run` processes (as on several machines) writing to one PostgreSQL at the same time."""

from __future__ import annotations

import os
import subprocess

import pytest

from harness.store import Store
from tests.scale.helpers import HARNESS, metrics

pytestmark = pytest.mark.postgres


def _start_writers(tmp_path, url, k=4):
    """``k`` concurrent runs: own image-set home each (one per machine), one shared feature cache."""
    procs = []
    for i in range(k):
        env = {**os.environ, "ECHOBENCH_HOME": str(tmp_path / f"machine{i}"), "ECHOBENCH_CACHE": str(tmp_path / "cache")}
        args = ["run", "--generator", ("labelmap", "real")[i % 2], "--task", "fid", "--features", "radiomics",
                "--n", "8", "--seed", str(i), "--db", url, "--json"]
        procs.append(subprocess.Popen([*HARNESS, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    return [(p, *p.communicate(timeout=300)) for p in procs]


def _check_all_stored(url, finished, before):
    for p, _out, err in finished:
        assert p.returncode == 0, err[-3000:]
    run_ids = {o for _, out, _ in finished for o in _run_ids(out)}
    assert len(run_ids) == len(finished)
    store = Store(url)
    runs = {r.id: r for r in store.runs()}
    assert run_ids <= set(runs) and len(runs) == before + len(finished)  # none lost, none extra
    assert all(runs[r].status == "ok" for r in run_ids)
    frame = store.results_frame()
    mine = frame[frame["run_id"].isin(run_ids)]
    assert len(mine) == sum(len(metrics(out)) for _, out, _ in finished) == 4 * len(finished)  # FD, FD∞, KD, FD_rel


def _run_ids(stdout):
    import json

    return {json.loads(line)["run_id"] for line in stdout.splitlines() if line.startswith("{")}


def test_four_concurrent_writers_all_stored(tmp_path, postgres_url):
    before = len(Store(postgres_url).runs())  # the shared database exists and is migrated
    _check_all_stored(postgres_url, _start_writers(tmp_path, postgres_url), before)


def test_four_concurrent_writers_on_a_fresh_database(tmp_path, postgres_url):
    import sqlalchemy as sa

    admin = sa.create_engine(postgres_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text("CREATE DATABASE fresh"))
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + "/fresh"
    _check_all_stored(url, _start_writers(tmp_path, url), 0)
