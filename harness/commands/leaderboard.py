"""``harness leaderboard``: start the Streamlit leaderboard on a results database (read-only), or export it
as a static site (``--export DIR``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def leaderboard(
        db: Optional[str] = typer.Option(None, "--db", help="Results DB URL or SQLite path (default ECHOBENCH_DB or sqlite:///echobench.db)."),
        port: int = typer.Option(8501, "--port", help="Port of the web server (http://localhost:PORT)."),
        address: Optional[str] = typer.Option(
            None, "--address", help="Interface to listen on: 127.0.0.1 behind a reverse proxy on the same host, "
                                    "0.0.0.0 for every interface (Streamlit's default)."),
        base_path: Optional[str] = typer.Option(
            None, "--base-path", help="URL path prefix when a reverse proxy serves the page under one, e.g. echobench "
                                      "for https://example.org/echobench/."),
        export: Optional[Path] = typer.Option(
            None, "--export", metavar="DIR",
            help="Write the leaderboard as a static site into DIR (HTML + CSS + thumbnails + CSV/JSON of every "
                 "result; no server, no external requests; same database → byte-identical files) instead of serving it."),
    ) -> None:
        """Browse the results in a web page: leaderboard, gallery, generator details, human evaluation, agreement.

        Examples: harness leaderboard --db sqlite:///echobench.db --port 8501;
        harness leaderboard --address 127.0.0.1 --port 8501 --base-path echobench (behind a reverse proxy);
        harness leaderboard --export site/ (then open site/index.html, or copy site/ to any static host)
        """
        from harness.store import resolve_url
        from leaderboard.data import connect

        url = resolve_url(db)
        engine = connect(url)  # a database that cannot be opened fails here (StoreError), not in the browser
        if export is not None:
            from leaderboard.export import export_site

            files = export_site(engine, export)
            typer.echo(f"wrote {len(files)} files to {export} (open {export / 'index.html'})", err=True)
            return
        from harness.webapp import serve
        from leaderboard import APP_PATH

        prefix = f"/{base_path.strip('/')}" if base_path else ""
        extra = ("--client.toolbarMode", "viewer")  # visitors get no "Deploy"/developer menu
        extra += ("--server.baseUrlPath", base_path.strip("/")) if base_path else ()
        typer.echo(f"EchoBench leaderboard on http://{address or 'localhost'}:{port}{prefix}/ (Ctrl-C to stop)", err=True)
        raise typer.Exit(serve(APP_PATH, url, port, address=address, extra=extra))
