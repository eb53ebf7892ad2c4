"""What the two Streamlit apps (leaderboard, rating app) share: how they are launched and how the
script reads its database URL.

Safe defaults: the server listens on 127.0.0.1 only (``--address 0.0.0.0`` opens it to the network; for a
real study serve it over TLS behind a reverse proxy, docs/human-eval.md); the database URL, which may hold a
password, reaches the app through the environment (:data:`DB_ENV`), never on the command line where ``ps``
shows it to every user of the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from harness.errors import UsageError

#: Environment variable through which :func:`serve` hands the database URL to the app process.
DB_ENV = "ECHOBENCH_APP_DB"
DEFAULT_ADDRESS = "127.0.0.1"


def streamlit_command(app_path: Path, url: str | None, port: int, *, address: str | None = None,
                      extra: tuple[str, ...] = ()) -> list[str]:
    """The ``streamlit run`` command line of a packaged app (headless, no telemetry, no file watcher, on
    127.0.0.1 unless ``address`` says otherwise). ``url`` is not on it: :func:`app_env` carries it."""
    return [sys.executable, "-m", "streamlit", "run", str(app_path), "--server.headless", "true",
            "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--server.address", address or DEFAULT_ADDRESS, *extra]


def app_env(url: str) -> dict[str, str]:
    """The app process's environment: this one plus the database URL in :data:`DB_ENV`."""
    return {**os.environ, DB_ENV: url}


def check_serve(port: int) -> None:
    """UsageError unless streamlit is installed and ``port`` is a TCP port (call before printing anything)."""
    if importlib.util.find_spec("streamlit") is None:
        raise UsageError("this command needs streamlit: pip install streamlit altair")
    if not 0 < port < 65536:
        raise UsageError(f"--port must be between 1 and 65535 (got {port})")


def serve(app_path: Path, url: str, port: int, *, address: str | None = None, extra: tuple[str, ...] = ()) -> int:
    """Run the app in the foreground until Ctrl-C; returns streamlit's exit code (0 after Ctrl-C)."""
    check_serve(port)
    try:
        return subprocess.call(streamlit_command(app_path, url, port, address=address, extra=extra), env=app_env(url))
    except KeyboardInterrupt:
        return 0


def db_arg(argv: list[str]) -> str | None:
    """The app's database URL: :data:`DB_ENV` (set by :func:`serve`), else ``--db URL`` after ``--`` (for
    ``streamlit run app.py -- --db URL`` by hand)."""
    if os.environ.get(DB_ENV):
        return os.environ[DB_ENV]
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--db", default=None)
    args, _ = parser.parse_known_args(argv)
    return args.db
