"""What the two Streamlit apps (leaderboard, rating app) share: how they are launched and how the
script reads its database URL."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

from harness.errors import UsageError


def streamlit_command(app_path: Path, url: str, port: int, *, address: str | None = None,
                      extra: tuple[str, ...] = ()) -> list[str]:
    """The ``streamlit run`` command line of a packaged app (headless, no telemetry, no file watcher)."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_path), "--server.headless", "true",
           "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
           *extra]
    if address:
        cmd += ["--server.address", address]
    return [*cmd, "--", "--db", url]


def serve(app_path: Path, url: str, port: int, *, address: str | None = None, extra: tuple[str, ...] = ()) -> int:
    """Run the app in the foreground until Ctrl-C; returns streamlit's exit code (0 after Ctrl-C)."""
    if importlib.util.find_spec("streamlit") is None:
        raise UsageError("this command needs streamlit: pip install streamlit altair")
    if not 0 < port < 65536:
        raise UsageError(f"--port must be between 1 and 65535 (got {port})")
    try:
        return subprocess.call(streamlit_command(app_path, url, port, address=address, extra=extra))
    except KeyboardInterrupt:
        return 0


def db_arg(argv: list[str]) -> str | None:
    """The ``--db URL`` that :func:`streamlit_command` passes to the app script after ``--``."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--db", default=None)
    args, _ = parser.parse_known_args(argv)
    return args.db
