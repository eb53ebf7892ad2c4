"""A run whose process was killed (SIGKILL, crash) is shown as `interrupted`, not `running` forever (issue 21)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys

from harness.store import Run, Store, run_is_stale


def _row(store: Store, **fields) -> str:
    base = dict(generator="real", data_source="phantom", n=2, seed=0)
    return store.start_run(**{**base, **fields})


def test_start_run_records_pid_host_and_heartbeat(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    rid = _row(store)
    with store.session() as s:
        run = s.get(Run, rid)
        assert (run.pid, run.host, run.status) == (os.getpid(), socket.gethostname(), "running")
        first = run.heartbeat_at
    store.heartbeat(rid)
    with store.session() as s:
        assert s.get(Run, rid).heartbeat_at >= first
    assert store.reap_stale_runs() == []  # this process is alive


def test_killed_process_is_interrupted_and_can_be_resumed(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    rid = _row(store, pid=proc.pid)
    assert store.reap_stale_runs() == []
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [r.status for r in store.runs() if r.id == rid] == ["interrupted"]  # runs() reaps first
    store.resume_run(rid)
    with store.session() as s:
        run = s.get(Run, rid)
        assert run.status == "running" and run.pid == os.getpid()


def test_other_host_uses_the_heartbeat_age():
    now = dt.datetime.now(dt.timezone.utc)
    fresh = Run(status="running", pid=1, host="elsewhere", heartbeat_at=now - dt.timedelta(minutes=5))
    old = Run(status="running", pid=1, host="elsewhere", heartbeat_at=now - dt.timedelta(hours=7))
    naive = Run(status="running", pid=None, host=None, started_at=(now - dt.timedelta(hours=7)).replace(tzinfo=None))
    assert not run_is_stale(fresh, here="me", now=now, stale_after=3600)
    assert run_is_stale(old, here="me", now=now, stale_after=3600)
    assert run_is_stale(naive, here="me", now=now, stale_after=3600)
    assert not run_is_stale(Run(status="ok", pid=999999, host="me"), here="me", now=now)
