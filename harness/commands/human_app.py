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
    address: str = typer.Option("127.0.0.1", "--address", help="Interface to listen on: 127.0.0.1 (default) is this computer only; "
                                "0.0.0.0 opens it to the network (serve a real study over TLS behind a reverse proxy: docs/human-eval.md)."),
) -> None:
    """Start the clinician rating app: study set-up (admin page) and the rater flow in the browser.

    The admin page needs ECHOBENCH_ADMIN_PASSWORD (or admin_password in .streamlit/secrets.toml).

    Example: ECHOBENCH_ADMIN_PASSWORD=... harness human app --db sqlite:///study.db --port 8502
    """
    from harness.cli import err
    from harness.store import Store, resolve_url
    from harness.webapp import check_serve, serve
    from human_eval.app import APP_PATH

    check_serve(port)
    url = resolve_url(db)
    Store(url)  # an unreachable DB fails here (StoreError), and the schema is migrated before raters arrive
    if not os.environ.get("ECHOBENCH_ADMIN_PASSWORD"):
        err.print("[yellow]note:[/yellow] ECHOBENCH_ADMIN_PASSWORD is not set: the admin page works only with "
                  "admin_password in .streamlit/secrets.toml", highlight=False)
    host = "localhost" if address in ("127.0.0.1", "localhost") else address
    err.print(f"EchoBench rating app on http://{host}:{port} (raters), http://{host}:{port}/?page=admin "
              "(study set-up); Ctrl-C to stop", highlight=False, markup=False)
    # raters never see tracebacks (client.showErrorDetails none: a generic message; details go to this console)
    raise typer.Exit(serve(APP_PATH, url, port, address=address,
                           extra=("--client.toolbarMode", "viewer", "--client.showErrorDetails", "none")))


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
    from harness.validate import check_output_dir
    from human_eval.app.service import write_export

    check_output_dir(out_dir)
    paths = write_export(Store(db), study, out_dir)
    err.print("wrote " + ", ".join(str(p) for p in paths), highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    from harness.commands.human import human_app

    human_app.command("app")(app_cmd)
    human_app.command("export")(export_cmd)
