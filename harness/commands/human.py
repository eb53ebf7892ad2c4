"""``harness human ...``: import clinician ratings, report the statistics, run the rating app."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

human_app = typer.Typer(help="Human evaluation: import ratings (CSV), report the paper's and the recommended statistics.",
                        no_args_is_help=True)


@human_app.command("import")
def import_cmd(
    ratings: Path = typer.Argument(..., help="ratings.csv (long format: participant_id, image_id, source, rating, ...; see docs/human-eval.md)."),
    study: str = typer.Option(..., "--study", help="Name of the study in the results DB."),
    participants: Optional[Path] = typer.Option(None, "--participants", help="participants.csv (optional)."),
    images: Optional[Path] = typer.Option(None, "--images", help="images.csv linking image_id to files (optional)."),
    scale: str = typer.Option("1-5", "--scale", help="Likert bounds, e.g. 1-5 or 1-7."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite an imported study of the same name with other data."),
    replace_app_study: bool = typer.Option(
        False, "--replace-app-study",
        help="Also allow replacing a study whose ratings were collected with the rating app (deletes them, its answer "
             "history and sign-in tokens): it is first exported to backups/<study>-backup-<time>/ (ECHOBENCH_BACKUPS)."),
    db: Optional[str] = typer.Option(None, "--db", help="Results DB URL or SQLite path."),
) -> None:
    """Validate the CSVs (every problem at once, with file, line and column) and import them in one transaction.

    Importing the same files again is a no-op.

    Example: harness human import ratings.csv --participants participants.csv --study paper2024
    """
    from harness.cli import err, esc
    from harness.errors import UsageError
    from harness.store import Store
    from human_eval.db import import_study
    from human_eval.schema import read_study

    try:
        lo, hi = (int(x) for x in scale.split("-"))
    except ValueError as exc:
        raise UsageError(f"--scale must look like 1-5, not {scale!r}") from exc
    tables = read_study(ratings, participants, images, scale=(lo, hi))
    if images is not None and tables.images is not None and "path" in tables.images:
        # store image paths resolved against the images.csv folder, so later commands find the files from anywhere
        tables.images["path"] = [str((images.parent / p).resolve()) if isinstance(p, str) and p and not Path(p).is_absolute()
                                 else p for p in tables.images["path"]]
    for w in tables.warnings:
        err.print(f"[yellow]warning:[/yellow] {esc(w)}", highlight=False)
    summary = import_study(Store(db), tables, study, replace=replace or replace_app_study,
                           replace_app_study=replace_app_study)
    if summary.backup is not None:
        err.print(f"the rating-app data of study {esc(repr(summary.study))} was exported to {esc(summary.backup)} first",
                  highlight=False)
    err.print(f"study {esc(repr(summary.study))}: {summary.status} ({summary.ratings} ratings, "
              f"{summary.participants} participants, {summary.images} images)", highlight=False)


@human_app.command("report")
def report_cmd(
    study: Optional[str] = typer.Option(None, "--study", help="Study name in the results DB."),
    example: bool = typer.Option(False, "--example", help="Use the built-in synthetic example study (17 x 40, matches the paper's Table 3)."),
    out_dir: Path = typer.Option(Path("report"), "--out", help="Output folder for the report and figures."),
    fmt: str = typer.Option("md", "--format", help="md or html."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Draw the PNG figures."),
    as_json: bool = typer.Option(False, "--json", help="Print every table as JSON records on stdout."),
    db: Optional[str] = typer.Option(None, "--db", help="Results DB URL or SQLite path."),
) -> None:
    """Report the paper's Tables 1-3 and Figure 5, and the recommended repeated-measures analysis.

    Also rating distributions and artifact flags; each test says which question it answers.

    Example: harness human report --example --out report/
    """
    from harness.cli import err, esc
    from harness.errors import UsageError
    from human_eval.report import build_report, report_tables

    if fmt not in ("md", "html"):
        raise UsageError(f"--format must be md or html, not {fmt!r}")
    if example == (study is not None):
        raise UsageError("give exactly one of --study NAME or --example")
    from harness.validate import check_output_dir

    check_output_dir(out_dir)
    if example:
        from human_eval.examples import make_example_study
        from human_eval.schema import study_from_frames

        tables = study_from_frames(*make_example_study())
    else:
        from harness.store import Store
        from human_eval.db import load_study

        store = Store(db)
        tables = load_study(store, study)
    if as_json:
        payload = {k: json.loads(v.to_json(orient="records", date_format="iso")) for k, v in report_tables(tables).items()}
        sys.stdout.write(json.dumps(payload) + "\n")
    path = build_report(tables, out_dir, fmt=fmt, figures=figures, store=None if example else store)
    err.print(f"report written to {esc(path)}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(human_app, name="human")
