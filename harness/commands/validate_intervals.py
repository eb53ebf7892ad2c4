"""``harness validate-intervals``: simulation study of the coverage of every interval EchoBench reports.

Exit codes: 0 every row within tolerance; 3 at least one row out of tolerance (the table says which); 2 a user
error (bad option), as every command.
"""

from __future__ import annotations

import json
import sys

import typer

EXIT_FAILED = 3
DEFAULT_DIMS = "8,64"
DEFAULT_NS = "100,300"


def _ints(text: str, name: str) -> tuple[int, ...]:
    from harness.errors import UsageError

    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"{name}: expected comma-separated whole numbers, got {text!r}") from None
    if not vals or min(vals) < 2:
        raise UsageError(f"{name}: expected comma-separated whole numbers ≥ 2, got {text!r}")
    return vals


def register(app: typer.Typer) -> None:
    @app.command("validate-intervals")
    def validate_intervals(
        quick: bool = typer.Option(False, "--quick", help="CI mode: d=8, N=100, different distributions, 60 simulated "
                                                           "sets, 100 bootstrap resamples (~10 s CPU); catches gross failures only."),
        dims: str | None = typer.Option(None, "--dims", help=f"Feature dimensions of the FID/FID∞/KID grid, e.g. 8,64,2048 "
                                                              f"[default: {DEFAULT_DIMS}; with --full all of 8,64,512,2048]."),
        ns: str | None = typer.Option(None, "--ns", help=f"Set sizes N of the grid (generated = reference size) [default: "
                                                          f"{DEFAULT_NS}; with --full all of 100,300,1000,2000]."),
        reps: int = typer.Option(200, "--reps", help="Simulated data sets per row (400 gives ±2.2 points)."),
        n_boot: int = typer.Option(200, "--n-boot", help="Bootstrap resamples per FID/FID∞/KID interval (the default of the metrics)."),
        families: str = typer.Option("fid,fid_inf,kid,cluster_bootstrap,tost,wilson,cmmd,dice", "--families",
                                     help="Intervals to study."),
        tolerance: float = typer.Option(0.025, "--tolerance", help="A row fails when its coverage CI lies entirely below nominal − this (above nominal + this: 'conservative', passes)."),
        seed: int = typer.Option(0, "--seed", help="Master seed (each simulated set has its own stream)."),
        full: bool = typer.Option(False, "--full", help="The README grid: d 8,64,512,2048 × N 100,300,1000,2000, equal and "
                                                         "different distributions, sets per cell from tasks.interval_study.FULL_REPS "
                                                         "(fewer where a set is expensive); --dims/--ns pick a part of it. About "
                                                         "an hour on 2 CPU cores."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object per row (as each row is done) instead of a table."),
    ) -> None:
        """Simulate data with known truth and check that each reported interval covers it as often as it claims.

        Intervals (what each covers): FID_N → E[FID_N] at this N (reference statistics fixed); FID∞ → the
        population FID (not reported when N ≤ d: the row says so); KID → the population MMD²; CMMD →
        E[CMMD_N | reference set]; mean Dice → the population mean over test images; human evaluation:
        cluster bootstrap and TOST 90% CI → the population mean-rating difference; Wilson → the flag rate.

        Grid: the default runs d 8,64 × N 100,300 (--dims/--ns), equal and different Gaussians, --reps sets per
        cell (a few minutes); --full runs the README grid d 8,64,512,2048 × N 100,300,1000,2000 with fewer sets
        on the expensive cells (about an hour on 2 cores); --quick is the CI smoke test (~10 s).

        Each row: nominal vs empirical coverage with its binomial (Wilson) 95% CI. A row FAILS when that CI
        lies entirely below nominal − tolerance (default 2.5 points); entirely above nominal + tolerance is
        "conservative" and passes; "n/a" = the interval is deliberately not reported there.

        Exit codes: 0 every row within tolerance; 3 at least one row fails; 2 bad options.

        Example: harness validate-intervals --quick
        """
        from rich.console import Console
        from rich.table import Table

        from harness.errors import UsageError
        from tasks.interval_study import FAMILIES, FULL_DIMS, FULL_NS, FULL_OTHER_REPS, all_passed, coverage_study, full_grid_reps

        fams = tuple(f.strip() for f in families.split(",") if f.strip())
        bad = set(fams) - set(FAMILIES)
        if bad:
            raise UsageError(f"--families: unknown {', '.join(sorted(bad))}; choose from {', '.join(FAMILIES)}")
        if not 0 < tolerance < 0.5:
            raise UsageError(f"--tolerance must be between 0 and 0.5 (got {tolerance})")
        if quick:
            kw = dict(dims=(8,), ns=(100,), kinds=("different",), reps=60, truth_reps=300, n_boot=100, human_reps=60,
                      human_boot=500, wilson_ns=(100,), wilson_ps=(0.1,), cmmd_ns=(100,), dice_ns=(20,))
        elif full:
            pick = {"dims": FULL_DIMS if dims is None else _ints(dims, "--dims"),
                    "ns": FULL_NS if ns is None else _ints(ns, "--ns")}
            kw = dict(**pick, reps=reps, n_boot=n_boot, reps_for=full_grid_reps, human_reps=FULL_OTHER_REPS)
        else:
            kw = dict(dims=_ints(dims or DEFAULT_DIMS, "--dims"), ns=_ints(ns or DEFAULT_NS, "--ns"), reps=reps, n_boot=n_boot)

        def stream(row) -> None:
            if as_json:
                sys.stdout.write(json.dumps(row.to_dict()) + "\n")
                sys.stdout.flush()

        err = Console(stderr=True)
        with err.status("simulating") as status:
            rows = coverage_study(families=fams, tolerance=tolerance, seed=seed, on_row=stream,
                                  progress=lambda msg: status.update(f"simulating: {msg}"), **kw)
        if not as_json:
            reps_txt = "quick" if quick else f"{reps} sets per row"
            table = Table(title=f"Interval coverage on synthetic data with known truth ({reps_txt}, seed {seed}, "
                                f"tolerance ±{tolerance:.1%})")
            for col in ("interval", "covers", "scenario", "nominal", "coverage", "95% CI", "sets", "width", "", "note"):
                table.add_column(col, justify="right" if col in ("nominal", "coverage", "sets", "width") else "left")
            for r in rows:
                if r.reps == 0:  # the product reports no interval here (by design; the note says why)
                    table.add_row(r.interval, r.target, r.scenario, f"{r.nominal:.0%}", "not reported", "—", "—", "—",
                                  "[yellow]n/a[/]", r.note)
                    continue
                ci = "exact" if r.cov_low == r.cov_high else f"{r.cov_low:.1%}–{r.cov_high:.1%}"
                table.add_row(r.interval, r.target, r.scenario, f"{r.nominal:.0%}", f"{r.coverage:.1%}", ci,
                              "—" if r.cov_low == r.cov_high else str(r.reps), f"{r.mean_width:.3g}", "[green]pass[/]" if r.passed else "[red]FAIL[/]",
                              r.note)
            Console(width=None if sys.stdout.isatty() else 220).print(table)
        if not all_passed(rows):
            raise typer.Exit(EXIT_FAILED)
