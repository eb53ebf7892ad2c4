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
from leaderboard import table as tbl


def _results(rows):
    base = dict(checkpoint="—", data="phantom", run_n=20, seed=0, task="fid", ci_low=np.nan, ci_high=np.nan, n=20,
                higher_is_better=False, started_at=pd.Timestamp("2026-01-01", tz="UTC"), substitute=False,
                baseline=None, stand_in=None, imageset_path=None)
    frame = pd.DataFrame([{**base, **r} for r in rows])
    frame["order"] = range(len(frame))
    frame["run_id"] = frame.get("run_id", pd.Series([f"r{i}" for i in range(len(frame))]))
    return frame[data.RESULT_COLUMNS]


def test_pivot_latest_value_and_headers():
    res = _results([
        dict(generator="a", metric="FD_radiomics", feature_space="radiomics", value=5.0, ci_low=4.0, ci_high=6.0),
        dict(generator="b", metric="FD_radiomics", feature_space="radiomics", value=9.0),
        dict(generator="a", metric="FD_radiomics", feature_space="radiomics", value=3.0),  # newer: wins
        dict(generator="a", metric="recall", feature_space="radiomics", value=0.2, higher_is_better=True, task="diversity"),
        dict(generator="b", metric="recall", feature_space="radiomics", value=0.7, higher_is_better=True, task="diversity"),
        dict(generator="b", metric="FID", feature_space="inception", value=12.0),
    ])
    table = tbl.main_table(res)
    fd, rec, fid = "FD_radiomics ↓ [radiomics]", "recall ↑ [radiomics]", "FID ↓ [inception]"
    assert [c.header for c in table.columns] == [fid, fd, rec]  # by task; within a task the headline first
    assert [c.header for c in table.headline] == [fid, rec]
    assert table.value.loc[("a", "—"), fd] == 3.0
    assert np.isnan(table.value.loc[("a", "—"), fid])
    assert list(table.value.index.get_level_values(0)) == ["b", "a"]  # sorted by the first column (FID; NaN last)
    assert list(table.info["rank"]) == ["1", "2"]
    shown = table.display()
    assert shown.loc[shown["generator"] == "b", fd].item() == "9.00"
    assert not shown.astype(str).apply(lambda c: c.str.contains("★")).any().any()  # nothing is starred
    csv = pd.read_csv(io.BytesIO(table.to_csv()))
    assert csv.loc[csv["generator"] == "a", fd].item() == 3.0


def test_columns_by_importance_one_headline_per_task():
    tasks = [("memorization", "near_copy_fraction"), ("memorization", "authenticity"),
             ("color-shift", "gray_level_w1"), ("color-shift", "color_shift_fraction"), ("diversity", "vendi"),
             ("diversity", "recall"), ("cmmd", "CMMD"), ("seg-utility", "dice_lv"), ("seg-utility", "mean_dice"),
             ("fid", "KD_radiomics"), ("fid", "FD_radiomics_inf"), ("fid", "FD_radiomics")]
    res = _results([dict(generator="g", task=t, metric=m, feature_space="radiomics", value=1.0) for t, m in tasks])
    table = tbl.main_table(res)
    assert [c.metric for c in table.headline] == ["FD_radiomics", "mean_dice", "CMMD", "recall",
                                                  "color_shift_fraction", "near_copy_fraction"]
    order = [c.task for c in table.columns]
    assert order == sorted(order, key=["fid", "seg-utility", "cmmd", "diversity", "color-shift", "memorization"].index)


def test_baselines_are_reference_rows_never_ranked_and_fraction_of_the_way():
    res = _results([
        dict(generator="labelmap", metric="FD_radiomics", feature_space="radiomics", value=30.0, baseline="no-learning floor"),
        dict(generator="real", metric="FD_radiomics", feature_space="radiomics", value=0.5, baseline="noise floor"),
        dict(generator="cyclegan", checkpoint="c" * 64, metric="FD_radiomics", feature_space="radiomics", value=15.0),
        dict(generator="sd", metric="FD_radiomics", feature_space="radiomics", value=3.0),
        dict(generator="real", metric="recall", feature_space="radiomics", value=0.9, higher_is_better=True,
             task="diversity", baseline="noise floor"),
        dict(generator="sd", metric="recall", feature_space="radiomics", value=0.5, higher_is_better=True, task="diversity"),
    ])
    table = tbl.main_table(res)
    assert list(table.info["rank"]) == ["noise floor", "1", "2", "no-learning floor"]
    assert list(table.value.index.get_level_values(0)) == ["real", "sd", "cyclegan", "labelmap"]
    assert list(table.ranked) == [False, True, True, False]
    frac = table.fraction()
    fd = "FD_radiomics ↓ [radiomics]"
    assert np.isclose(frac.loc[("sd", "—"), fd], (30 - 3) / (30 - 0.5))  # closed form
    assert np.isclose(frac.loc[("cyclegan", "c" * 64), fd], 15 / 29.5 * 0 + (30 - 15) / 29.5)
    assert frac.loc[[("real", "—"), ("labelmap", "—")], fd].isna().all()  # reference rows have none
    assert frac["recall ↑ [radiomics]"].isna().all()  # the no-learning floor has no recall: no fraction
    shown = table.display(fractions=True)
    assert shown.loc[shown["generator"] == "sd", fd].item() == "3.00 · 92%"


def test_demo_runs_hidden_by_default_then_marked():
    res = _results([
        dict(generator="real", metric="FD_radiomics", feature_space="radiomics", value=0.5, baseline="noise floor"),
        dict(generator="images", metric="FD_random-inception", feature_space="random-inception", value=3.0,
             substitute=True),
        dict(generator="cyclegan", metric="FD_radiomics", feature_space="radiomics", value=9.0, stand_in="tiny preset"),
        dict(generator="cut", metric="FD_radiomics", feature_space="radiomics", value=8.0),
    ])
    table = tbl.main_table(res)
    assert list(table.value.index.get_level_values(0)) == ["real", "cut"]
    assert table.hidden_demo == 2
    assert all("random-inception" not in c.header for c in table.columns)
    every = tbl.main_table(res, tbl.Filters(include_demo=True))
    assert list(every.info["rank"]) == ["noise floor", "1", "demo", "demo"]
    demo = every.info["demo"].dropna().to_dict()
    assert demo == {("cyclegan", "—"): "tiny preset", ("images", "—"): "stand-in features (random-inception)"}
    sub = every.column("FD_random-inception ↓ [random-inception, DEMO: stand-in features]")
    assert sub.substitute and "DEMO" in sub.help and sub.label.endswith("· demo")
    shown = every.display()
    assert set(shown.loc[shown["rank"] == "demo", "generator"]) == {"cyclegan · demo", "images · demo"}


def test_column_tooltips_say_meaning_direction_space_and_n():
    res = _results([dict(generator="g", metric="FID", feature_space="inception", value=1.0, n=800),
                    dict(generator="h", metric="FID", feature_space="inception", value=2.0, n=2000),
                    dict(generator="g", metric="coverage", feature_space="dinov2", value=0.5, higher_is_better=True,
                         task="diversity")])
    fid, cov = tbl.main_table(res).columns
    assert fid.label == "FID (inception) ↓" and cov.label == "coverage (dinov2) ↑"
    assert "Fréchet Inception Distance" in fid.help and "Lower is better" in fid.help
    assert "inception features" in fid.help and "N = 800–2,000" in fid.help
    assert "Higher is better" in cov.help and "dinov2" in cov.help and "N = 20 " in cov.help


def test_filters():
    res = _results([
        dict(generator="a", metric="m", feature_space="radiomics", value=1.0, data="phantom", run_n=20),
        dict(generator="b", metric="m", feature_space="radiomics", value=2.0, data="folder:x", run_n=50,
             started_at=pd.Timestamp("2026-03-01", tz="UTC")),
        dict(generator="c", metric="m", feature_space="inception", value=3.0),
    ])
    gens = lambda f: sorted(tbl.main_table(res, f).value.index.get_level_values(0))  # noqa: E731
    assert gens(tbl.Filters()) == ["a", "b", "c"]
    assert gens(tbl.Filters(data=["folder:x"])) == ["b"]
    assert gens(tbl.Filters(feature_space=["inception"])) == ["c"]
    assert gens(tbl.Filters(n=(30, 60))) == ["b"]
    assert gens(tbl.Filters(dates=(dt.date(2026, 2, 1), dt.date(2026, 4, 1)))) == ["b"]
    assert tbl.main_table(res, tbl.Filters(data=[])).empty


def test_generator_role_from_the_stored_config_or_the_registry():
    import dataclasses

    from generators.cyclegan import TINY

    assert data.generator_role("real", {"generator": {"baseline": "noise floor"}}) == ("noise floor", None)
    assert data.generator_role("real", {"generator": {"name": "real"}}) == ("noise floor", None)  # stored before
    assert data.generator_role("labelmap", {}) == ("no-learning floor", None)
    assert data.generator_role("real", {"generator": {"baseline": None}}) == (None, None)  # what was stored wins
    tiny = {"generator": {"config": dataclasses.asdict(TINY.replace(n_epochs=1))}}
    assert data.generator_role("cyclegan", tiny) == (None, "tiny preset")
    paper = {"generator": {"config": dataclasses.asdict(TINY.replace(image_size=256, netG="unet_256", ngf=64, ndf=64))}}
    assert data.generator_role("cyclegan", paper) == (None, None)
    assert data.generator_role("sd-lora", {"generator": {"base": {"kind": "tiny"}}}) == (None, "tiny random SD base")
    assert data.generator_role("not-installed-here", {"generator": {}}) == (None, None)


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


def _store_with_flags(tmp_path, legacy: bool):
    from harness.store import Store

    url = f"sqlite:///{tmp_path / ('legacy.db' if legacy else 'details.db')}"
    store = Store(url)
    run_id = store.start_run(generator="real", data_source="phantom", n=20, seed=0, status="ok")
    store.finish_run(run_id, [
        dict(task="fid", metric="FD_radiomics", value=0.1, n=20, feature_space="radiomics", higher_is_better=False),
        dict(task="color-shift", metric="colour_shift_rate", value=0.0, n=20, feature_space=None, higher_is_better=False),
        # a misleading name both ways: the stored flag decides, not the name
        dict(task="fid", metric="FD_random-inception", value=3.0, n=20, feature_space="random-inception",
             higher_is_better=False, details={"substitute_features": False}),
        # the runner's record stage writes substitute_features; results stored before it carry the task's message
        dict(task="fid", metric="FD_x", value=3.0, n=20, feature_space="x", higher_is_better=False,
             details={"substitute": "x is a stand-in feature space"} if legacy else {"substitute_features": True}),
    ])
    return url, run_id


@pytest.mark.parametrize("legacy", [False, True], ids=["substitute_features", "legacy-details"])
def test_substitute_flag_is_read_from_the_store(tmp_path, legacy):
    url, run_id = _store_with_flags(tmp_path, legacy)
    engine = data.connect(url)
    res = data.load_results(engine).set_index("metric")
    assert res["substitute"].to_dict() == {"FD_radiomics": False, "colour_shift_rate": False,
                                           "FD_random-inception": False, "FD_x": True}
    assert data.run_results(engine, run_id).set_index("metric")["substitute"]["FD_x"]
    assert res.loc["FD_radiomics", "baseline"] == "noise floor"  # learned through the registry (no config)


def test_run_with_a_space_free_metric_has_headers(tmp_path):
    """A run mixing colour shift (no feature space) with FID: the detail view's headers work (None, not NaN)."""
    url, run_id = _store_with_flags(tmp_path, legacy=False)
    res = data.run_results(data.connect(url), run_id)
    assert list(res["feature_space"]) == ["radiomics", None, "random-inception", "x"]
    headers = [tbl.metric_header(m, s, bool(h), bool(sub)) for m, s, h, sub in
               zip(res["metric"], res["feature_space"], res["higher_is_better"], res["substitute"])]
    assert headers == ["FD_radiomics ↓ [radiomics]", "colour_shift_rate ↓ [none]",
                       "FD_random-inception ↓ [random-inception]", "FD_x ↓ [x, DEMO: stand-in features]"]


def test_roles_recorded_by_describe_are_read_without_importing_torch(tmp_path):
    """New runs record ``baseline`` and ``stand_in`` (Generator.describe); the leaderboard reads them from the
    stored config and imports no generator module (CycleGAN's would import torch)."""
    import subprocess
    import sys

    from generators.real import RealGenerator
    from harness.data.base import open_data_spec
    from harness.store import Store

    desc = RealGenerator(data=open_data_spec("phantom")[0]).describe()
    assert desc["baseline"] == "noise floor" and desc["stand_in"] is None
    url = f"sqlite:///{tmp_path / 'roles.db'}"
    store = Store(url)
    run_id = store.start_run(generator="cyclegan", data_source="phantom", n=20, seed=0, status="ok",
                             config={"generator": {"name": "cyclegan", "baseline": None, "stand_in": "tiny preset"}})
    store.finish_run(run_id, [dict(task="fid", metric="FD_radiomics", value=1.0, n=20, feature_space="radiomics")])
    code = ("import sys; from leaderboard import data, table; "
            f"r = data.load_results(data.connect({url!r})); "
            "assert r['stand_in'].tolist() == ['tiny preset'] and r['baseline'].tolist() == [None], r; "
            "assert table.main_table(r).empty and table.main_table(r).hidden_demo == 1; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
