"""PostgreSQL limits are checked at validation (issue 21): what the validators accept at the edge stores on
PostgreSQL; one character or one unit beyond is refused before the database is touched."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile

import pytest

from harness.errors import DataError
from harness.store import Store
from human_eval.db import import_study, load_study
from human_eval.schema import read_study

pytestmark = pytest.mark.slow

EDGE = {"participant_id": "P" * 200, "image_id": "I" * 300, "source": "s" * 100, "position": str(2**31 - 1)}


def _ratings(tmp_path, **over):
    row = {**EDGE, **over}
    path = tmp_path / f"r-{uuid.uuid4().hex[:6]}.csv"
    path.write_text("participant_id,image_id,source,rating,position,comment\n"
                    f"{row['participant_id']},{row['image_id']},{row['source']},3,{row['position']},ünïcode ✓\n")
    return path


def test_edge_values_store_on_postgres_and_one_beyond_is_refused_first(postgres_url, tmp_path):
    store = Store(postgres_url)
    name = f"edge-{uuid.uuid4().hex[:8]}"
    import_study(store, read_study(_ratings(tmp_path)), name)
    back = load_study(store, name)
    assert back.ratings["participant_id"].iloc[0] == EDGE["participant_id"] and int(back.ratings["position"].iloc[0]) == 2**31 - 1
    for over in ({"participant_id": "P" * 201}, {"image_id": "I" * 301}, {"source": "s" * 101},
                 {"position": str(2**31)}, {"participant_id": "P\x00"}):
        with pytest.raises(DataError):
            read_study(_ratings(tmp_path, **over))


def _bundle(generator: str, seed: int) -> bytes:
    from harness.registry import tasks

    hashes = [hashlib.sha256(bytes([i])).hexdigest() for i in range(2)]
    run = {"id": uuid.uuid4().hex, "generator": generator, "data_source": "phantom", "n": 2, "seed": seed, "status": "ok"}
    res = [{"task": "fid", "task_version": tasks.get("fid").spec.version, "metric": "m" * 100, "value": 1.0}]
    files = {"run.json": json.dumps(run).encode(), "results.json": json.dumps(res).encode(),
             "imageset/manifest.jsonl": "".join(json.dumps({"index": i, "sha256": h}) + "\n" for i, h in enumerate(hashes)).encode()}
    meta = {"kind": "echobench-submission", "schema_version": 1,
            "files": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("bundle.json", json.dumps(meta))
        for k, v in files.items():
            zf.writestr(k, v)
    return buf.getvalue()


def test_bundle_edge_values_store_on_postgres(postgres_url, tmp_path):
    from harness.bundle import import_bundle, read_bundle

    ok = tmp_path / "ok.zip"
    ok.write_bytes(_bundle("g" * 200, 2**31 - 1))
    assert import_bundle(ok, db=postgres_url, home=tmp_path / "home").results == 1
    for gen, seed in (("g" * 201, 0), ("g", 2**31), ("g\x00", 0)):
        bad = tmp_path / "bad.zip"
        bad.write_bytes(_bundle(gen, seed))
        with pytest.raises(DataError, match="refused"):
            read_bundle(bad)


def test_failed_insert_leaves_no_sample_files(tmp_path, monkeypatch):
    """A bundle whose database insert fails leaves no sample PNGs behind."""
    from harness import bundle as B

    path = tmp_path / "b.zip"
    path.write_bytes(_bundle("g", 0))
    real_read = B.read_bundle

    def with_samples(p):
        b = real_read(p)
        return B.Bundle(b.sha256, b.meta, b.run, b.results, {"000000.png": b"png"})

    monkeypatch.setattr(B, "read_bundle", with_samples)
    from harness.store import Store as S

    real_session, calls = S.session, []

    def session_failing_at_the_insert(self):
        calls.append(1)
        if len(calls) == 2:  # 1: the duplicate check; 2: the insert, after the samples were written
            assert any((tmp_path / "home" / "_submitted").rglob("*.png"))
            raise RuntimeError("database went away")
        return real_session(self)

    store = S(f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setattr(S, "session", session_failing_at_the_insert)
    with pytest.raises(RuntimeError, match="went away"):
        B.import_bundle(path, db=store.url, home=tmp_path / "home")
    assert len(calls) == 2 and not any((tmp_path / "home" / "_submitted").iterdir())
