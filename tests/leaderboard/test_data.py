"""Pure-pandas leaderboard shaping: pivot, latest-wins, best per column, headers, filters, read-only access."""

from __future__ import annotations

import datetime as dt
import io
import sqlite3

import numpy as np
import pandas as pd
import pytest

from harness.errors import StoreError
from leaderboard import data


def _results(rows):
    base = dict(checkpoint="—", data="phantom", run_n=20, seed=0, task="fid", ci_low=np.nan, ci_high=np.nan, n=20,
                higher_is_better=False, started_at=pd.Timestamp("2026-01-01", tz="UTC"))
    frame = pd.DataFrame([{**base, **r} for r in rows])
    frame["order"] = range(len(frame))
    frame["run_id"] = frame.get("run_id", pd.Series([f"r{i}" for i in range(len(frame))]))
    return frame[data.RESULT_COLUMNS]


def test_pivot_latest_value_best_and_headers():
    res = _results([
        dict(generator="a", metric="FD_radiomics", feature_space="radiomics", value=5.0, ci_low=4.0, ci_high=6.0),
        dict(generator="b", metric="FD_radiomics", feature_space="radiomics", value=9.0),
        dict(generator="a", metric="FD_radiomics", feature_space="radiomics", value=3.0),  # newer: wins
        dict(generator="a", metric="recall", feature_space="radiomics", value=0.2, higher_is_better=True),
        dict(generator="b", metric="recall", feature_space="radiomics", value=0.7, higher_is_better=True),
        dict(generator="b", metric="FID", feature_space="inception", value=12.0),
    ])
    table = data.main_table(res)
    fd, rec, fid = "FD_radiomics ↓ [radiomics]", "recall ↑ [radiomics]", "FID ↓ [inception]"
    assert [c.header for c in table.columns] == [fid, fd, rec]  # Inception first
    assert table.value.loc[("a", "—"), fd] == 3.0
    assert np.isnan(table.value.loc[("a", "—"), fid])
    best = table.best
    assert best.loc[("a", "—"), fd] and not best.loc[("b", "—"), fd]  # lower is better
    assert best.loc[("b", "—"), rec] and not best.loc[("a", "—"), rec]  # higher is better
    assert list(table.value.index.get_level_values(0)) == ["b", "a"]  # sorted by the first ↓ column (FID)
    shown = table.display()
    assert shown.loc[shown["generator"] == "b", fd].item() == "9"
    assert shown.loc[shown["generator"] == "b", rec].item().startswith("★ ")
    csv = pd.read_csv(io.BytesIO(table.to_csv()))
    assert csv.loc[csv["generator"] == "a", fd].item() == 3.0


def test_non_inception_fid_is_renamed_and_substitutes_are_labelled():
    assert data.metric_name("FID", "radiomics") == "FD_radiomics"
    assert data.metric_name("FID_inf", "dinov2") == "FD_dinov2_inf"
    assert data.metric_name("FID", "inception") == "FID"
    header = data.metric_header("FD_random-inception", "random-inception", False)
    assert "SUBSTITUTE" in header and "random-inception" in header and "FID" not in header
    assert data.metric_header("vendi", "radiomics", True) == "vendi ↑ [radiomics]"


def test_filters():
    res = _results([
        dict(generator="a", metric="m", feature_space="radiomics", value=1.0, data="phantom", run_n=20),
        dict(generator="b", metric="m", feature_space="radiomics", value=2.0, data="folder:x", run_n=50,
             started_at=pd.Timestamp("2026-03-01", tz="UTC")),
        dict(generator="c", metric="m", feature_space="inception", value=3.0),
    ])
    gens = lambda f: sorted(data.main_table(res, f).value.index.get_level_values(0))  # noqa: E731
    assert gens(data.Filters()) == ["a", "b", "c"]
    assert gens(data.Filters(data=["folder:x"])) == ["b"]
    assert gens(data.Filters(feature_space=["inception"])) == ["c"]
    assert gens(data.Filters(n=(30, 60))) == ["b"]
    assert gens(data.Filters(dates=(dt.date(2026, 2, 1), dt.date(2026, 4, 1)))) == ["b"]
    assert data.main_table(res, data.Filters(data=[])).empty


def test_fid_inf_fit_reads_details_defensively():
    fit = data.fid_inf_fit({"points": [[0.1, 5.0], [0.05, 4.5]], "a": 4.0, "k": 10.0, "se_a": 0.1})
    assert list(fit["points"].columns) == ["inv_n", "fid_n"] and fit["a"] == 4.0
    assert data.fid_inf_fit({"a": 1.0}) is None
    assert data.fid_inf_fit(None) is None


def test_artifact_groups():
    arts = pd.DataFrame({"kind": ["color_shift_gallery", "memorization_pairs", "vendi_plot", "misc"], "path": list("abcd")})
    g = data.artifact_groups(arts)
    assert [list(g[k]["path"]) for k in ("color_shift", "memorization", "diversity", "other")] == [["a"], ["b"], ["c"], ["d"]]


def test_connect_is_read_only_and_missing_file_is_first_run(tmp_path):
    assert data.connect(f"sqlite:///{tmp_path / 'none.db'}") is None
    assert not (tmp_path / "none.db").exists()  # never created by the leaderboard
    path = tmp_path / "x.db"
    sqlite3.connect(path).execute("CREATE TABLE t (a INTEGER)").connection.commit()
    engine = data.connect(f"sqlite:///{path}")
    with engine.connect() as conn, pytest.raises(Exception, match="readonly"):
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    assert data.load_results(engine).empty  # no run/result tables yet
    assert data.load_study(engine) is None
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="garbage.db"):
        data.connect(f"sqlite:///{garbage}")


def test_run_with_a_space_free_metric_has_headers(tmp_path):
    """A run mixing colour shift (no feature space) with FID: the detail view's headers work (None, not NaN)."""
    from harness.store import Store

    url = f"sqlite:///{tmp_path / 'm.db'}"
    store = Store(url)
    run_id = store.start_run(generator="real", data_source="phantom", n=20, seed=0, status="ok")
    store.finish_run(run_id, [
        dict(task="fid", metric="FD_radiomics", value=0.1, n=20, feature_space="radiomics", higher_is_better=False),
        dict(task="color-shift", metric="colour_shift_rate", value=0.0, n=20, feature_space=None, higher_is_better=False),
        dict(task="fid", metric="FID", value=3.0, n=20, feature_space="random-inception", higher_is_better=False),
    ])
    res = data.run_results(data.connect(url), run_id)
    assert list(res["feature_space"]) == ["radiomics", None, "random-inception"]
    headers = [data.metric_header(m, s, bool(h)) for m, s, h in zip(res["metric"], res["feature_space"],
                                                                    res["higher_is_better"])]
    assert headers == ["FD_radiomics ↓ [radiomics]", "colour_shift_rate ↓ [none]",
                       "FD_random-inception ↓ [random-inception, SUBSTITUTE]"]
    assert not data.is_substitute(float("nan"))
