"""CLI command groups that live beside their feature (human evaluation, leaderboard, submissions, ...).

Each module defines ``register(app)`` that adds its commands to the main typer app. Modules must be cheap
to import (no torch/streamlit at import time) so that ``harness --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

MODULES = (
    "harness.commands.leaderboard",
    "harness.commands.submission",
    "harness.commands.human",
    "harness.commands.human_app",
    "harness.commands.human_agreement",
    "harness.commands.train",
    "harness.commands.validate_metrics",
    "harness.commands.validate_intervals",
    "harness.commands.data_realism",
)


def register_all(app: typer.Typer) -> None:
    for name in MODULES:
        importlib.import_module(name).register(app)
