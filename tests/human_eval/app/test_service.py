"""The rating app's service layer: set-up errors, tokens, resume, idempotent submits, isolation, export."""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine

from harness.errors import DataError, StoreError, UsageError
from harness.store import Participant, Rating, Store
from human_eval.app import service as sv
from human_eval.db import import_study, load_study
from human_eval.schema import FLAG_COLUMNS, read_study


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'svc.db'}")


@pytest.fixture
def study(store, sources):
    sv.create_study(store, "s", sources, pool_per_source=6, per_participant=2, seed=11)
    return "s"


def _start(store, token) -> sv.Rater:
    rater = sv.sign_in(store, token)
    sv.save_answers(store, rater, "consent", {"given": True})
    sv.save_answers(store, rater, "pre", {"age": 33, "sex": "male", "specialty": "cardiology",
                                          "experience_years": 7, "weekly_readings": 25, "language": "kk"})
    return rater


def _complete(store, token, value=3) -> sv.Rater:
    rater = _start(store, token)
    while (item := sv.next_item(store, rater)) is not None:
        sv.submit_rating(store, rater, item.image_id, (value + item.position) % 5 + 1,
                         {"cropped_image": item.position % 3 == 0}, "ok" if item.position == 1 else "")
    sv.save_answers(store, rater, "post", {"difficulty": 4})
    return rater


def test_setup_errors_name_the_problem(store, sources, tmp_path):
    with pytest.raises(DataError, match=r"source 'sd' has 12 images but the design needs a pool of 13"):
        sv.create_study(store, "x", sources, pool_per_source=13, per_participant=2)
    with pytest.raises(UsageError, match=r"images per source per participant \(7\)"):
        sv.create_study(store, "x", sources, pool_per_source=6, per_participant=7)
    with pytest.raises(DataError, match="1 image file\\(s\\) missing"):
        sv.create_study(store, "x", {"real": [tmp_path / "nope.png", *sorted(sources["cut"].glob("*.png"))]},
                        pool_per_source=2, per_participant=1)
    with pytest.raises(DataError, match="neither an image set"):
        sv.create_study(store, "x", {"real": tmp_path / "missing-folder"}, pool_per_source=2, per_participant=1)
    sv.create_study(store, "x", {"Stable Diffusion": sources["sd"], "real": sources["real"]},
                    pool_per_source=4, per_participant=2)
    with pytest.raises(UsageError, match="exists already"):
        sv.create_study(store, "x", sources, pool_per_source=4, per_participant=2)
    with pytest.raises(UsageError, match="no study 'nope'"):
        sv.add_participants(store, "nope", 1)
    ratings, _, images = sv.export_ratings(store, "x")
    assert set(images["source"]) == {"sd", "real"} and ratings.empty  # aliases canonicalised


def test_tokens_are_stored_hashed_and_used_once(store, study):
    pairs = sv.add_participants(store, study, 2)
    with store.session() as s:
        stored = {p.participant_id: p.token_hash for p in s.query(Participant)}
    for pid, token in pairs:
        assert stored[pid] == hashlib.sha256(token.encode()).hexdigest() != token
        assert len(token) >= 32
    with pytest.raises(sv.AuthError) as e:
        sv.sign_in(store, "guess")
    assert e.value.code == "err_token_invalid"
    with pytest.raises(sv.AuthError):
        sv.sign_in(store, " ")
    _complete(store, pairs[0][1])
    with pytest.raises(sv.AuthError) as e:
        sv.sign_in(store, pairs[0][1])
    assert e.value.code == "err_token_used"
    assert sv.sign_in(store, f" {pairs[1][1]}\n").participant_id == "P002"  # pasted with whitespace


def test_resume_exactly_where_the_rater_left_off(store, study):
    [(_, token)] = sv.add_participants(store, study, 1)
    rater = sv.sign_in(store, token)
    assert sv.stage(store, rater) == "consent"
    rater = _start(store, token)
    for _ in range(3):
        item = sv.next_item(store, rater)
        sv.submit_rating(store, rater, item.image_id, 4)
    again = sv.sign_in(store, token)  # browser closed, token entered again
    assert sv.stage(store, again) == "rating" and sv.next_item(store, again).position == 4
    assert again.plan == rater.plan and len(rater.plan) == 8


def test_double_submit_is_idempotent_and_changes_are_revisions(store, study):
    [(_, token)] = sv.add_participants(store, study, 1)
    rater = _start(store, token)
    iid = sv.next_item(store, rater).image_id
    assert sv.submit_rating(store, rater, iid, 2, {"wall_destruction": True}, "x") == sv.SubmitResult("inserted", 1)
    assert sv.submit_rating(store, rater, iid, 2, {"wall_destruction": True}, " x ") == sv.SubmitResult("unchanged", 1)
    assert sv.submit_rating(store, rater, iid, 2, {"wall_destruction": False}, "x") == sv.SubmitResult("updated", 2)
    assert sv.submit_rating(store, rater, iid, 5, {}, None) == sv.SubmitResult("updated", 3)
    with store.session() as s:
        [row] = s.query(Rating).all()
    assert (row.rating, row.revision, row.wall_destruction, row.comment) == (5, 3, False, None)
    assert row.updated_at is not None and row.rated_at <= row.updated_at and row.position == 1
    hist = sv.rating_history(store, study)  # nothing the rater saved is lost: all three answers, in order
    assert hist[["revision", "rating", "wall_destruction", "comment"]].astype(object).where(hist.notna(), None) \
        .values.tolist() == [[1, 2, 1, "x"], [2, 2, 0, "x"], [3, 5, 0, None]]
    assert (hist["image_id"] == iid).all() and list(hist["saved_at"]) == sorted(hist["saved_at"])
    with pytest.raises(UsageError, match="1..5"):
        sv.submit_rating(store, rater, iid, 6)
    with pytest.raises(UsageError, match="unknown artifact flag"):
        sv.submit_rating(store, rater, iid, 3, {"walls": True})


def test_two_tabs_submitting_at_once_store_one_rating(store, study):
    [(_, token)] = sv.add_participants(store, study, 1)
    _start(store, token)
    tabs = [sv.sign_in(store, token) for _ in range(6)]
    iid = sv.next_item(store, tabs[0]).image_id
    barrier, results = threading.Barrier(len(tabs)), []

    def submit(rater):
        barrier.wait()
        results.append(sv.submit_rating(store, rater, iid, 4, {"possible_pathology": True}))

    threads = [threading.Thread(target=submit, args=(r,)) for r in tabs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(r.status for r in results) == ["inserted"] + ["unchanged"] * 5
    with store.session() as s:
        assert s.query(Rating).count() == 1


def test_a_rater_cannot_see_or_change_another_raters_data(store, study):
    (_, ta), (_, tb) = sv.add_participants(store, study, 2)
    a, b = _start(store, ta), _start(store, tb)
    only_b = next(i for i in b.plan if i not in a.plan)
    sv.submit_rating(store, b, only_b, 5)
    with pytest.raises(sv.AuthError) as e:
        sv.submit_rating(store, a, only_b, 1)
    assert e.value.code == "err_not_yours"
    assert all(sv.item_at(store, a, p).image_id in a.plan for p in range(1, len(a.plan) + 1))
    assert all(sv.item_at(store, a, p).rating is None for p in range(1, len(a.plan) + 1))
    assert sv.item_at(store, a, 0) is None and sv.item_at(store, a, 99) is None
    assert sv.item_at(store, b, b.plan.index(only_b) + 1).rating == 5


def test_missing_image_is_skipped_and_logged(store, study, caplog):
    [(_, token)] = sv.add_participants(store, study, 1)
    rater = _start(store, token)
    first = sv.next_item(store, rater)
    Path(first.path).unlink()
    with caplog.at_level(logging.WARNING, logger="human_eval.app.service"):
        item = sv.next_item(store, rater)
    assert item.position == 2
    assert f"image {first.image_id} is missing" in caplog.text


def test_unreachable_database_is_a_clear_store_error(store, study):
    [(_, token)] = sv.add_participants(store, study, 1)
    rater = _start(store, token)
    item = sv.next_item(store, rater)
    sv.submit_rating(store, rater, item.image_id, 3)
    good = store.engine
    store.engine = create_engine("sqlite:////nonexistent-dir/x.db")  # the server/file has gone away
    try:
        with pytest.raises(StoreError, match="unreachable while trying to save your rating.*already submitted are saved"):
            sv.submit_rating(store, rater, item.image_id, 4)
        with pytest.raises(StoreError, match="unreachable"):
            sv.next_item(store, rater)
    finally:
        store.engine = good
    assert sv.item_at(store, rater, 1).rating == 3  # nothing submitted was lost


def test_export_round_trips_through_import(store, study, tmp_path):
    pairs = sv.add_participants(store, study, 3)
    _complete(store, pairs[0][1], 1)
    _complete(store, pairs[1][1], 2)
    third = _start(store, pairs[2][1])  # stopped after one image
    sv.submit_rating(store, third, sv.next_item(store, third).image_id, 5, {f: True for f in FLAG_COLUMNS}, 'a "b", c')
    paths = sv.write_export(store, study, tmp_path / "out")
    assert [p.name for p in paths] == ["ratings.csv", "participants.csv", "images.csv", "rating_history.csv"]
    history = pd.read_csv(paths[3])
    assert len(history) == 17 and (history["revision"] == 1).all()  # nobody changed an answer here
    paths = paths[:3]
    ratings = pd.read_csv(paths[0])
    assert list(ratings.columns) == ["participant_id", "image_id", "source", "rating", *FLAG_COLUMNS, "comment",
                                     "rated_at", "position"]
    assert len(ratings) == 17 and ratings.groupby("participant_id").size().to_dict() == {"P001": 8, "P002": 8, "P003": 1}
    tables = read_study(*paths)
    assert any("unbalanced" in w.lower() or "per participant" in w for w in tables.warnings), tables.warnings
    import_study(store, tables, "s-imported")
    app, imported = load_study(store, study), load_study(store, "s-imported")
    pd.testing.assert_frame_equal(app.ratings, imported.ratings)
    pd.testing.assert_frame_equal(app.participants, imported.participants)
    cols = ["image_id", "source", "path"]
    rated = app.images[app.images["image_id"].isin(app.ratings["image_id"])][cols]
    pd.testing.assert_frame_equal(rated.sort_values("image_id", ignore_index=True),
                                  imported.images[cols].sort_values("image_id", ignore_index=True))


def test_registered_image_sets_link_images_to_their_run(store, sources):
    run_id = store.start_run(generator="real", data_source="phantom", n=12, seed=0,
                             imageset_path=str(sources["real"].resolve()), status="ok")
    sets = sv.registered_image_sets(store)
    assert [(x["generator"], x["run_id"], x["path"]) for x in sets] == [("real", run_id, str(sources["real"].resolve()))]
    sv.create_study(store, "linked", {"real": sets[0]["path"], "cut": sources["cut"]}, pool_per_source=3,
                    per_participant=1)
    images = load_study(store, "linked").images
    assert set(images.loc[images["source"] == "real", "run_id"]) == {run_id}
    assert images.loc[images["source"] == "cut", "run_id"].isna().all()
    assert sv.app_studies(store) == ["linked"]


def test_pools_and_plans_are_seeded_per_study(store, sources):
    reversed_sources = dict(reversed(list(sources.items())))
    sv.create_study(store, "a", sources, pool_per_source=6, per_participant=2, seed=4)
    sv.create_study(store, "b", reversed_sources, pool_per_source=6, per_participant=2, seed=4)
    sv.create_study(store, "c", sources, pool_per_source=6, per_participant=2, seed=5)
    plans = {}
    for name in "abc":
        tokens = [tok for _, tok in sv.add_participants(store, name, 4)]
        plans[name] = [sv.sign_in(store, tok).plan for tok in tokens]
    assert plans["a"] == plans["b"] != plans["c"]  # same seed -> same study, whatever the order of sources
    orders = [tuple(dict.fromkeys(i.split("/")[0] for i in plan)) for plan in plans["a"]]
    assert len(set(orders)) == 4 and {o[0] for o in orders} == {"cut", "cyclegan", "real", "sd"}
