"""20 raters × 40 ratings submitted from threads through the app's service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import func, select

from harness.store import Rating, RatingRevision, Store, Study
from human_eval.app import service as sv
from tests.human_eval.app.conftest import SOURCES, write_pngs

RATERS, PER_SOURCE = 20, 10  # 4 sources x 10 = 40 ratings each, 800 in all (the paper's design, 20 raters)


def _hammer(store: Store, tmp_path) -> dict:
    name = f"concurrency-{uuid.uuid4().hex[:8]}"  # the PostgreSQL server is shared with other tests
    sources = {s: write_pngs(tmp_path / "pool" / s, 50, size=8, seed=i) for i, s in enumerate(SOURCES)}
    sv.create_study(store, name, sources, pool_per_source=50, per_participant=PER_SOURCE, seed=1)
    tokens = [tok for _, tok in sv.add_participants(store, name, RATERS)]
    raters = [sv.sign_in(store, tok) for tok in tokens]
    barrier = threading.Barrier(RATERS)
    errors: list[BaseException] = []
    statuses: list[str] = []
    lock = threading.Lock()

    def rate(rater: sv.Rater) -> None:
        try:
            barrier.wait()
            out = [sv.submit_rating(store, rater, iid, 1 + k % 5, {"cropped_image": k % 7 == 0}).status
                   for k, iid in enumerate(rater.plan)]
            out.append(sv.submit_rating(store, rater, rater.plan[0], 1, {"cropped_image": True}).status)  # double submit
            with lock:
                statuses.extend(out)
        except Exception as exc:  # noqa: BLE001 - collected and asserted on below: every error counts
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=rate, args=(r,)) for r in raters]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    with store.session() as s:
        sid = s.scalar(select(Study.id).where(Study.name == name))
        stored = s.scalar(select(func.count()).select_from(Rating).where(Rating.study_id == sid))
        dup_q = (select(Rating.participant_pk, Rating.image_pk).where(Rating.study_id == sid)
                 .group_by(Rating.participant_pk, Rating.image_pk).having(func.count() > 1))
        duplicates = len(s.execute(dup_q).all())
        revised = s.scalar(select(func.count()).select_from(Rating).where(Rating.study_id == sid, Rating.revision > 1))
        history = s.scalar(select(func.count()).select_from(RatingRevision).join(Rating)
                           .where(Rating.study_id == sid))
    return {"errors": errors, "stored": stored, "duplicates": duplicates, "statuses": statuses, "revised": revised,
            "history": history, "planned": sum(len(r.plan) for r in raters)}


def _check(res: dict) -> None:
    assert res["errors"] == []
    assert res["planned"] == RATERS * len(SOURCES) * PER_SOURCE == 800
    assert res["stored"] == 800 and res["duplicates"] == 0
    assert res["statuses"].count("inserted") == 800 and res["statuses"].count("unchanged") == RATERS
    assert res["revised"] == 0 and res["history"] == 800  # one history row per stored answer, none for repeats


def test_800_concurrent_ratings_sqlite(tmp_path):
    _check(_hammer(Store(f"sqlite:///{tmp_path / 'c.db'}"), tmp_path))


def test_800_concurrent_ratings_postgresql(postgres_url, tmp_path):
    pytest.importorskip("psycopg")
    _check(_hammer(Store(postgres_url), tmp_path))
