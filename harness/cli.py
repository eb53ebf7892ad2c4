"""The ``harness`` command line (typer + rich).

Exit codes: 0 success; 2 a user, data or environment error (one clear message; ``--debug`` shows the
traceback); 1 a bug (traceback on stderr); 130 interrupted (a re-run resumes the image set).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from harness.errors import EchoBenchError, UsageError

app = typer.Typer(
    name="harness",
    help="EchoBench: score synthetic echocardiography generators (FID family, diversity, colour shift, "
    "memorisation) and human ratings, and browse them on a leaderboard.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Data sources: export the phantom (with injected faults) or any source to a folder.", no_args_is_help=True)
app.add_typer(data_app, name="data")

out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
_state = {"debug": False}


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for user errors too."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
) -> None:
    _state["debug"] = debug
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


class RichReporter:
    """Rich progress bars on stderr (so ``--json`` output on stdout stays clean)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    @contextlib.contextmanager
    def stage(self, description: str, total: Optional[int]) -> Iterator:
        if not self.enabled:
            yield lambda k, total=None: None
            return
        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=err, transient=False) as progress:
            tid = progress.add_task(description, total=total)

            def advance(k: int, total: Optional[int] = None) -> None:
                if total is not None:
                    progress.update(tid, total=total)
                progress.advance(tid, k)

            yield advance


def _parse_kv(items: Optional[list[str]], what: str, *, decode: bool = True) -> dict:
    """``["a=1", "b=x"]`` → ``{"a": 1, "b": "x"}`` (values JSON-decoded when possible, unless ``decode=False``)."""
    outd: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {item!r} must look like KEY=VALUE")
        try:
            outd[key] = json.loads(value) if decode else value
        except json.JSONDecodeError:
            outd[key] = value
    return outd


def _parse_task_options(items: Optional[list[str]]) -> dict:
    outd: dict = {}
    for key, value in _parse_kv(items, "--task-option").items():
        task, dot, opt = key.partition(".")
        if not dot:
            raise UsageError(f"--task-option {key!r} must look like TASK.OPTION=VALUE (e.g. fid.n_boot=100)")
        outd.setdefault(task, {})[opt] = value
    return outd


def _fmt(x: Optional[float]) -> str:
    if x is None:
        return "—"
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.4e}"


def print_results(outcomes, as_json: bool) -> None:
    """One JSON object per result, or one rich table for all runs."""
    if as_json:
        for o in outcomes:
            for task, r in o.results:
                sys.stdout.write(json.dumps({
                    "run_id": o.run_id, "generator": o.generator, "task": task, "metric": r.metric,
                    "value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high,
                    "feature_space": r.feature_space, "n": r.n, "substitute_features": r.substitute,
                }) + "\n")
        return
    table = Table(title="EchoBench results", show_lines=False)
    for col in ("generator", "task", "metric", "value", "95% CI", "feature space", "n", "run"):
        table.add_column(col, justify="right" if col in ("value", "n") else "left")
    for o in outcomes:
        for task, r in o.results:
            ci = f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]" if r.ci_low is not None else "—"
            space = (r.feature_space or "—") + (" (substitute, not FID)" if r.substitute else "")
            arrow = "↑" if r.higher_is_better else "↓"
            table.add_row(o.generator, task, f"{r.metric} {arrow}", _fmt(r.value), ci, space, str(r.n or "—"), o.run_id[:8])
    out.print(table)


@app.command()
def run(
    generator: str = typer.Option(..., "--generator", "-g", help="Generator name (harness list generators), or path/file.py:Class."),
    task: list[str] = typer.Option(..., "--task", "-t", help="Task to run; repeat for several (harness list tasks)."),
    data: Optional[str] = typer.Option(None, "--data", help="Data source spec: phantom, folder:DIR, echonet:DIR, camus:DIR (add @split to choose what the real baseline samples). Default: the data a --checkpoint was trained on, else phantom."),
    reference: Optional[str] = typer.Option(None, "--reference", help="Reference set spec (default: the data source's reference split: phantom:reference, folder:DIR@test, echonet:DIR@test, camus:DIR@test)."),
    n: Optional[int] = typer.Option(None, "--n", help="Images to generate (default 800, or all images for --generator images)."),
    n_ref: Optional[int] = typer.Option(None, "--n-ref", help="Reference images (default: same as --n)."),
    train_data: Optional[str] = typer.Option(None, "--train-data", help="Training-set spec for memorisation (default: the training data recorded in the checkpoint, else the data source's train split)."),
    n_train: Optional[int] = typer.Option(None, "--n-train", help="Training images the memorization task searches for near-copies (default: same as --n); "
                                   "copies of training images past these are not found, so use the training set's size."),
    seed: int = typer.Option(0, "--seed", help="Seed for generation and for the tasks' resampling."),
    features: str = typer.Option("inception", "--features", "-f", help="Feature space: inception (FID), radiomics, random-inception, ..."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Weight file of the feature extractor (e.g. inception-2015-12-05.pt)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Generator checkpoint file or folder."),
    images: Optional[str] = typer.Option(None, "--images", help="Folder of generated images (with --generator images)."),
    conditions: Optional[str] = typer.Option(None, "--conditions", help="Comma-separated conditions for conditional generators."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="Generator option KEY=VALUE (repeatable)."),
    task_option: Optional[list[str]] = typer.Option(None, "--task-option", help="Task option TASK.KEY=VALUE, e.g. fid.n_boot=100."),
    batch_size: int = typer.Option(32, "--batch-size", help="Batch size for generation and feature extraction."),
    device: str = typer.Option("auto", "--device", help="auto (GPU if available), cpu, cuda, cuda:1, ..."),
    db: Optional[str] = typer.Option(None, "--db", help="Results DB URL or SQLite path (default ECHOBENCH_DB or sqlite:///echobench.db)."),
    home: Optional[Path] = typer.Option(None, "--out", help="Where image sets go (default ECHOBENCH_HOME or ./runs)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per result instead of a table."),
    num_processes: int = typer.Option(1, "--num-processes", min=1, help="Split generation and features across K processes on this machine (calls accelerate launch; see docs/scaling.md)."),
) -> None:
    """Generate (or reuse) an image set, extract features, run the tasks, store and print the results.

    Example: harness run --generator real --task fid --features radiomics --n 200
    """
    if num_processes > 1:
        _relaunch(num_processes)
        return
    from harness.runner import RunRequest
    from harness.runner import run as run_pipeline

    gen_options = _parse_kv(option, "--option")
    if images is not None:
        gen_options["images"] = images
    req = RunRequest(
        generator=generator, tasks=list(task), data=data, reference=reference, n=n, n_ref=n_ref, seed=seed,
        train_data=train_data, n_train=n_train,
        features=features, weights=weights, checkpoint=checkpoint,
        conditions=[c.strip() for c in conditions.split(",") if c.strip()] if conditions else None,
        generator_options=gen_options, task_options=_parse_task_options(task_option), batch_size=batch_size,
        device=device, db=db, home=home,
    )
    outcome = run_pipeline(req, RichReporter(enabled=not as_json))
    if outcome is not None:  # None: a rank other than 0 of a multi-process run
        print_results([outcome], as_json)


def _relaunch(num_processes: int) -> None:
    """Run this same ``harness run`` command under ``accelerate launch`` with ``num_processes`` processes."""
    import subprocess

    from harness.distributed import launch_command, strip_option, world_size_from_env

    if world_size_from_env() > 1:
        raise UsageError("--num-processes cannot be used under accelerate launch / torchrun (it is already distributed)")
    cmd = launch_command(strip_option(sys.argv[1:], "--num-processes"), num_processes)
    rc = subprocess.run(cmd).returncode
    if rc != 0:
        raise typer.Exit(rc)


@app.command()
def quickstart(
    n: int = typer.Option(200, "--n", help="Images per generator."),
    features: str = typer.Option("radiomics", "--features", "-f", help="Feature space (radiomics runs offline)."),
    db: Optional[str] = typer.Option(None, "--db", help="Results DB URL or SQLite path."),
    home: Optional[Path] = typer.Option(None, "--out", help="Where image sets go."),
) -> None:
    """Score the two baselines on the embedded phantom, offline: real (noise floor) and labelmap (untranslated label maps, the lower baseline), and print the table."""
    from harness.runner import RunRequest
    from harness.runner import run as run_pipeline

    outcomes = []
    for gen in ("real", "labelmap"):
        err.print(f"[bold]{gen}[/bold]")
        outcomes.append(run_pipeline(RunRequest(generator=gen, tasks=["fid"], n=n, features=features, db=db, home=home), RichReporter()))
    print_results(outcomes, as_json=False)
    err.print("Browse them: harness leaderboard   (or export: harness export --format csv --out results.csv)")


@app.command("list")
def list_components(
    kind: Optional[str] = typer.Argument(None, help="generators | tasks | features | datasets (default: all)."),
) -> None:
    """List registered components: name, origin (built-in / package), description, availability."""
    from harness.registry import REGISTRIES

    kinds = list(REGISTRIES) if kind is None else [kind]
    for k in kinds:
        if k not in REGISTRIES:
            import difflib

            close = difflib.get_close_matches(k, list(REGISTRIES), n=1)
            raise UsageError(f"unknown kind {k!r}.{' Did you mean ' + repr(close[0]) + '?' if close else ''} Kinds: {', '.join(REGISTRIES)}")
        table = Table(title=k)
        for col in ("name", "origin", "description", "status"):
            table.add_column(col)
        for entry in REGISTRIES[k].entries(load=True):
            if entry.error:
                status = f"[red]broken: {entry.error}[/red]"
            else:
                try:
                    status = entry.obj.availability()
                except Exception as exc:  # an availability check of a plug-in must not break the listing
                    status = f"[red]broken: {type(exc).__name__}: {exc}[/red]"
            table.add_row(entry.name, entry.origin, entry.description, status)
        out.print(table)


@app.command()
def describe(
    kind: str = typer.Argument(..., help="generator | task | feature | dataset"),
    name: str = typer.Argument(..., help="Component name."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Generator preset (e.g. paper, tiny)."),
) -> None:
    """Describe a component: what it is, its options and presets; for generators the networks and their parameter counts."""
    from harness.registry import REGISTRIES

    plural = {"generator": "generators", "task": "tasks", "feature": "features", "dataset": "datasets"}
    reg = REGISTRIES.get(plural.get(kind, kind))
    if reg is None:
        raise UsageError(f"unknown kind {kind!r}; kinds: {', '.join(plural)}")
    obj = reg.get(name)
    info: dict = {"name": name, "kind": kind, "description": getattr(obj, "description", "") or (obj.__doc__ or "").strip()}
    doc = (obj.__doc__ or "").strip()
    if doc:
        info["doc"] = doc
    spec = getattr(obj, "spec", None)
    if spec is not None:
        info.update({"version": spec.version, "needs_reference": spec.needs_reference,
                     "needs_features": spec.needs_features, "default_features": spec.default_features,
                     "options": spec.parameters})
    if kind == "generator":
        info["presets"] = sorted(getattr(obj, "presets", {}) or {})
        info["conditions"] = list(getattr(obj, "conditions", ()))
        info["trainable"] = getattr(obj, "trainable", False)
        describe_preset = getattr(obj, "describe_preset", None)
        if describe_preset is not None:
            info["preset"] = preset or (info["presets"][0] if info["presets"] else None)
            info.update(describe_preset(info["preset"]))
        elif preset is not None:
            obj.preset(preset)
    for attr in ("feature_space", "dim", "substitute", "splits"):
        if hasattr(obj, attr):
            info[attr] = getattr(obj, attr)
    try:
        info["status"] = obj.availability()
    except AttributeError:
        pass
    out.print_json(json.dumps(info, default=str))


@data_app.command("export")
def data_export(
    source: str = typer.Argument("phantom", help="Data spec: phantom, phantom:train, folder:DIR, echonet:DIR[@split]."),
    n: int = typer.Option(400, "--n", help="Number of samples."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder (must not exist or be empty)."),
    inject: Optional[list[str]] = typer.Option(None, "--inject", help="Fault to inject, e.g. tint:0.03:orange, drop-condition:asd, copy-train:0.05, speckle:2, crop:0.2, blur:1.5 (repeatable)."),
    size: Optional[int] = typer.Option(None, "--size", help="Image size (phantom: default 256)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the phantom."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
) -> None:
    """Write images, label maps, captions.csv (and injected.csv) to a folder any tool can read.

    Example: harness data export phantom --n 400 --out phantom400 --inject tint:0.03:orange
    """
    from harness.data.base import open_data_spec
    from harness.data.export import export_data

    options: dict = {}
    if size is not None:
        options["size"] = size
    if inject:
        options["inject"] = list(inject)
    if source.partition(":")[0] == "phantom":
        options["seed"] = seed
    src, split = open_data_spec(source, **options)
    reporter = RichReporter()
    with reporter.stage(f"exporting {source}", n) as advance:
        path = export_data(src, split, n, out_dir, seed=seed, overwrite=overwrite, progress=advance)
    err.print(f"wrote {n} samples to {path}")


@app.command("export")
def export_results(
    fmt: str = typer.Option("csv", "--format", help="csv or parquet."),
    out_path: Path = typer.Option(..., "--out", help="Output file."),
    db: Optional[str] = typer.Option(None, "--db", help="Results DB URL or SQLite path."),
) -> None:
    """Export every stored result (one row per metric, with its run) as CSV or Parquet.

    Example: harness export --format csv --out results.csv
    """
    from harness.io import atomic_write_bytes
    from harness.store import Store

    if fmt not in ("csv", "parquet"):
        raise UsageError(f"--format must be csv or parquet, not {fmt!r}")
    frame = Store(db).results_frame()
    import io

    buf = io.BytesIO()
    if fmt == "csv":
        frame.to_csv(buf, index=False)
    else:
        frame.to_parquet(buf, index=False)
    atomic_write_bytes(out_path, buf.getvalue())
    err.print(f"wrote {len(frame)} results to {out_path}")


from harness.commands import register_all  # noqa: E402  (command groups defined beside their features)

register_all(app)


def main() -> None:
    """Entry point: maps EchoBench errors to exit code 2, bugs to 1."""
    try:
        rc = app(standalone_mode=False)  # returns the exit code of typer.Exit (130 for Ctrl-C) in this mode
    except EchoBenchError as exc:
        if _state["debug"]:
            err.print_exception()
        err.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; re-run the same command to resume")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.Abort):
            err.print("aborted")
            sys.exit(130)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        err.print_exception()
        err.print("[bold red]This is a bug in EchoBench[/bold red]; please report it with the traceback above.")
        sys.exit(1)
    if rc == 130:
        err.print("interrupted; re-run the same command to resume")
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
