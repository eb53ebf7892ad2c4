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

# emoji=False: ``:smile:`` in a path or a CSV cell is printed as typed; user text is also markup-escaped (esc)
out = Console(width=None if sys.stdout.isatty() else 160, emoji=False)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160, emoji=False)


def esc(value: object) -> str:
    """User text (a path, a name, a CSV cell) for an f-string printed with Rich markup: ``[red]`` stays literal."""
    from rich.markup import escape

    return escape(str(value))
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
    """One JSON object per result (non-finite numbers as null), or one rich table for all runs ("n/a" where a task
    does not apply, e.g. segmentation utility for a generator without label maps)."""
    from harness.io import jsonable

    if as_json:
        for o in outcomes:
            for task, r in o.results:
                row = {"run_id": o.run_id, "generator": o.generator, "task": task, "metric": r.metric,
                       "value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high,
                       "feature_space": r.feature_space, "n": r.n, "substitute_features": r.substitute}
                if r.details.get("not_applicable"):
                    row["not_applicable"] = r.details["not_applicable"]
                sys.stdout.write(json.dumps(jsonable(row), allow_nan=False) + "\n")  # NaN -> null: valid JSON
        return
    table = Table(title="EchoBench results", show_lines=False)
    for col in ("generator", "task", "metric", "value", "95% CI", "feature space", "n", "run"):
        table.add_column(col, justify="right" if col in ("value", "n") else "left")
    for o in outcomes:
        for task, r in o.results:
            ci = f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]" if r.ci_low is not None else "—"
            space = (r.feature_space or "—") + (" (substitute, not FID)" if r.substitute else "")
            arrow = "↑" if r.higher_is_better else "↓"
            value = "n/a" if r.details.get("not_applicable") else _fmt(r.value)
            table.add_row(o.generator, task, f"{r.metric} {arrow}", value, ci, space, str(r.n or "—"), o.run_id[:8])
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
    features: Optional[str] = typer.Option(None, "--features", "-f", help="Feature space(s), comma-separated: inception (FID), dinov2, clip, radiomics, random-inception, random-dinov2, random-clip (harness list features). Default: inception, except that diversity runs in dinov2 and cmmd in clip when those weights are on this machine (the field's practice; never downloaded for this choice)."),
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
    from harness.validate import validate_device

    device = validate_device(device)
    task_options = _parse_task_options(task_option)
    not_run = sorted(set(task_options) - set(task))
    if not_run:
        raise UsageError(f"--task-option for {', '.join(not_run)}, which is not run (tasks: {', '.join(task)}); add --task "
                         f"{not_run[0]} or drop the option")
    gen_options = _parse_kv(option, "--option")
    if images is not None:
        gen_options["images"] = images
    req = RunRequest(
        generator=generator, tasks=list(task), data=data, reference=reference, n=n, n_ref=n_ref, seed=seed,
        train_data=train_data, n_train=n_train,
        features=features, weights=weights, checkpoint=checkpoint,
        conditions=[c.strip() for c in conditions.split(",") if c.strip()] if conditions else None,
        generator_options=gen_options, task_options=task_options, batch_size=batch_size,
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
        err.print(f"[bold]{esc(gen)}[/bold]")
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
    from harness.validate import check_output_dir

    check_output_dir(out_dir, must_be_empty=not overwrite, hint="choose another --out or pass --overwrite")
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
    err.print(f"wrote {n} samples to {esc(path)}")


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
    from harness.validate import check_output_file

    check_output_file(out_path)
    frame = Store(db).results_frame()
    import io

    buf = io.BytesIO()
    if fmt == "csv":
        from harness.csvsafe import spreadsheet_safe

        spreadsheet_safe(frame).to_csv(buf, index=False)
    else:
        frame.to_parquet(buf, index=False)
    atomic_write_bytes(out_path, buf.getvalue())
    err.print(f"wrote {len(frame)} results to {esc(out_path)}")


from harness.commands import register_all  # noqa: E402  (command groups defined beside their features)

register_all(app)


def _click_exception_classes() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """``(ClickException, Abort, Exit)`` classes of every click the installed typer may raise.

    typer ≥ 0.2x bundles its own copy of click (``typer._click``, with ``typer.exceptions.Abort/Exit``); older
    typer raises the ``click`` package's classes. Both are collected, so the mapping below is right for any
    ``typer>=0.12`` (pyproject) and for plug-ins that still raise ``click``'s own exceptions.
    """
    import importlib

    click_exc: list[type] = []
    abort: list[type] = []
    exit_: list[type] = []
    for mod_name in ("typer._click.exceptions", "click.exceptions", "typer.exceptions"):
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        for attr, bucket in (("ClickException", click_exc), ("Abort", abort), ("Exit", exit_)):
            cls = getattr(mod, attr, None)
            if isinstance(cls, type) and cls not in bucket:
                bucket.append(cls)
    return tuple(click_exc), tuple(abort), tuple(exit_)


def print_error(message: str, *, console: Console | None = None, label: str = "error:") -> None:
    """Print ``label message`` on one line: user text is never read as Rich markup or emoji codes, never wrapped."""
    from rich.text import Text

    (console or err).print(Text.assemble((label, "bold red"), " ", str(message)), soft_wrap=True, highlight=False)


def exit_code_for(exc: BaseException, *, debug: bool = False, console: Console | None = None) -> int:
    """The one place that turns an exception into an exit code (and prints its message).

    - :class:`~harness.errors.EchoBenchError` and click/typer usage errors (a bad option value, a missing or
      unknown option, an unknown command) → 2, one ``error:`` line (user text escaped), no traceback unless ``--debug``;
    - ``KeyboardInterrupt`` / click ``Abort`` → 130 ("re-run to resume");
    - typer/click ``Exit`` and ``SystemExit`` → their code;
    - anything else → 1, the traceback and "This is a bug in EchoBench".
    """
    console = console or err
    click_exc, abort, exit_ = _click_exception_classes()
    if isinstance(exc, SystemExit):
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    if exit_ and isinstance(exc, exit_):
        return int(getattr(exc, "exit_code", 0) or 0)
    if isinstance(exc, EchoBenchError):
        if debug:
            console.print_exception()
        print_error(str(exc), console=console)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt) or (abort and isinstance(exc, abort)):
        console.print("interrupted; re-run the same command to resume", markup=False)
        return 130
    if click_exc and isinstance(exc, click_exc):
        if type(exc).__name__ == "NoArgsIsHelpError":  # `harness` / `harness human` alone: the help text
            exc.show()
            return int(getattr(exc, "exit_code", 2))
        code = int(getattr(exc, "exit_code", 1))
        message = exc.format_message()
        ctx = getattr(exc, "ctx", None)
        if ctx is not None and code == 2:
            message = f"{message} (see {ctx.command_path} --help)"
        if debug:
            console.print_exception()
        print_error(" ".join(message.split()), console=console)  # click messages may hold newlines: one line
        return code
    console.print_exception()
    console.print("This is a bug in EchoBench; please report it with the traceback above.", style="bold red", markup=False)
    return 1


def run_cli(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return its exit code (never raises)."""
    _state["debug"] = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rc = app(args=argv, prog_name="harness", standalone_mode=False)  # returns typer.Exit's code in this mode
    except BaseException as exc:  # noqa: BLE001 (this is the one place exceptions become exit codes)
        return exit_code_for(exc, debug=_state["debug"])
    if rc == 130:
        err.print("interrupted; re-run the same command to resume", markup=False)
    return rc if isinstance(rc, int) else 0


def main() -> None:
    """Entry point: EchoBench and usage errors → 2, interrupts → 130, bugs → 1 (see :func:`exit_code_for`)."""
    sys.exit(run_cli())


if __name__ == "__main__":
    main()
