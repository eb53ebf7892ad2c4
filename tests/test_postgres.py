"""The store and a full `harness run` against a real PostgreSQL server."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from harness.runner import RunRequest, run
from harness.store import Store

pytestmark = pytest.mark.postgres


def test_migrations_and_full_run_on_postgres(postgres_url):
    store = Store(postgres_url)
    assert {"run", "result", "artifact", "alembic_version"} <= set(inspect(store.engine).get_table_names())
    out = run(RunRequest(generator="labelmap", tasks=["fid"], features="radiomics", n=12, db=postgres_url))
    frame = Store(postgres_url).results_frame()
    assert out.run_id in set(frame["run_id"])
    row = frame[frame["run_id"] == out.run_id].iloc[0]
    assert row["feature_space"] == "radiomics" and row["value"] > 0
