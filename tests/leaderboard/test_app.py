"""The Streamlit page in-process (AppTest) on a DB seeded by real pipeline runs, and on an empty DB."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from leaderboard import APP_PATH
from leaderboard.app import FIRST_RUN, NO_STUDY
from tests.leaderboard.conftest import import_example_study


def _app(monkeypatch, url: str) -> AppTest:
    import streamlit as st

    monkeypatch.setenv("ECHOBENCH_DB", url)
    st.cache_data.clear()  # the page caches DB reads for 30 s in-process; a test that added runs must see them
    at = AppTest.from_file(str(APP_PATH), default_timeout=120)
    at.run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    return at


def test_seeded_leaderboard_detail_and_human_tabs(monkeypatch, seeded_db):
    at = _app(monkeypatch, seeded_db)
    assert at.title[0].value == "EchoBench leaderboard"
    board = at.dataframe[0].value
    assert {"real", "labelmap", "images"} <= set(board["generator"])
    headers = [c for c in board.columns if "[" in str(c)]
    assert "FD_radiomics ↓ [radiomics]" in headers and "KD_radiomics ↓ [radiomics]" in headers
    assert not any(str(c).startswith("FID") for c in headers)  # radiomics numbers are never called FID
    assert all(c.endswith("]") for c in headers)  # every metric header names its feature space
    # the noise floor (real) beats the untranslated label maps, and is marked best
    fd = board.set_index("generator")["FD_radiomics ↓ [radiomics]"]
    assert fd["real"].startswith("★") and not fd["labelmap"].startswith("★")
    # detail tab: run facts and the FID∞ fit from the stored (1/N, FD_N) points
    markdown = " ".join(m.value for m in at.markdown)
    assert "checkpoint sha256" in markdown
    assert any("intercept a =" in c.value for c in at.caption)
    assert len(at.get("vega_lite_chart")) >= 3  # FID∞ fit + human-evaluation charts
    # human tab: the imported (synthetic) study's descriptives
    assert any("SYNTHETIC" in w.value for w in at.warning)
    desc = next(d.value for d in at.dataframe if list(d.value.columns[:3]) == ["source", "n", "mean"])
    assert set(desc["source"]) == {"real", "cut", "cyclegan", "sd"}
    assert not any(NO_STUDY in i.value for i in at.info)


def test_filters_narrow_the_table(monkeypatch, seeded_db):
    at = _app(monkeypatch, seeded_db)
    at.sidebar.multiselect[0].set_value([]).run()  # no data source selected
    assert any("No results match" in w.value for w in at.warning)


def test_agreement_tab_with_a_matching_study(monkeypatch, seeded_db, tmp_path):
    """A synthetic study rating the seeded generators: Kendall τ of each metric vs mean rating."""
    from harness.store import Store
    from human_eval.db import import_study
    from human_eval.schema import study_from_frames

    path = tmp_path / "copy.db"
    with sqlite3.connect(seeded_db.removeprefix("sqlite:///")) as src, sqlite3.connect(path) as dst:
        src.backup(dst)  # a file copy could miss pages still in the WAL
    url = f"sqlite:///{path}"
    rng = np.random.default_rng(1)
    rows = [{"participant_id": f"P{p}", "image_id": f"{s}-{i}", "source": s,
             "rating": int(np.clip(round(rng.normal(mu, 0.7)), 1, 5))}
            for p in range(4) for s, mu in (("real", 4.5), ("images", 3.0), ("labelmap", 1.2)) for i in range(5)]
    import_study(Store(url), study_from_frames(pd.DataFrame(rows)), "zz-agreement", config={"synthetic": True})
    at = _app(monkeypatch, url)
    assert at.sidebar.selectbox[0].value == "zz-agreement"  # newest study selected
    tau = next(d.value for d in at.dataframe if "tau" in d.value.columns).set_index("metric")
    assert tau.loc["FD_radiomics ↓ [radiomics]", "tau"] == 1.0  # real < images < labelmap, as rated


def test_empty_and_missing_database_show_the_first_run_message(monkeypatch, tmp_path):
    missing = tmp_path / "never.db"
    at = _app(monkeypatch, f"sqlite:///{missing}")
    assert [i.value for i in at.info] == [FIRST_RUN] and not at.error
    assert not missing.exists()
    from harness.store import Store

    Store(f"sqlite:///{tmp_path / 'empty.db'}")  # migrated, no runs
    at = _app(monkeypatch, f"sqlite:///{tmp_path / 'empty.db'}")
    assert [i.value for i in at.info] == [FIRST_RUN] and not at.error


def test_study_without_results(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    import_example_study(url)
    at = _app(monkeypatch, url)
    assert FIRST_RUN in [i.value for i in at.info]  # leaderboard tab
    assert any("SYNTHETIC" in w.value for w in at.warning)  # the human tab still works


def test_unopenable_database_is_a_store_error(monkeypatch, tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not sqlite" * 200)
    monkeypatch.setenv("ECHOBENCH_DB", f"sqlite:///{bad}")
    at = AppTest.from_file(str(APP_PATH), default_timeout=60).run()
    assert "cannot open the results database" in at.error[0].value
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "leaderboard", "--db", str(bad), "--port", "8999"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "cannot open the results database" in proc.stderr


def test_streamlit_command_line():
    from harness.webapp import streamlit_command

    cmd = streamlit_command(APP_PATH, "sqlite:///x.db", 8600)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4] == str(APP_PATH)
    joined = " ".join(cmd)
    for flag in ("--server.headless true", "--server.port 8600", "--browser.gatherUsageStats false",
                 "--server.fileWatcherType none", "--server.address 127.0.0.1"):
        assert flag in joined
    assert "sqlite:///x.db" not in joined  # the URL travels in the environment (harness.webapp.DB_ENV)


@pytest.mark.slow
def test_trained_cyclegan_appears(monkeypatch, seeded_db_cyclegan):
    at = _app(monkeypatch, seeded_db_cyclegan)
    board = at.dataframe[0].value
    row = board[board["generator"] == "cyclegan"]
    assert len(row) == 1 and row["checkpoint"].item() != "—"  # keyed by the checkpoint's sha256
