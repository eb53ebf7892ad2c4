"""Utility on the leaderboard: "fraction of real" beside the seg-utility mean Dice (table, Streamlit page, static
export read back) and "which distance predicts downstream Dice" in the Agreement tab and the export."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from leaderboard import data
from leaderboard import table as tbl

DICE = "mean_dice ↑ [none]"
ROLE = {"real": "noise floor", "labelmap": "no-learning floor"}
GENS = {"real": (0.80, 1.0), "cut": (0.60, 5.0), "labelmap": (0.32, 20.0)}  # mean Dice, FD_radiomics


def _frame(rows):
    base = dict(checkpoint="—", data="phantom", run_n=20, seed=0, ci_low=np.nan, ci_high=np.nan, n=20,
                started_at=pd.Timestamp("2026-01-01", tz="UTC"), substitute=False, stand_in=None, imageset_path=None)
    frame = pd.DataFrame([{**base, "baseline": ROLE.get(r["generator"]), **r} for r in rows])
    frame["order"] = range(len(frame))
    frame["run_id"] = [f"r{i}" for i in range(len(frame))]
    return frame[data.RESULT_COLUMNS]


def _dice_rows(gens=GENS, data_source="phantom"):
    return [dict(generator=g, task="seg-utility", metric="mean_dice", feature_space="none", value=d, ci_low=d - 0.02,
                 ci_high=d + 0.02, higher_is_better=True, data=data_source) for g, (d, _) in gens.items()]


def test_fraction_of_real_is_dice_over_the_real_rows_dice():
    res = _frame(_dice_rows() + _dice_rows({"sd": (0.7, 2.0)}, data_source="camus"))
    table = tbl.main_table(res)
    frac = table.real_fraction()
    assert list(frac.columns) == [DICE]
    assert frac.at[("cut", "—"), DICE] == pytest.approx(0.60 / 0.80)
    assert frac.at[("labelmap", "—"), DICE] == pytest.approx(0.32 / 0.80)
    assert frac.at[("real", "—"), DICE] == pytest.approx(1.0)
    assert np.isnan(frac.at[("sd", "—"), DICE])  # another data source than the real run: no ratio
    shown = table.display().set_index("generator")
    key = tbl.real_fraction_key(DICE)
    assert list(shown.columns).index(key) == list(shown.columns).index(DICE) + 1
    assert shown.at["cut", key] == "75%" and shown.at["sd", key] == ""
    csv = pd.read_csv(io.BytesIO(table.to_csv())).set_index("generator")
    assert csv.at["cut", key] == pytest.approx(0.75)
    # no real run: the column stays blank
    no_real = tbl.main_table(_frame(_dice_rows({"cut": (0.6, 5.0), "labelmap": (0.3, 20.0)})))
    assert no_real.real_fraction()[DICE].isna().all()
    assert set(no_real.display()[key]) == {""}


def _first_table(page: str) -> list[list[str]]:
    """The cells' text of the first <table> of an HTML page, row by row (header row first)."""
    from html.parser import HTMLParser

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.cell, self.tables = [], None, 0

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.tables += 1
            elif tag == "tr" and self.tables == 1:
                self.rows.append([])
            elif tag in ("td", "th") and self.tables == 1:
                self.cell = ""

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.cell is not None:
                self.rows[-1].append(self.cell.strip())
                self.cell = None

        def handle_data(self, text):
            if self.cell is not None:
                self.cell += text

    parser = Cells()
    parser.feed(page)
    return parser.rows


@pytest.fixture(scope="module")
def utility_db(tmp_path_factory) -> str:
    """real, cut, labelmap with a seg-utility mean Dice and an FD_radiomics that ranks them the same way."""
    from harness.store import Store

    url = f"sqlite:///{tmp_path_factory.mktemp('utility') / 'u.db'}"
    store = Store(url)
    for gen, (dice, fd) in GENS.items():
        config = {"generator": {"baseline": ROLE.get(gen), "stand_in": None}}
        rid = store.start_run(generator=gen, data_source="phantom", n=20, seed=0, feature_space="radiomics", config=config)
        store.finish_run(rid, [
            {"task": "fid", "metric": "FD_radiomics", "value": fd, "ci_low": fd * 0.9, "ci_high": fd * 1.1,
             "higher_is_better": False, "feature_space": "radiomics"},
            {"task": "seg-utility", "metric": "mean_dice", "value": dice, "ci_low": dice - 0.02, "ci_high": dice + 0.02,
             "n": 12, "higher_is_better": True}])
    return url


def test_streamlit_board_and_agreement_tab(monkeypatch, utility_db):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from leaderboard import APP_PATH
    from leaderboard.app import NO_STUDY

    monkeypatch.setenv("ECHOBENCH_DB", utility_db)
    st.cache_data.clear()
    at = AppTest.from_file(str(APP_PATH), default_timeout=120).run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    el = at.dataframe[0]
    key = tbl.real_fraction_key(DICE)
    order = list(el.proto.column_order)
    assert order.index(key) == order.index(DICE) + 1
    config = json.loads(el.proto.columns)
    assert config[key]["label"] == "fraction of real ↑" and "real-data Dice" in config[key]["help"]
    board = el.value.set_index("generator")
    assert board.at["cut", key] == "75%" and board.at["labelmap", key] == "40%"
    # Agreement tab without a study: the distance-vs-Dice section still shows
    assert any(NO_STUDY in i.value for i in at.info)
    text = " ".join(m.value for m in at.markdown).replace("\\", "")
    assert "FD_radiomics ranks the generators by downstream Dice with τ = 1.00" in text
    util = next(d.value for d in at.dataframe if "kendall_tau" in d.value.columns)
    assert util.set_index("metric").at["FD_radiomics", "verdict"] == "predicts"
    assert util.set_index("metric").at["FD_radiomics", "baselines"] == "labelmap, real"


def test_static_export_shows_fraction_of_real_and_the_utility_section(utility_db, tmp_path):
    from leaderboard.export import export_site

    out = tmp_path / "site"
    export_site(data.connect(utility_db), out)
    page = (out / "index.html").read_text()
    assert "fraction of real ↑</th>" in page and "real-data Dice" in page
    head, *rows = _first_table(page)
    col = head.index("fraction of real ↑")
    assert head[col - 1].startswith("mean_dice")
    cut = next(r for r in rows if r[1].startswith("cut"))
    assert cut[col] == "75%"
    assert "Which distance predicts downstream Dice" in page and (out / "plots" / "utility.svg").is_file()
    assert "FD_radiomics ranks the generators by downstream Dice with τ = 1.00" in page


def test_utility_chart_draws_tau_and_its_interval():
    from leaderboard import charts
    from tests.leaderboard.test_chart_specs import _field, _layers

    util = pd.DataFrame({"target": ["seg-utility"] * 3, "metric": ["FD_radiomics", "MMD_random-clip", "KD_x"],
                         "substitute": [False, True, False], "n_generators": [4, 4, 1], "kendall_tau": [1.0, -0.33, np.nan],
                         "ci_low": [0.67, -1.0, np.nan], "ci_high": [1.0, 0.33, np.nan], "p": [0.083, 0.75, np.nan],
                         "min_p": [0.083, 0.083, np.nan]})
    layers = _layers(charts.utility_chart(util).to_dict())
    enc, rows, _ = next(x for x in layers if x[2] == "circle")
    assert _field(enc, "x") == ("kendall_tau", "quantitative")
    assert {(r["label"], r["kendall_tau"]) for r in rows} == {("FD_radiomics", 1.0), ("MMD_random-clip *", -0.33)}
    rule = next(x for x in layers if x[2] == "rule" and "x2" in x[0])
    assert _field(rule[0], "x")[0] == "ci_low" and _field(rule[0], "x2")[0] == "ci_high"
