"""Validation suite: every criterion row passes at small N; the CLI exit codes; row semantics."""

from __future__ import annotations

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from tasks import validation


@pytest.mark.slow
def test_suite_passes_at_small_n():
    # n = 200 (the colour-shift calibration minimum at q = 0.995): 3 % tint → 8 tinted images, so recall ≥ 0.95
    # means every tinted image is found; copy-train 5 % → 8 copies. Two strengths per FD ladder.
    rows = validation.validate_metrics(n=200, size=64, speckle=(2.0, 3.0), blur=(1.0, 2.0))
    failed = [r for r in rows if r.passed is False]
    assert not failed, failed
    metrics = {r.metric for r in rows}
    assert {"colour-shift recall", "colour-shift false-positive rate", "memorisation: copies found",
            "memorisation: false flags", "recall [thumb16]", "coverage [thumb16]", "FD_radiomics"} <= metrics
    assert sum(r.passed is True for r in rows) >= 12


def test_all_passed_ignores_info_rows_and_thumbnails_shape():
    ok = validation.ValidationRow("x", "1", "m", "> 0", 1.0, True)
    info = validation.ValidationRow("x", "1", "m", "> 0", 0.0, None)
    bad = validation.ValidationRow("x", "1", "m", "> 0", 0.0, False)
    assert validation.all_passed([ok, info]) and not validation.all_passed([ok, bad])
    t = validation.thumbnails([np.zeros((40, 30), np.uint8), np.full((64, 64, 3), 255, np.uint8)])
    assert t.shape == (2, 256) and t[1].min() == pytest.approx(1.0, abs=1e-3)


def test_cli_exit_codes(monkeypatch):
    from harness.commands import validate_metrics as cmd

    app = typer.Typer()
    cmd.register(app)

    @app.callback()
    def _cb() -> None:  # keep validate-metrics a named sub-command
        pass

    rows = [validation.ValidationRow("tint", "3%", "colour-shift recall", "≥ 0.95", 1.0, True)]
    monkeypatch.setattr(validation, "validate_metrics", lambda **kw: rows)
    res = CliRunner().invoke(app, ["validate-metrics", "--json"])
    assert res.exit_code == 0 and '"passed": true' in res.output
    rows.append(validation.ValidationRow("blur", "1", "FD_radiomics", "> 1", 0.5, False))
    res = CliRunner().invoke(app, ["validate-metrics"])
    assert res.exit_code == cmd.EXIT_FAILED and "FAIL" in res.output
