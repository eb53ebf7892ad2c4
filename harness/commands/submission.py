"""Commands for outside adapters: ``new generator``, ``validate generator``, ``submit``, ``import-results``.

The work is done in :mod:`harness.scaffold`, :mod:`harness.contract` and :mod:`harness.bundle`; this module
only parses options and prints with rich. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.errors import UsageError

out = Console(emoji=False)
err = Console(stderr=True, emoji=False)  # user text (names, paths) is printed with markup=False

new_app = typer.Typer(help="Scaffold a new component as an installable plug-in package.", no_args_is_help=True)
validate_app = typer.Typer(help="Check a component against its protocol (pass/fail table).", no_args_is_help=True)


@new_app.command("generator")
def new_generator(
    name: str = typer.Argument(..., help="Registered name of the new adapter (lowercase, e.g. my-gan)."),
    parent: Path = typer.Option(Path("."), "--dir", help="Folder in which to create echobench-NAME/ (default: here)."),
) -> None:
    """Write echobench-NAME/: pyproject with the entry point, adapter (from generators/template), a contract
    test and a README. It passes `harness validate generator NAME` out of the box (placeholder images).

    Example: harness new generator my-gan --dir ~/src
    """
    from harness.scaffold import new_generator as scaffold

    result = scaffold(name, parent)
    for path in result.files:
        err.print(f"  wrote {path}", markup=False)
    err.print(f"Next: pip install -e {result.root} && harness validate generator {name}", markup=False)


@validate_app.command("generator")
def validate_generator(
    name: str = typer.Argument(..., help="Generator name (harness list generators), path/file.py:Class or package.module:Class."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint file or folder passed to load()."),
    n: int = typer.Option(8, "--n", help="Images per sample() call (every check samples afresh)."),
    batch_size: int = typer.Option(3, "--batch-size", help="The small batch size compared with one batch of n."),
    seed: int = typer.Option(0, "--seed", help="Seed of the determinism checks."),
    data: Optional[str] = typer.Option(None, "--data", help="Data source spec for adapters that take one (default: 64-px phantom)."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="Generator option KEY=VALUE (repeatable)."),
    device: str = typer.Option("cpu", "--device", help="Device passed to load()."),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON lines."),
) -> None:
    """Run the adapter through the protocol checks and print a pass/fail table; exit 0 only if every
    required check passes.

    Example: harness validate generator my-gan --checkpoint runs/my-gan.safetensors
    """
    from harness.cli import _parse_kv
    from harness.contract import ContractViolation, all_passed, check_generator, results_as_dicts
    from harness.registry import generators

    if checkpoint is not None and not checkpoint.exists():
        raise UsageError(f"--checkpoint {checkpoint} does not exist")
    gen_cls = generators.get(name)
    results = check_generator(gen_cls, checkpoint=checkpoint, n=n, seed=seed, batch_size=batch_size, data=data,
                              options=_parse_kv(option, "--option"), device=device, name=name)
    if as_json:
        for row in results_as_dicts(results):
            out.print(json.dumps(row), highlight=False, soft_wrap=True)
    else:
        table = Table(title=f"contract: generator {name}")
        for col in ("check", "result", "required", "details"):
            table.add_column(col)
        style = {"pass": "green", "fail": "red", "skip": "yellow", "info": "cyan"}
        for r in results:
            table.add_row(Text(r.name), f"[{style[r.status]}]{r.status.upper()}[/]", "yes" if r.required else "no", Text(r.message))
        out.print(table)
    if not all_passed(results):
        failed = [r.name for r in results if not r.ok]
        raise ContractViolation(f"generator {name!r} failed {len(failed)} required check(s): {', '.join(failed)}")
    err.print(f"generator {name!r} meets the contract", markup=False)


def submit(
    run_id: str = typer.Option(..., "--run", help="Run id (or its first 8+ characters, as `harness run` prints)."),
    out_path: Path = typer.Option(..., "--out", help="Bundle file to write (.zip)."),
    samples: int = typer.Option(16, "--samples", help="How many images to include as a sample."),
    submitter: Optional[str] = typer.Option(None, "--submitter", help="Who submits (name, e-mail, team): stored as provenance."),
    db: Optional[str] = typer.Option(None, "--db", help="Results DB URL or SQLite path."),
) -> None:
    """Pack a finished run into a verifiable bundle: run.json, results, image hashes, adapter
    name/version and a few sample images.

    Example: harness submit --run 1a2b3c4d --out my-gan.zip --submitter "Jane Doe <jane@lab.org>"
    """
    from harness.bundle import submit as make_bundle

    info = make_bundle(run_id, out_path, db=db, samples=samples, submitter=submitter)
    err.print(f"wrote {info.path} (run {info.run_id}, {info.files} files, {info.samples} sample images, sha256 {info.sha256[:16]}…)",
              markup=False)


def import_results(
    bundle: Path = typer.Argument(..., help="Bundle file made by `harness submit`."),
    db: Optional[str] = typer.Option(None, "--db", help="Results DB URL or SQLite path."),
) -> None:
    """Verify a submission bundle (hashes, schema version, known task versions) and add its run and
    results to the store, marked as submitted with their provenance.

    Example: harness import-results my-gan.zip --db leaderboard.db
    """
    from harness.bundle import import_bundle

    info = import_bundle(bundle, db=db)
    err.print(f"imported {info.results} result(s) of generator {info.generator!r} as run {info.run_id} "
              f"(submitted run {info.original_run_id}, bundle sha256 {info.bundle_sha256[:16]}…)", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(new_app, name="new")
    app.add_typer(validate_app, name="validate")
    app.command("submit")(submit)
    app.command("import-results")(import_results)
