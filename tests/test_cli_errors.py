"""The one exception → exit-code mapping of the CLI (harness.cli.exit_code_for), for the exception classes the
installed typer actually raises (its bundled click copy, typer.exceptions) and the click package's own."""

from __future__ import annotations

import importlib

import pytest
from rich.console import Console

from harness.cli import _click_exception_classes, exit_code_for, run_cli
from harness.errors import DataError, UsageError


def _console():
    return Console(record=True, width=80, emoji=False, force_terminal=False)


def _click_modules():
    mods = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            mods.append(importlib.import_module(name))
        except ImportError:
            pass
    return mods


def test_the_installed_typer_exception_classes_are_found():
    import typer

    click_exc, abort, exit_ = _click_exception_classes()
    assert click_exc and abort and exit_
    assert typer.Exit in exit_ and typer.Abort in abort
    # what typer raises for a bad option value must be one of the handled classes
    from typer.testing import CliRunner

    from harness.cli import app

    res = CliRunner().invoke(app, ["run", "--n", "abc", "-g", "real", "-t", "fid"], standalone_mode=False)
    assert isinstance(res.exception, click_exc), type(res.exception).__mro__


@pytest.mark.parametrize("mod", _click_modules(), ids=lambda m: m.__name__)
@pytest.mark.parametrize("make", [
    lambda m: m.UsageError("no such thing"),
    lambda m: m.BadParameter("must be an integer", param_hint="'--n'"),
    lambda m: m.NoSuchOption("--bogus"),
    lambda m: m.MissingParameter(param_type="option", param_hint="'--task'"),
    lambda m: m.BadOptionUsage("--n", "needs a value"),
    lambda m: m.BadArgumentUsage("bad argument"),
], ids=["UsageError", "BadParameter", "NoSuchOption", "MissingParameter", "BadOptionUsage", "BadArgumentUsage"])
def test_click_usage_errors_exit_2_with_one_line(mod, make):
    con = _console()
    assert exit_code_for(make(mod), console=con) == 2
    text = con.export_text()
    assert text.startswith("error: ") and text.count("\n") == 1 and "Traceback" not in text


@pytest.mark.parametrize("mod", _click_modules(), ids=lambda m: m.__name__)
def test_click_abort_and_exit(mod):
    con = _console()
    abort_cls = getattr(mod, "Abort", None)  # typer's bundled copy keeps Abort/Exit in typer.exceptions
    if abort_cls is not None:
        assert exit_code_for(abort_cls(), console=con) == 130
    exit_cls = getattr(mod, "Exit", None)
    if exit_cls is not None:
        assert exit_code_for(exit_cls(3), console=con) == 3


def test_typer_exit_abort_interrupt_systemexit_and_bugs():
    import typer

    con = _console()
    assert exit_code_for(typer.Exit(0), console=con) == 0
    assert exit_code_for(typer.Exit(7), console=con) == 7
    assert exit_code_for(typer.Abort(), console=con) == 130
    assert exit_code_for(KeyboardInterrupt(), console=con) == 130
    assert "re-run" in con.export_text()
    assert exit_code_for(SystemExit(4), console=con) == 4
    con = _console()
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError as exc:
        assert exit_code_for(exc, console=con) == 1
    text = con.export_text()
    assert "Traceback" in text and "This is a bug in EchoBench" in text


@pytest.mark.parametrize("message", ["bad cell [/i] here", "path [red]x[/red].csv", "nice :smile: file", "[bold]", "a\\[b"])
def test_user_text_is_printed_literally(message):
    con = _console()
    assert exit_code_for(DataError(message), console=con) == 2
    assert con.export_text() == f"error: {message}\n"


def test_debug_shows_the_traceback_of_a_user_error():
    con = _console()
    try:
        raise UsageError("nope")
    except UsageError as exc:
        assert exit_code_for(exc, debug=True, console=con) == 2
    text = con.export_text()
    assert "Traceback" in text and "error: nope" in text


def test_run_cli_end_to_end(capsys):
    assert run_cli(["run", "--n", "abc", "-g", "real", "-t", "fid"]) == 2
    e = capsys.readouterr().err
    assert e.startswith("error: Invalid value for '--n'") and e.count("\n") == 1
    assert run_cli(["nonsense-command"]) == 2
    assert "No such command" in capsys.readouterr().err
    assert run_cli(["list", "[red]generator:smile:"]) == 2
    assert "[red]generator:smile:" in capsys.readouterr().err
