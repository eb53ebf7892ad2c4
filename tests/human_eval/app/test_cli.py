"""`harness human export` / `app`: a complete study (set-up, two raters, export, import, report)."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import StoreError, UsageError
from harness.store import Store
from harness.webapp import DB_ENV, app_env, db_arg, streamlit_command
from human_eval.app import APP_PATH
from human_eval.app import service as sv
from human_eval.schema import FLAG_COLUMNS


def _rate_all(store, token, offset):
    rater = sv.sign_in(store, token)
    sv.save_answers(store, rater, "consent", {"given": True})
    sv.save_answers(store, rater, "pre", {"age": 30 + offset, "sex": "female", "specialty": "cardiology",
                                          "experience_years": 3 + offset, "weekly_readings": 10, "language": "ru"})
    while (item := sv.next_item(store, rater)) is not None:
        bonus = {"sd": 1, "real": 0}.get(item.source, -1)
        sv.submit_rating(store, rater, item.image_id, min(5, max(1, 3 + bonus + (item.position + offset) % 2)),
                         {"walls_not_visible": item.position % 4 == 0})
    sv.save_answers(store, rater, "post", {"difficulty": 3})


def test_complete_study_export_import_report(tmp_path, sources):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    store = Store(url)
    sv.create_study(store, "pilot", sources, pool_per_source=10, per_participant=3, seed=2)
    for k, (_, token) in enumerate(sv.add_participants(store, "pilot", 2)):
        _rate_all(store, token, k)
    assert sv.progress(store, "pilot")["stage"].tolist() == ["done", "done"]
    runner = CliRunner()
    out = tmp_path / "export"
    res = runner.invoke(app, ["human", "export", "--study", "pilot", "--out", str(out), "--db", url])
    assert res.exit_code == 0, res.output
    ratings = pd.read_csv(out / "ratings.csv")
    assert len(ratings) == 24 and set(ratings["source"]) == {"real", "cut", "cyclegan", "sd"}
    assert set(ratings[list(FLAG_COLUMNS)].stack()) <= {0, 1}
    res = runner.invoke(app, ["human", "import", str(out / "ratings.csv"), "--participants",
                              str(out / "participants.csv"), "--images", str(out / "images.csv"),
                              "--study", "pilot-csv", "--db", url])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["human", "report", "--study", "pilot-csv", "--out", str(tmp_path / "report"),
                              "--no-figures", "--db", url])
    assert res.exit_code == 0, res.output
    assert any((tmp_path / "report").iterdir())
    res = runner.invoke(app, ["human", "export", "--study", "nope", "--out", str(out), "--db", url])
    assert isinstance(res.exception, UsageError) and "no study 'nope'" in str(res.exception)  # main(): exit 2


def test_app_command_line_and_errors(tmp_path):
    cmd = streamlit_command(APP_PATH, "sqlite:///x.db", 8600)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("human_eval/app/app.py")
    # the URL (it may hold a password) is not on the command line; the server listens on this computer only
    assert "sqlite:///x.db" not in " ".join(cmd) and "--server.address 127.0.0.1" in " ".join(cmd)
    assert app_env("sqlite:///x.db")[DB_ENV] == "sqlite:///x.db" and db_arg([]) is None
    runner = CliRunner()
    res = runner.invoke(app, ["human", "app", "--db", f"sqlite:///{tmp_path}/missing/dir/x.db"])
    assert isinstance(res.exception, StoreError) and "does not exist" in str(res.exception)
    res = runner.invoke(app, ["human", "app", "--db", f"sqlite:///{tmp_path}/x.db", "--port", "0"])
    assert isinstance(res.exception, UsageError) and "--port" in str(res.exception)
