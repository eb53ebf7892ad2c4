"""`harness human import`: all-or-nothing, idempotent, round trip through the store."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from harness.store import Store
from human_eval.db import import_study, list_studies, load_study
from human_eval.examples import make_example_study
from human_eval.schema import read_study


def harness(*args):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=os.environ, timeout=300)


@pytest.fixture
def example_csv(tmp_path):
    ratings, participants = make_example_study()
    ratings.to_csv(tmp_path / "ratings.csv", index=False)
    participants.to_csv(tmp_path / "participants.csv", index=False)
    return tmp_path / "ratings.csv", tmp_path / "participants.csv"


def test_import_roundtrip_and_idempotent(example_csv):
    ratings, participants = example_csv
    store = Store()
    tables = read_study(ratings, participants)
    first = import_study(store, tables, "ex")
    assert (first.status, first.ratings, first.participants) == ("imported", 680, 17)
    assert import_study(store, read_study(ratings, participants), "ex").status == "unchanged"
    back = load_study(store, "ex")
    cols = ["participant_id", "image_id", "source", "rating"]
    pd.testing.assert_frame_equal(back.ratings[cols].reset_index(drop=True),
                                  tables.ratings[cols].reset_index(drop=True), check_dtype=False)
    assert set(back.participants["participant_id"]) == set(tables.participants["participant_id"])


def test_cli_import_bad_file_writes_nothing(tmp_path, example_csv):
    ratings, participants = example_csv
    frame = pd.read_csv(ratings)
    frame.loc[5, "rating"] = 6
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    proc = harness("human", "import", str(bad), "--participants", str(participants), "--study", "s1")
    assert proc.returncode == 2
    assert "line 7, column rating" in proc.stderr and "Traceback" not in proc.stderr
    assert list_studies(Store()) == []
    ok = harness("human", "import", str(ratings), "--participants", str(participants), "--study", "s1")
    assert ok.returncode == 0, ok.stderr
    other = harness("human", "import", str(bad.with_name("ratings.csv")), "--study", "s1")  # same name, other data
    assert other.returncode == 2 and "--replace" in other.stderr
    assert harness("human", "import", str(ratings), "--study", "s1", "--replace").returncode == 0
