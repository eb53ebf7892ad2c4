"""The Streamlit page in-process (AppTest) on a DB seeded by real pipeline runs, and on an empty DB."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from leaderboard import APP_PATH
from leaderboard.app import FIRST_RUN, NO_STUDY
from tests.leaderboard.conftest import copy_with_matching_study, import_example_study


def _app(monkeypatch, url: str) -> AppTest:
    import streamlit as st

    monkeypatch.setenv("ECHOBENCH_DB", url)
    st.cache_data.clear()  # the page caches DB reads for 30 s in-process; a test that added runs must see them
    at = AppTest.from_file(str(APP_PATH), default_timeout=120)
    at.run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    return at


def _png_size(uri: str) -> tuple[int, int]:
    import base64
    import io

    from PIL import Image

    assert uri.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as im:
        return im.size


def test_seeded_leaderboard_detail_and_human_tabs(monkeypatch, seeded_db):
    at = _app(monkeypatch, seeded_db)
    assert at.title[0].value == "EchoBench leaderboard"
    el = at.dataframe[0]
    board = el.value
    assert {"real", "labelmap", "images"} <= set(board["generator"])
    # baselines are labelled reference rows around the ranked row, never ranked or starred
    assert list(board["rank"]) == ["noise floor", "1", "no-learning floor"]
    assert list(board["generator"]) == ["real", "images", "labelmap"]
    assert not board.astype(str).apply(lambda c: c.str.contains("★")).any().any()
    # default view: one headline per task (FD in radiomics space), named with its space, never FID
    config = json.loads(el.proto.columns)
    order = list(el.proto.column_order)
    metrics = [c for c in order if "[" in c]
    assert metrics == ["FD_radiomics ↓ [radiomics]"]
    assert not any(str(c).startswith("FID") for c in board.columns)
    # the column tooltip says what, which direction, which space, N
    help_ = config["FD_radiomics ↓ [radiomics]"]["help"]
    assert "Fréchet distance" in help_ and "Lower is better" in help_ and "radiomics" in help_ and "N = 20" in help_
    assert all(config[c].get("help") for c in order)
    # readable cells: 3 significant digits, value ± half-width or a compact bracket
    cell = board.set_index("generator").loc["labelmap", "FD_radiomics ↓ [radiomics]"]
    assert re.fullmatch(r"\d[\d.,]* (± [\d.]+|\[[-\d.,e]+, [-\d.,e]+\])", cell), cell
    # thumbnails: a PNG strip per row (Streamlit image column)
    assert config["samples"]["type_config"]["type"] == "image"
    sizes = [_png_size(u) for u in board["samples"]]
    assert all(w > 0 and h > 0 for w, h in sizes) and all(w > h for w, h in sizes)
    # gallery tab: the real image first, then every generator's rendering of the same phantom condition
    gallery = at.tabs[1]
    assert "real image of that condition first" in gallery.caption[0].value
    assert [m.value for m in gallery.markdown] == ["**condition**", "**real**", "**images**", "**labelmap**"]
    assert len(gallery.get("image")) >= 3 * 3  # ≥ 3 shared conditions in 20 phantom images
    # detail tab: run facts and the FID∞ fit from the stored (1/N, FD_N) points
    markdown = " ".join(m.value for m in at.markdown)
    assert "checkpoint sha256" in markdown
    assert any("intercept a =" in c.value for c in at.caption)
    assert len(at.get("vega_lite_chart")) >= 3  # FID∞ fit + human-evaluation charts
    # human tab: the imported (synthetic) study's descriptives, numbers formatted as in a paper
    assert any("SYNTHETIC" in w.value for w in at.warning)
    desc = next(d.value for d in at.dataframe if list(d.value.columns[:3]) == ["source", "n", "mean"])
    assert set(desc["source"]) == {"real", "cut", "cyclegan", "sd"}
    assert all(isinstance(v, str) for v in desc["mean"])
    assert not any(NO_STUDY in i.value for i in at.info)


def test_all_metrics_and_fractions_toggles(monkeypatch, seeded_db):
    at = _app(monkeypatch, seeded_db)
    at.toggle(key="all_metrics").set_value(True)
    at.toggle(key="fractions").set_value(True).run()
    el = at.dataframe[0]
    order = [c for c in el.proto.column_order if "[" in c]
    assert order[0] == "FD_radiomics ↓ [radiomics]" and "KD_radiomics ↓ [radiomics]" in order
    row = el.value.set_index("generator").loc["images"]
    assert row["FD_radiomics ↓ [radiomics]"].endswith("%")  # fraction of the way floor → noise floor
    assert not el.value.set_index("generator").loc["real", "FD_radiomics ↓ [radiomics]"].endswith("%")


def test_filters_narrow_the_table(monkeypatch, seeded_db):
    at = _app(monkeypatch, seeded_db)
    at.sidebar.multiselect[0].set_value([]).run()  # no data source selected
    assert any("No results match" in w.value for w in at.warning)


def test_agreement_tab_with_a_matching_study(monkeypatch, seeded_db, tmp_path):
    """A synthetic study rating the seeded generators: Kendall τ of each metric vs mean rating."""
    url = copy_with_matching_study(seeded_db, tmp_path / "copy.db")
    at = _app(monkeypatch, url)
    assert at.sidebar.selectbox[0].value == "zz-agreement"  # newest study selected
    tau = next(d.value for d in at.dataframe if "tau" in d.value.columns).set_index("metric")
    assert tau.loc["FD_radiomics ↓ [radiomics]", "tau"] == "1"  # real < labelmap < images in FD, as rated


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
    """A tiny-preset CycleGAN is a demo run: out of the ranked view by default, shown (marked) on request."""
    at = _app(monkeypatch, seeded_db_cyclegan)
    assert "cyclegan" not in set(at.dataframe[0].value["generator"])
    assert any("demo result(s) hidden" in c.value for c in at.caption)
    at.sidebar.checkbox(key="demo").check().run()
    board = at.dataframe[0].value
    row = board[board["generator"] == "cyclegan · demo"]
    assert len(row) == 1 and row["checkpoint"].item() != "—"  # keyed by the checkpoint's sha256
    assert row["rank"].item() == "demo"
