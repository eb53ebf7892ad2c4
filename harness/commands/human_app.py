"""``harness human app`` (the clinician rating app) and ``harness human export`` (its ratings as CSV).

Both are added to the ``human`` group of :mod:`harness.commands.human`; streamlit is imported only by the
app itself, in its own process.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer


def app_cmd(
    db: str | None = typer.Option(None, "--db", help="Study DB URL or SQLite path (default ECHOBENCH_DB or sqlite:///echobench.db)."),
    port: int = typer.Option(8502, "--port", help="Port of the web server (http://localhost:PORT)."),
    address: str | None = typer.Option(None, "--address", help="Interface to listen on (e.g. 127.0.0.1 for this computer only; default: all)."),
) -> None:
    """Start the clinician rating app: study set-up (admin page) and the rater flow in the browser.

    The admin page needs ECHOBENCH_ADMIN_PASSWORD (or admin_password in .streamlit/secrets.toml).

    Example: ECHOBENCH_ADMIN_PASSWORD=... harness human app --db sqlite:///study.db --port 8502
    """
    from harness.cli import err
    from harness.store import Store, resolve_url
    from harness.webapp import serve
    from human_eval.app import APP_PATH

    url = resolve_url(db)
    Store(url)  # an unreachable DB fails here (StoreError), and the schema is migrated before raters arrive
    if not os.environ.get("ECHOBENCH_ADMIN_PASSWORD"):
        err.print("[yellow]note:[/yellow] ECHOBENCH_ADMIN_PASSWORD is not set: the admin page works only with "
                  "admin_password in .streamlit/secrets.toml", highlight=False)
    err.print(f"EchoBench rating app on http://localhost:{port} (raters), http://localhost:{port}/?page=admin "
              "(study set-up); Ctrl-C to stop", highlight=False)
    raise typer.Exit(serve(APP_PATH, url, port, address=address, extra=("--client.toolbarMode", "viewer")))


def export_cmd(
    study: str = typer.Option(..., "--study", help="Name of a study made with the rating app."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for ratings.csv, participants.csv, images.csv (the import format) and "
                                  "rating_history.csv (every saved answer, changed ones included)."),
    db: str | None = typer.Option(None, "--db", help="Study DB URL or SQLite path."),
) -> None:
    """Write a rating-app study in the import format (docs/human-eval.md); each file is written atomically.

    Example: harness human export --study pilot --out pilot/ && harness human import pilot/ratings.csv
    --participants pilot/participants.csv --images pilot/images.csv --study pilot-analysis
    """
    from harness.cli import err
    from harness.store import Store
    from human_eval.app.service import write_export

    paths = write_export(Store(db), study, out_dir)
    err.print("wrote " + ", ".join(str(p) for p in paths), highlight=False)


def register(app: typer.Typer) -> None:
    from harness.commands.human import human_app

    human_app.command("app")(app_cmd)
    human_app.command("export")(export_cmd)
