"""Submission bundles: ``harness submit`` packs a run, ``harness import-results`` verifies and stores it.

A bundle is a zip file::

    bundle.json              kind, schema_version, adapter (name, origin, version), submitter,
                             original run id, image-set content hash, and the sha256 of every other file
    run.json                 the run row (generator, checkpoint hash, data, n, seed, config, versions, git SHA)
    results.json             its result rows (task, task version, metric, value, CI, n, feature space, ...)
    imageset/manifest.jsonl  one line per generated image: index, file, sha256, seed, condition
    imageset/run.json        the image set's own run.json (when present)
    samples/NNNNNN.png       a small sample of the images (their sha256s are in the manifest)

Import refuses a bundle (DataError naming the reason) when a file is missing, unlisted or its sha256
differs, the schema version is not this EchoBench's, a task or task version is unknown, the samples do not
match the manifest, or the manifest does not match the content hash. The sha256 list detects accidental and
casual changes; it is not a signature: the stored provenance (the bundle's own sha256, the submitter, the
original run id) lets a maintainer trace every imported row back to its file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from harness.errors import DataError, UsageError

log = logging.getLogger(__name__)

KIND = "echobench-submission"
SCHEMA_VERSION = 1
RUN_FIELDS = ("id", "generator", "checkpoint_hash", "data_source", "reference", "n", "seed", "feature_space",
              "config", "versions", "git_sha", "imageset_hash", "status", "started_at", "finished_at")
RESULT_FIELDS = ("task", "task_version", "metric", "value", "ci_low", "ci_high", "n", "feature_space",
                 "higher_is_better", "details")
REQUIRED_RUN = ("id", "generator", "data_source", "n", "seed", "status")
REQUIRED_RESULT = ("task", "task_version", "metric", "value")


@dataclass(frozen=True)
class SubmitInfo:
    path: Path
    sha256: str
    run_id: str
    files: int
    samples: int


@dataclass(frozen=True)
class Bundle:
    """A verified bundle's contents."""

    sha256: str
    meta: dict
    run: dict
    results: list[dict]
    samples: dict[str, bytes]  # file name -> PNG bytes


@dataclass(frozen=True)
class ImportInfo:
    run_id: str
    original_run_id: str
    generator: str
    results: int
    bundle_sha256: str


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def find_run(store, run_id: str):
    """The run whose id is ``run_id`` or starts with it (the tables show 8 characters)."""
    from sqlalchemy import select

    from harness.store import Run

    if len(run_id) < 4:
        raise UsageError(f"--run {run_id!r}: give at least 4 characters of the run id")
    with store.session() as s:
        matches = list(s.scalars(select(Run).where(Run.id.startswith(run_id)).limit(3)))
        if not matches:
            raise UsageError(f"no run with id {run_id!r} in {store.url}; the run ids are in the table `harness run` prints")
        if len(matches) > 1:
            raise UsageError(f"run id {run_id!r} is ambiguous ({', '.join(m.id for m in matches)}); give more characters")
        run = matches[0]
        run.results  # load while the session is open  # noqa: B018
        return run


def adapter_info(generator: str) -> dict:
    """Name, origin and version of the adapter a run used (as far as this environment knows it)."""
    import importlib.metadata

    from harness.registry import generators

    entry = next((e for e in generators.entries() if e.name == generator), None)
    origin = entry.origin if entry else ("file" if ".py:" in generator else "module" if ":" in generator else "unknown")
    dist = origin.removeprefix("package ").strip() if origin.startswith("package") else (
        "echobench" if origin == "built-in" else None)
    version = None
    if dist:
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = None
    return {"name": generator, "origin": origin, "distribution": dist, "version": version}


def submit(run_id: str, out: Path | str, *, db: str | None = None, samples: int = 16,
           submitter: str | None = None) -> SubmitInfo:
    """Pack run ``run_id`` of the store ``db`` into the bundle ``out`` (a zip file)."""
    from harness.imageset import ImageSet
    from harness.io import atomic_write_bytes
    from harness.store import Store

    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise UsageError(f"--out {out}: a bundle is a .zip file")
    if samples < 0:
        raise UsageError(f"--samples must be >= 0 (got {samples})")
    run = find_run(Store(db), run_id)
    if run.status != "ok":
        raise UsageError(f"run {run.id} has status {run.status!r}; only finished runs (status 'ok') can be submitted")
    if run.origin != "local":
        raise UsageError(f"run {run.id} was imported ({run.origin}); submit the original run from its own database")
    if not run.imageset_path or not Path(run.imageset_path).is_dir():
        raise DataError(f"the image set of run {run.id} ({run.imageset_path}) is gone; re-run `harness run` to recreate it")
    iset = ImageSet.read(Path(run.imageset_path))
    if len(iset) < run.n:
        raise DataError(f"the image set {iset.root} has {len(iset)} images; run {run.id} used {run.n}")
    entries = iset.entries[: run.n]
    content_hash = iset.content_hash(run.n)

    run_json = {f: _iso(getattr(run, f)) for f in RUN_FIELDS}
    run_json["imageset_hash"] = run_json["imageset_hash"] or content_hash
    results_json = [{f: getattr(r, f) for f in RESULT_FIELDS} for r in sorted(run.results, key=lambda r: r.id)]
    files: dict[str, bytes] = {
        "run.json": _dumps(run_json),
        "results.json": _dumps(results_json),
        "imageset/manifest.jsonl": "".join(e.to_json() + "\n" for e in entries).encode(),
    }
    if iset.run_json.exists():
        files["imageset/run.json"] = iset.run_json.read_bytes()
    picked = _sample_indices(run.n, samples)
    for i in picked:
        files[f"samples/{i:06d}.png"] = (iset.root / entries[i].file).read_bytes()
    meta = {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "echobench_version": (run.versions or {}).get("echobench"),
        "adapter": adapter_info(run.generator),
        "submitter": {"name": submitter} if submitter else {},
        "original_run_id": run.id,
        "imageset_content_hash": content_hash,
        "n_images": run.n,
        "files": {name: _sha(data) for name, data in sorted(files.items())},
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bundle.json", _dumps(meta))
        for name in sorted(files):
            zf.writestr(name, files[name])
    data = buf.getvalue()
    atomic_write_bytes(out, data)
    return SubmitInfo(out, _sha(data), run.id, len(files) + 1, len(picked))


def _sample_indices(n: int, k: int) -> list[int]:
    if k >= n:
        return list(range(n))
    return sorted({round(j * (n - 1) / max(k - 1, 1)) for j in range(k)}) if k else []


def _dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()


# verification and import ------------------------------------------------------------------------


def _refuse(path: Path, reason: str) -> DataError:
    return DataError(f"bundle {path} refused: {reason}")


def _json(path: Path, name: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _refuse(path, f"{name} is not valid JSON ({exc})") from exc


def read_bundle(path: Path | str) -> Bundle:
    """Open and verify a bundle; raises DataError naming the first problem found."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"bundle {path} does not exist")
    raw = path.read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            names = zf.namelist()
            bad = [n for n in names if n.startswith("/") or ".." in PurePosixPath(n).parts]
            if bad:
                raise _refuse(path, f"unsafe file name(s) {bad[:3]}")
            if len(set(names)) != len(names):
                raise _refuse(path, "a file name appears twice in the zip")
            contents = {n: zf.read(n) for n in names if not n.endswith("/")}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _refuse(path, f"not a readable zip file ({exc})") from exc
    if "bundle.json" not in contents:
        raise _refuse(path, "bundle.json is missing (was it made by `harness submit`?)")
    meta = _json(path, "bundle.json", contents.pop("bundle.json"))
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise _refuse(path, f"bundle.json kind is {meta.get('kind') if isinstance(meta, dict) else None!r}, expected {KIND!r}")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise _refuse(path, f"schema version {meta.get('schema_version')!r}; this EchoBench reads version {SCHEMA_VERSION} "
                            "(upgrade EchoBench, or submit again with this version)")
    listed = meta.get("files")
    if not isinstance(listed, dict):
        raise _refuse(path, "bundle.json has no 'files' table of sha256s")
    for name in sorted(set(listed) - set(contents)):
        raise _refuse(path, f"{name} is listed in bundle.json but missing from the zip")
    for name in sorted(set(contents) - set(listed)):
        raise _refuse(path, f"{name} is in the zip but not listed in bundle.json (added after `harness submit`?)")
    for name in sorted(listed):
        actual = _sha(contents[name])
        if actual != listed[name]:
            raise _refuse(path, f"{name} was modified: sha256 {actual[:12]}… does not match bundle.json ({str(listed[name])[:12]}…)")
    for name in ("run.json", "results.json", "imageset/manifest.jsonl"):
        if name not in contents:
            raise _refuse(path, f"{name} is missing")
    run = _json(path, "run.json", contents["run.json"])
    results = _json(path, "results.json", contents["results.json"])
    _check_run(path, run, results)
    _check_images(path, meta, run, contents)
    _check_tasks(path, results)
    samples = {PurePosixPath(n).name: d for n, d in contents.items() if n.startswith("samples/")}
    return Bundle(_sha(raw), meta, run, results, samples)


def _check_run(path: Path, run: Any, results: Any) -> None:
    if not isinstance(run, dict):
        raise _refuse(path, "run.json is not an object")
    missing = [k for k in REQUIRED_RUN if k not in run]
    if missing:
        raise _refuse(path, f"run.json lacks field(s) {', '.join(missing)}")
    if run["status"] != "ok":
        raise _refuse(path, f"run.json status is {run['status']!r}; only finished runs can be imported")
    if not isinstance(run["n"], int) or run["n"] < 2:
        raise _refuse(path, f"run.json n={run['n']!r} is not an image count")
    if not isinstance(results, list) or not results:
        raise _refuse(path, "results.json holds no results")
    for k, r in enumerate(results):
        if not isinstance(r, dict) or any(f not in r for f in REQUIRED_RESULT):
            raise _refuse(path, f"results.json row {k} lacks one of {', '.join(REQUIRED_RESULT)}")
        for f in ("value", "ci_low", "ci_high"):
            if r.get(f) is not None and (isinstance(r[f], bool) or not isinstance(r[f], (int, float))):
                raise _refuse(path, f"results.json row {k} field {f}={r[f]!r} is not a number")


def _check_images(path: Path, meta: dict, run: dict, contents: dict[str, bytes]) -> None:
    lines = [ln for ln in contents["imageset/manifest.jsonl"].decode("utf-8", "replace").splitlines() if ln.strip()]
    hashes: list[str] = []
    for k, line in enumerate(lines):
        try:
            entry = json.loads(line)
            ok = entry["index"] == k and isinstance(entry["sha256"], str)
        except (json.JSONDecodeError, KeyError, TypeError):
            ok = False
        if not ok:
            raise _refuse(path, f"imageset/manifest.jsonl line {k + 1} is not manifest line {k}")
        hashes.append(entry["sha256"])
    if len(hashes) != run["n"]:
        raise _refuse(path, f"imageset/manifest.jsonl lists {len(hashes)} images; run.json says n={run['n']}")
    content = hashlib.sha256("".join(hashes).encode()).hexdigest()
    for where, expected in (("bundle.json", meta.get("imageset_content_hash")), ("run.json", run.get("imageset_hash"))):
        if expected is not None and expected != content:
            raise _refuse(path, f"the image hashes in imageset/manifest.jsonl do not match the content hash in {where}")
    for name, data in contents.items():
        if not name.startswith("samples/"):
            continue
        stem = PurePosixPath(name).stem
        if not stem.isdigit() or int(stem) >= len(hashes):
            raise _refuse(path, f"sample {name} is not named after an image index 0..{len(hashes) - 1}")
        if _sha(data) != hashes[int(stem)]:
            raise _refuse(path, f"sample {name} is not image {int(stem)} of the manifest (sha256 differs)")


def _check_tasks(path: Path, results: list[dict]) -> None:
    from harness.registry import tasks

    for r in results:
        name, version = r["task"], r["task_version"]
        if name not in tasks:
            raise _refuse(path, f"task {name!r} in results.json is not known to this EchoBench (tasks: {', '.join(tasks.names())})")
        try:
            known = tasks.get(name).spec.version
        except UsageError as exc:
            raise _refuse(path, f"task {name!r} cannot be loaded here: {exc}") from exc
        if str(version) != str(known):
            raise _refuse(path, f"task {name!r} version {version!r} in results.json; this EchoBench has version {known!r} "
                                "(results of different task versions are not comparable)")


def import_bundle(path: Path | str, *, db: str | None = None, home: Path | None = None) -> ImportInfo:
    """Verify the bundle and add its run and results to the store as ``origin="submitted"``."""
    from harness.io import atomic_write_bytes
    from harness.runner import default_home
    from harness.store import Artifact, Result, Run, Store

    path = Path(path)
    bundle = read_bundle(path)
    run = bundle.run
    store = Store(db)
    with store.session() as s:
        if s.get(Run, run["id"]) is not None:
            raise _refuse(path, f"run {run['id']} is already in {store.url} (it was made there)")
        for other in s.query(Run).filter(Run.origin == "submitted"):
            prov = other.provenance or {}
            if prov.get("bundle_sha256") == bundle.sha256 or prov.get("original_run_id") == run["id"]:
                raise _refuse(path, f"run {run['id']} was already imported as run {other.id}")
    new_id = str(uuid.uuid4())
    provenance = {
        "bundle_sha256": bundle.sha256,
        "bundle_file": path.name,
        "schema_version": bundle.meta["schema_version"],
        "original_run_id": run["id"],
        "submitter": bundle.meta.get("submitter") or {},
        "adapter": bundle.meta.get("adapter") or {},
        "submitted_at": bundle.meta.get("created_at"),
        "imported_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    sample_dir = Path(home or default_home()) / "_submitted" / new_id / "samples"
    for name, data in sorted(bundle.samples.items()):
        atomic_write_bytes(sample_dir / name, data)
    row = Run(
        id=new_id, generator=run["generator"], checkpoint_hash=run.get("checkpoint_hash"),
        data_source=run["data_source"], reference=run.get("reference"), n=run["n"], seed=run["seed"],
        feature_space=run.get("feature_space"), config=run.get("config") or {}, versions=run.get("versions") or {},
        git_sha=run.get("git_sha"), imageset_path=None,
        imageset_hash=run.get("imageset_hash") or bundle.meta.get("imageset_content_hash"), status="ok",
        origin="submitted", provenance=provenance,
        started_at=_parse_time(run.get("started_at")) or dt.datetime.now(dt.timezone.utc),
        finished_at=_parse_time(run.get("finished_at")),
    )
    with store.session() as s, s.begin():
        s.add(row)
        s.flush()
        for r in bundle.results:
            s.add(Result(run_id=new_id, **{f: r.get(f) for f in RESULT_FIELDS if f in r}))
        if bundle.samples:
            s.add(Artifact(run_id=new_id, kind="samples", path=str(sample_dir.resolve())))
    return ImportInfo(new_id, run["id"], run["generator"], len(bundle.results), bundle.sha256)


def _parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
