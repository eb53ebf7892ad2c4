"""Collected ratings are never lost: --replace of an app study, id reuse, identity checks, CSV formula injection,
sign-in back-off, app defaults (issue 21)."""

from __future__ import annotations

import threading
import time
import uuid

import pandas as pd
import pytest
from sqlalchemy import func, select, text

from harness.errors import DataError
from harness.store import Participant, Rating, Store, Study
from human_eval.app import service as sv
from human_eval.db import import_study
from human_eval.schema import read_study
from tests.human_eval.app.conftest import SOURCES, write_pngs


def _study(store, tmp_path, name=None, per=3):
    name = name or f"app-{uuid.uuid4().hex[:8]}"
    sources = {s: write_pngs(tmp_path / "pool" / name / s, 6, size=8, seed=i) for i, s in enumerate(SOURCES)}
    sv.create_study(store, name, sources, pool_per_source=6, per_participant=per, seed=3)
    return name


def _other_csv(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("participant_id,image_id,source,rating\nQ1,x1,real,2\nQ1,x2,cut,4\nQ2,x1,real,3\nQ2,x2,cut,1\n")
    return read_study(path)


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'sec.db'}")


def test_replace_of_an_app_study_is_refused_without_the_separate_flag(store, tmp_path):
    name = _study(store, tmp_path)
    (pid, tok), = sv.add_participants(store, name, 1)
    rater = sv.sign_in(store, tok)
    sv.submit_rating(store, rater, rater.plan[0], 4, comment="keep me")
    tables = _other_csv(tmp_path)
    for replace in (False, True):
        with pytest.raises(DataError) as info:
            import_study(store, tables, name, replace=replace)
        assert "rating app" in str(info.value) and "--replace" not in str(info.value).replace("--replace-app-study", "")
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Rating)) == 1  # nothing deleted
    summary = import_study(store, tables, name, replace=True, replace_app_study=True, backup_root=tmp_path / "bk")
    assert summary.status == "replaced" and summary.backup is not None
    backed = pd.read_csv(summary.backup / "ratings.csv")
    assert backed["comment"].tolist() == ["keep me"] and backed["participant_id"].tolist() == [pid]
    assert {p.name for p in summary.backup.iterdir()} == set(sv.EXPORT_FILES)
    assert summary.backup.parent == tmp_path / "bk" and "-backup-" in summary.backup.name


def test_cli_replace_app_study(tmp_path, monkeypatch):
    from harness.cli import run_cli

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = Store(url)
    name = _study(store, tmp_path)
    (_, tok), = sv.add_participants(store, name, 1)
    rater = sv.sign_in(store, tok)
    sv.submit_rating(store, rater, rater.plan[0], 2)
    csv = tmp_path / "r.csv"
    csv.write_text("participant_id,image_id,source,rating\nQ1,x1,real,2\nQ1,x2,cut,4\n")
    monkeypatch.setenv("ECHOBENCH_BACKUPS", str(tmp_path / "backups"))
    assert run_cli(["human", "import", str(csv), "--study", name, "--replace", "--db", url]) == 2
    assert run_cli(["human", "import", str(csv), "--study", name, "--replace-app-study", "--db", url]) == 0
    assert len(list((tmp_path / "backups").glob("*/ratings.csv"))) == 1


def test_ids_are_never_reused_and_a_stale_rater_cannot_write_into_a_new_participant(store, tmp_path):
    name = _study(store, tmp_path)
    (_, tok), = sv.add_participants(store, name, 1)
    stale = sv.sign_in(store, tok)
    old_pk = stale.pk
    import_study(store, _other_csv(tmp_path), name, replace=True, replace_app_study=True, backup_root=tmp_path / "bk")
    with store.session() as s:
        new_pks = set(s.scalars(select(Participant.id)))
    assert old_pk not in new_pks and min(new_pks) > old_pk  # AUTOINCREMENT: freed ids are not handed out again
    with pytest.raises(sv.AuthError):
        sv.submit_rating(store, stale, stale.plan[0], 5)
    with pytest.raises(sv.AuthError):
        sv.stage(store, stale)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Rating)) == 4  # only the imported ratings


def test_every_save_checks_the_full_identity(store, tmp_path):
    import dataclasses

    name = _study(store, tmp_path)
    (_, t1), (_, t2) = sv.add_participants(store, name, 2)
    r1, r2 = sv.sign_in(store, t1), sv.sign_in(store, t2)
    forged = dataclasses.replace(r1, pk=r2.pk)  # r1's session pointed at r2's row
    with pytest.raises(sv.AuthError):
        sv.submit_rating(store, forged, r1.plan[0], 3)
    with pytest.raises(sv.AuthError):
        sv.save_answers(store, dataclasses.replace(r1, token_hash=r2.token_hash), "consent", {"given": True})
    with pytest.raises(sv.AuthError):
        sv.submit_rating(store, dataclasses.replace(r1, study_id=r1.study_id + 1), r1.plan[0], 3)
    assert sv.submit_rating(store, r1, r1.plan[0], 3).status == "inserted"


def _concurrent_replace(store: Store, tmp_path) -> None:
    """Raters keep saving while the study is replaced: every save that succeeded is in the backup, every later
    one is refused (AuthError), and none lands in the new study."""
    name = _study(store, tmp_path, per=6)
    raters = [sv.sign_in(store, tok) for _, tok in sv.add_participants(store, name, 4)]
    saved: list[tuple[str, str, int]] = []
    refused: list[str] = []
    other: list[BaseException] = []
    lock = threading.Lock()
    go = threading.Event()

    def rate(r: sv.Rater) -> None:
        go.wait()
        for k, iid in enumerate(r.plan * 3):
            value = 1 + (k % 5)
            try:
                sv.submit_rating(store, r, iid, value)
            except sv.AuthError:
                with lock:
                    refused.append(r.participant_id)
                return
            except BaseException as exc:  # noqa: BLE001
                with lock:
                    other.append(exc)
                return
            with lock:
                saved.append((r.participant_id, iid, value))

    threads = [threading.Thread(target=rate, args=(r,)) for r in raters]
    for th in threads:
        th.start()
    go.set()
    deadline = time.monotonic() + 60
    while len(saved) < 8 and time.monotonic() < deadline:  # replace in the middle of the raters' work
        time.sleep(0.005)
    summary = import_study(store, _other_csv(tmp_path), name, replace=True, replace_app_study=True,
                           backup_root=tmp_path / "bk")
    for th in threads:
        th.join()
    assert other == []
    assert len(saved) >= 8 and refused  # some saved before the replacement, and saves after it were refused
    hist = pd.read_csv(summary.backup / "rating_history.csv")
    backed = set(zip(hist["participant_id"], hist["image_id"], hist["rating"]))
    # the last saved answer of each (participant, image) must be in the backup's history
    assert set(saved) <= backed, set(saved) - backed
    with store.session() as s:
        sid = s.scalar(select(Study.id).where(Study.name == name))
        assert s.scalar(select(func.count()).select_from(Rating).where(Rating.study_id == sid)) == 4
        assert set(s.scalars(select(Participant.participant_id).where(Participant.study_id == sid))) == {"Q1", "Q2"}


def test_concurrent_rater_and_replace_lose_nothing_sqlite(store, tmp_path):
    _concurrent_replace(store, tmp_path)


@pytest.mark.slow
def test_concurrent_rater_and_replace_lose_nothing_postgresql(postgres_url, tmp_path):
    _concurrent_replace(Store(postgres_url), tmp_path)


def test_csv_exports_neutralise_formulas_and_reimport_unchanged(store, tmp_path):
    name = _study(store, tmp_path)
    (_, tok), = sv.add_participants(store, name, 1)
    r = sv.sign_in(store, tok)
    evil = ['=HYPERLINK("http://x","y")', "+1", "-cmd", "@SUM(A1)", "\tx", "fine"]
    for iid, comment in zip(r.plan, evil):
        sv.submit_rating(store, r, iid, 3, comment=comment)
    out = tmp_path / "exp"
    sv.write_export(store, name, out)
    for fname in ("ratings.csv", "rating_history.csv"):
        raw = pd.read_csv(out / fname, dtype=str, keep_default_na=False)
        assert not raw["comment"].str.match(r"^[=+\-@\t\r]").any()
        assert "'=HYPERLINK(\"http://x\",\"y\")" in set(raw["comment"])
    back = read_study(out / "ratings.csv", out / "participants.csv", out / "images.csv")
    assert sorted(back.ratings["comment"]) == sorted(c.strip() for c in evil)


def test_neutralise_leaves_numbers_alone():
    from harness.csvsafe import spreadsheet_safe

    df = pd.DataFrame({"v": [-0.5, 1.0], "t": ["-x", "y"]})
    out = spreadsheet_safe(df)
    assert out["v"].tolist() == [-0.5, 1.0] and out["t"].tolist() == ["'-x", "y"]


def test_migration_0004_keeps_rows_ids_and_cascades(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'old.db'}", migrate=False)
    store.upgrade("0003")
    with store.engine.begin() as c:
        c.execute(text("INSERT INTO study (id, name, origin, config, created_at) VALUES (5, 's', 'app', '{}', '2026-11-25')"))
        c.execute(text("INSERT INTO participant (id, study_id, participant_id, answers) VALUES (9, 5, 'P', '{}')"))
        c.execute(text("INSERT INTO image (id, study_id, image_id, source) VALUES (3, 5, 'i', 'real')"))
        c.execute(text("INSERT INTO rating (id, study_id, participant_pk, image_pk, rating, walls_not_visible, "
                       "unnatural_artifacts, possible_pathology, cropped_image, wall_destruction, revision) "
                       "VALUES (7, 5, 9, 3, 4, 0, 0, 0, 0, 0, 1)"))
    store.upgrade()
    with store.engine.begin() as c:
        assert c.execute(text("SELECT id, participant_pk FROM rating")).all() == [(7, 9)]
        assert "AUTOINCREMENT" in c.execute(text("SELECT sql FROM sqlite_master WHERE name='rating'")).scalar()
        c.execute(text("DELETE FROM participant WHERE id = 9"))
        assert c.execute(text("SELECT count(*) FROM rating")).scalar() == 0  # cascades still work
        c.execute(text("INSERT INTO participant (study_id, participant_id, answers) VALUES (5, 'Q', '{}')"))
        assert c.execute(text("SELECT max(id) FROM participant")).scalar() == 10  # 9 is not handed out again


class _Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_token_sign_in_backs_off_and_logs_failures(store, tmp_path, caplog):
    name = _study(store, tmp_path)
    (_, tok), = sv.add_participants(store, name, 1)
    clock = _Clock()
    th = sv.Throttle("token", free=3, base=1.0, cap=300, global_free=50, clock=clock)
    with caplog.at_level("WARNING", logger="human_eval.app.service"):
        for _ in range(3):
            with pytest.raises(sv.AuthError) as info:
                sv.sign_in(store, "wrong-token", throttle=th, client="A")
            assert info.value.code == "err_token_invalid"
        with pytest.raises(sv.AuthError) as info:  # 3 free failures; the 4th attempt must wait, even the right token
            sv.sign_in(store, tok, throttle=th, client="A")
        assert info.value.code == "err_too_many" and info.value.values["seconds"] >= 1
    assert "failed token sign-in from A" in caplog.text and "wrong-token" not in caplog.text
    assert sv.sign_in(store, tok, throttle=th, client="B").participant_id  # another client is not delayed
    clock.t += 1.5
    assert sv.sign_in(store, tok, throttle=th, client="A").participant_id  # after the wait the right token works
    assert th.wait_s("A") == 0  # and a success clears the count


def test_admin_password_back_off_per_client_and_global():
    clock = _Clock()
    th = sv.Throttle("admin", free=3, base=1.0, cap=300, global_free=10, global_cap=30, clock=clock)
    for _ in range(3):
        assert not sv.check_admin_password("guess", "secret", throttle=th, client="A")
    with pytest.raises(sv.AuthError):  # 100 guesses in 3 s are no longer possible
        sv.check_admin_password("secret", "secret", throttle=th, client="A")
    waits = []
    for _ in range(12):  # exponential: each further failure doubles the wait
        clock.t += th.wait_s("A") + 0.01
        waits.append(th.wait_s("A"))
        sv.check_admin_password("guess", "secret", throttle=th, client="A")
    assert waits[0] == 0 and max(waits) <= 300
    assert th.wait_s("A") > 60
    clock.t += 10_000  # a new window
    for k in range(12):  # many clients, one failure each: the global back-off applies to a fresh client too
        th.failure(f"c{k}")
    assert 0 < th.wait_s("fresh") <= 30
    with pytest.raises(sv.AuthError):
        sv.check_admin_password("secret", "secret", throttle=th, client="fresh")


def test_app_defaults_local_address_env_url_and_no_error_details(tmp_path, monkeypatch):
    import harness.webapp as web
    from harness.cli import run_cli

    seen = {}

    def fake_call(cmd, env=None):
        seen["cmd"], seen["env"] = cmd, env
        return 0

    monkeypatch.setattr(web.subprocess, "call", fake_call)
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert run_cli(["human", "app", "--db", url]) == 0
    joined = " ".join(seen["cmd"])
    assert "--server.address 127.0.0.1" in joined and "--client.showErrorDetails none" in joined
    assert url not in joined and seen["env"][web.DB_ENV] == url


def test_results_export_csv_is_spreadsheet_safe(tmp_path):
    from harness.cli import run_cli

    url = f"sqlite:///{tmp_path / 'res.db'}"
    store = Store(url)
    rid = store.start_run(generator="=HYPERLINK(\"http://x\")", data_source="phantom", n=2, seed=0)
    store.finish_run(rid, [dict(task="fid", task_version="1", metric="FD_radiomics", value=-0.5, feature_space="radiomics")])
    out = tmp_path / "r.csv"
    assert run_cli(["export", "--out", str(out), "--db", url]) == 0
    frame = pd.read_csv(out)
    assert frame["generator"].tolist() == ["'=HYPERLINK(\"http://x\")"] and frame["value"].tolist() == [-0.5]
