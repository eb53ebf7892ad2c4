"""``harness leaderboard``: start the Streamlit leaderboard on a results database (read-only)."""

from __future__ import annotations

from typing import Optional

import typer


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
        from harness.webapp import serve
        from leaderboard import APP_PATH
        from leaderboard.data import connect

        url = resolve_url(db)
        connect(url)  # a database that cannot be opened fails here (StoreError), not in the browser
        typer.echo(f"EchoBench leaderboard on http://localhost:{port} (Ctrl-C to stop)", err=True)
        raise typer.Exit(serve(APP_PATH, url, port))
