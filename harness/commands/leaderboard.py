"""``harness leaderboard``: start the Streamlit leaderboard on a results database (read-only)."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from typing import Optional

import typer

from harness.errors import UsageError

log = logging.getLogger(__name__)


def streamlit_command(url: str, port: int) -> list[str]:
    """The ``streamlit run`` command line of the packaged app."""
    from leaderboard import APP_PATH

    return [sys.executable, "-m", "streamlit", "run", str(APP_PATH), "--server.headless", "true",
            "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--", "--db", url]


def register(app: typer.Typer) -> None:
    @app.command()
    def leaderboard(
        db: Optional[str] = typer.Option(None, "--db", help="Results DB URL or SQLite path (default ECHOBENCH_DB or sqlite:///echobench.db)."),
        port: int = typer.Option(8501, "--port", help="Port of the web server (http://localhost:PORT)."),
    ) -> None:
        """Browse the results in a web page: leaderboard, generator details, human evaluation, agreement.

        Example: harness leaderboard --db sqlite:///echobench.db --port 8501
        """
        from harness.store import resolve_url
        from leaderboard.data import connect

        url = resolve_url(db)
        connect(url)  # a database that cannot be opened fails here (StoreError), not in the browser
        if importlib.util.find_spec("streamlit") is None:
            raise UsageError("the leaderboard needs streamlit: pip install streamlit altair")
        if not 0 < port < 65536:
            raise UsageError(f"--port must be between 1 and 65535 (got {port})")
        typer.echo(f"EchoBench leaderboard on http://localhost:{port} (Ctrl-C to stop)", err=True)
        try:
            code = subprocess.call(streamlit_command(url, port))
        except KeyboardInterrupt:
            code = 0
        raise typer.Exit(code)
