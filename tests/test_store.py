from __future__ import annotations

import pytest
from sqlalchemy import inspect

from harness.errors import StoreError
from harness.store import Store, resolve_url


def _one_run(store: Store) -> str:
    rid = store.start_run(generator="real", data_source="phantom", n=3, seed=0, config={"a": 1}, versions={}, provenance={})
    store.finish_run(rid, [dict(task="fid", metric="FD_radiomics", value=1.5, ci_low=1.0, ci_high=2.0, n=3,
                                feature_space="radiomics", details={"k": [1, 2]})],
                     [dict(kind="gallery", path="/x.png")])
    return rid


def test_migrations_create_tables_and_roundtrip(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    names = set(inspect(store.engine).get_table_names())
    assert {"run", "result", "artifact", "alembic_version"} <= names
    rid = _one_run(store)
    frame = store.results_frame()
    assert list(frame["run_id"]) == [rid]
    assert frame.loc[0, "metric"] == "FD_radiomics" and frame.loc[0, "ci_high"] == 2.0
    # reopening does not re-create or lose anything
    again = Store(f"sqlite:///{tmp_path / 'r.db'}")
    assert len(again.runs()) == 1 and again.runs()[0].status == "ok"


def test_bare_path_is_sqlite(tmp_path):
    assert resolve_url(str(tmp_path / "x.db")).startswith("sqlite:///")


def test_unreachable_database_is_a_clear_error():
    with pytest.raises(StoreError, match="cannot connect"):
        Store("postgresql+psycopg://nobody:secret@127.0.0.1:1/nodb")


def test_password_not_in_error():
    with pytest.raises(StoreError) as info:
        Store("postgresql+psycopg://nobody:secret@127.0.0.1:1/nodb")
    assert "secret" not in str(info.value)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        Store(f"sqlite:///{tmp_path / 'nope' / 'r.db'}")


def test_models_match_migrations(tmp_path):
    """The ORM models and the Alembic migrations describe the same schema (no pending autogenerate diff)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from harness.store import Base

    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_human_tables_exist(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'h.db'}")
    assert {"study", "participant", "image", "rating"} <= set(inspect(store.engine).get_table_names())


def test_migration_0003_keeps_app_answers_as_history(tmp_path):
    """A database from before rating_revision: app ratings get their current answer as history, imports none."""
    from sqlalchemy import text

    store = Store(f"sqlite:///{tmp_path / 'old.db'}", migrate=False)
    store.upgrade("0002")
    flags = "walls_not_visible, unnatural_artifacts, possible_pathology, cropped_image, wall_destruction"
    with store.engine.begin() as c:
        for sid, origin in ((1, "app"), (2, "import")):
            c.execute(text("INSERT INTO study (id, name, origin, config, created_at) VALUES "
                           f"({sid}, 's{sid}', '{origin}', '{{}}', '2026-11-25 10:00:00')"))
            c.execute(text(f"INSERT INTO participant (id, study_id, participant_id, answers) VALUES ({sid}, {sid}, 'P', '{{}}')"))
            c.execute(text(f"INSERT INTO image (id, study_id, image_id, source) VALUES ({sid}, {sid}, 'i', 'real')"))
            c.execute(text(f"INSERT INTO rating (study_id, participant_pk, image_pk, rating, {flags}, comment, rated_at, "
                           f"revision, updated_at) VALUES ({sid}, {sid}, {sid}, 4, 0, 1, 0, 0, 0, 'c', "
                           "'2026-11-25 10:01:00', 2, '2026-11-25 10:02:00')"))
    store.upgrade()
    with store.engine.connect() as c:
        rows = c.execute(text("SELECT rating_id, revision, rating, unnatural_artifacts, comment, saved_at "
                              "FROM rating_revision")).all()
    assert [tuple(r) for r in rows] == [(1, 2, 4, 1, "c", "2026-11-25 10:02:00")]
