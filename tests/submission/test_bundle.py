"""Submission bundles: a clean bundle imports as a submitted run; every kind of tampering is refused."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from harness.bundle import import_bundle, read_bundle, submit
from harness.errors import DataError, UsageError
from harness.runner import RunRequest, run
from harness.store import Run, Store


def rewrite(src: Path, dst: Path, change, *, rehash: bool) -> Path:
    """Copy a bundle, applying ``change(files: dict)``; with ``rehash`` bundle.json's sha256s are updated too."""
    with zipfile.ZipFile(src) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    change(files)
    if rehash:
        meta = json.loads(files["bundle.json"])
        meta["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in files.items() if n != "bundle.json"}
        files["bundle.json"] = json.dumps(meta).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    dst.write_bytes(buf.getvalue())
    return dst


def edit_json(name, fn):
    def change(files):
        obj = json.loads(files[name])
        fn(obj)
        files[name] = json.dumps(obj).encode()
    return change


def set_meta(key, value):
    return edit_json("bundle.json", lambda m: m.__setitem__(key, value))


def first_result(field, value):
    return edit_json("results.json", lambda rs: rs[0].__setitem__(field, value))


def swap_sample(files):
    names = sorted(n for n in files if n.startswith("samples/"))
    files[names[0]], files[names[1]] = files[names[1]], files[names[0]]


def edit_manifest(files):
    lines = files["imageset/manifest.jsonl"].decode().splitlines()
    entry = json.loads(lines[-1])
    entry["sha256"] = "0" * 64
    lines[-1] = json.dumps(entry)
    files["imageset/manifest.jsonl"] = ("\n".join(lines) + "\n").encode()


TAMPERING = [
    ("value edited", first_result("value", 0.001), False, "results.json was modified"),
    ("file added", lambda f: f.__setitem__("samples/extra.png", b"x"), False, "not listed in bundle.json"),
    ("file removed", lambda f: f.pop("results.json"), False, "listed in bundle.json but missing"),
    ("schema version", set_meta("schema_version", 99), False, "schema version 99"),
    ("wrong kind", set_meta("kind", "something-else"), False, "expected 'echobench-submission'"),
    ("samples swapped", swap_sample, True, "is not image"),
    ("image hash edited", edit_manifest, True, "do not match the content hash"),
    ("unknown task version", first_result("task_version", "999"), True, "version '999'"),
    ("unknown task", first_result("task", "no-such-task"), True, "not known to this EchoBench"),
    ("non-numeric value", first_result("value", "low"), True, "is not a number"),
    ("failed run", edit_json("run.json", lambda r: r.__setitem__("status", "failed")), True, "only finished runs"),
]


@pytest.fixture
def bundle(tmp_path: Path) -> tuple[Path, str]:
    outcome = run(RunRequest(generator="labelmap", tasks=["fid"], features="radiomics", n=12))
    path = submit(outcome.run_id[:8], tmp_path / "b.zip", samples=4, submitter="Jane <jane@example.org>").path
    return path, outcome.run_id


def test_bundle_contents_and_clean_import(bundle, tmp_path: Path):
    path, run_id = bundle
    b = read_bundle(path)
    assert b.meta["original_run_id"] == run_id and b.meta["schema_version"] == 1
    assert b.meta["adapter"]["name"] == "labelmap" and b.meta["adapter"]["origin"] == "built-in"
    assert len(b.samples) == 4 and {r["task"] for r in b.results} == {"fid"}

    db = f"sqlite:///{tmp_path / 'leaderboard.db'}"
    info = import_bundle(path, db=db)
    store = Store(db)
    with store.session() as s:
        row = s.get(Run, info.run_id)
        assert row.origin == "submitted" and row.status == "ok" and row.generator == "labelmap"
        assert row.provenance["original_run_id"] == run_id
        assert row.provenance["bundle_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert row.provenance["submitter"] == {"name": "Jane <jane@example.org>"}
        sample_dir = Path(row.artifacts[0].path)
        assert len(list(sample_dir.glob("*.png"))) == 4
    frame = store.results_frame()
    local = Store().results_frame()
    assert set(frame["origin"]) == {"submitted"}
    assert sorted(frame["value"]) == sorted(local["value"])  # the same numbers as the original run
    with pytest.raises(DataError, match="already imported"):
        import_bundle(path, db=db)
    with pytest.raises(DataError, match="already in"):  # into the database it was made in
        import_bundle(path)


def test_tampered_bundles_are_refused_with_the_reason(bundle, tmp_path: Path):
    path, _ = bundle  # one run for all cases (each case is checked on its own copy)
    db = f"sqlite:///{tmp_path / 'leaderboard.db'}"
    for what, change, rehash, reason in TAMPERING:
        bad = rewrite(path, tmp_path / "bad.zip", change, rehash=rehash)
        with pytest.raises(DataError, match="refused") as exc:
            import_bundle(bad, db=db)
        assert reason in str(exc.value), (what, str(exc.value))
    assert Store(db).results_frame().empty
    import_bundle(path, db=db)  # the untouched bundle still imports
    assert len(Store(db).results_frame()) > 0


def test_not_a_bundle(tmp_path: Path):
    (tmp_path / "x.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable zip"):
        read_bundle(tmp_path / "x.zip")
    with pytest.raises(DataError, match="does not exist"):
        read_bundle(tmp_path / "missing.zip")
    with pytest.raises(UsageError, match="no run with id"):
        submit("abcdef12", tmp_path / "b.zip")
