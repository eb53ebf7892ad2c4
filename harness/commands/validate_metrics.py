"""``harness validate-metrics``: run the fault-injection validation suite and print its table.

Exit codes: 0 every criterion row passed; 3 at least one row failed (the table says which); 2 a user
error (bad option), as every command.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Optional

import typer

EXIT_FAILED = 3


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.4g}"


def register(app: typer.Typer) -> None:
    @app.command("validate-metrics")
    def validate_metrics(
        n: int = typer.Option(400, "--n", help="Generated images per phantom set."),
        n_ref: Optional[int] = typer.Option(None, "--n-ref", help="Reference images (default: --n; colour shift needs ≥ 200)."),
        size: int = typer.Option(128, "--size", help="Phantom image side in pixels."),
        seed: int = typer.Option(0, "--seed", help="Phantom seed."),
        features: str = typer.Option("radiomics", "--features", "-f", help="Feature space for FD, memorisation and info rows."),
        k: int = typer.Option(5, "--k", help="Nearest neighbours for recall/coverage."),
        device: str = typer.Option("auto", "--device", help="Device of the feature extractor."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object per row instead of a table."),
    ) -> None:
        """Check on phantom data with injected faults that each task sees its fault (exit 0 all pass, 3 a row failed).

        Example: harness validate-metrics --n 400 --size 128
        """
        from rich.console import Console
        from rich.table import Table

        from tasks.validation import all_passed
        from tasks.validation import validate_metrics as run_suite

        err = Console(stderr=True)
        with err.status("validating metrics on the phantom") as status:
            rows = run_suite(n=n, n_ref=n_ref, size=size, seed=seed, features=features, k=k, device=device,
                             progress=lambda msg: status.update(f"validating metrics: {msg}"))
        if as_json:
            for r in rows:
                sys.stdout.write(json.dumps(r.to_dict()) + "\n")
        else:
            table = Table(title=f"Metric validation on the phantom (n={n}, size={size}, seed={seed}, features={features})")
            for col in ("fault", "strength", "metric", "expected", "observed", "pass/fail", "note"):
                table.add_column(col, justify="right" if col == "observed" else "left")
            for r in rows:
                verdict = "info" if r.passed is None else ("[green]pass[/]" if r.passed else "[red]FAIL[/]")
                table.add_row(r.fault, r.strength, r.metric, r.expected, _fmt(r.observed), verdict, r.note)
            Console(width=None if sys.stdout.isatty() else 200).print(table)
        if not all_passed(rows):
            raise typer.Exit(EXIT_FAILED)
