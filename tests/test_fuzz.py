"""Property-based fuzzing (hypothesis) of everything that reads user input (issue 21): the ratings/participants
CSV importer, the bundle importer and the command-line option parser. Whatever the input (random bytes,
random Unicode, extreme numbers, random column orders), the result is either accepted with valid values or a
DataError/UsageError; never another exception, never a NaN or out-of-range value stored."""

from __future__ import annotations

import hashlib
import io
import json
import math
import string
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import DataError, UsageError
from human_eval.schema import FLAG_COLUMNS, PARTICIPANT_LIMITS, read_study

FUZZ = settings(deadline=None, max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
FEW = settings(FUZZ, max_examples=40)

# ------------------------------------------------------------------------------------------- CSV importer
RATING_COLS = ["participant_id", "image_id", "source", "rating", *FLAG_COLUMNS, "comment", "rated_at", "position"]
numbers = st.one_of(
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["３", "٣", "߃", "३", "nan", "NaN", "inf", "-inf", "Infinity", "1e400", "3.0", "3.", " 4 ", "+2",
                     "0x3", "1_0", "", "５", "٠", "2147483648", "-0", "1e1"]),
)
cells = st.one_of(numbers, st.text(max_size=12), st.sampled_from(["[/i]", ":smile:", "=HYPERLINK(\"x\")", "'=1", "\x00",
                                                                   "\"", "a,b", "line\nbreak", "P1", "real", "cut"]))


def _csv(header: list[str], rows: list[list[str]], sep: str = ",") -> bytes:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, delimiter=sep)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _check_accepted(tables, scale=(1, 5)) -> None:
    r = tables.ratings
    assert str(r["rating"].dtype) == "int64"
    assert r["rating"].between(*scale).all()
    if "position" in r and len(r):
        pos = r["position"].dropna()
        assert ((pos >= 0) & (pos <= 2**31 - 1)).all()
    for c, top in PARTICIPANT_LIMITS.items():
        if c in tables.participants:
            v = tables.participants[c].astype(float)
            assert (v.isna() | ((v >= 0) & (v <= top))).all()
    for c in ("participant_id", "image_id", "source"):
        assert not r[c].str.contains("\x00", regex=False).any()


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_never_crash_the_importer(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("b") / "ratings.csv"
    path.write_bytes(data)
    try:
        tables = read_study(path)
    except DataError:
        return
    _check_accepted(tables)


@FUZZ
@given(cols=st.permutations(RATING_COLS).flatmap(lambda p: st.integers(4, len(p)).map(lambda k: list(p[:k]))),
       rows=st.lists(st.lists(cells, min_size=len(RATING_COLS), max_size=len(RATING_COLS)), min_size=1, max_size=6),
       sep=st.sampled_from([",", ";"]))
def test_random_cells_and_column_orders(tmp_path_factory, cols, rows, sep):
    path = tmp_path_factory.mktemp("c") / "ratings.csv"
    path.write_bytes(_csv(cols, [r[: len(cols)] for r in rows], sep))
    try:
        tables = read_study(path)
    except DataError:
        return
    _check_accepted(tables)
    # an accepted rating is exactly the ASCII integer written in the file
    if "rating" in cols:
        written = [r[cols.index("rating")].strip() for r in rows]
        for v in tables.ratings["rating"]:
            assert any(w.isascii() and w.lstrip("+").split(".")[0] == str(v) for w in written)


@FUZZ
@given(rating=numbers, position=numbers)
def test_one_row_numbers(tmp_path_factory, rating, position):
    path = tmp_path_factory.mktemp("n") / "ratings.csv"
    path.write_bytes(_csv(["participant_id", "image_id", "source", "rating", "position"], [["P", "i", "real", rating, position]]))
    try:
        tables = read_study(path)
    except DataError:
        t = rating.strip()
        if t.isascii() and t.lstrip("+").isdigit() and 1 <= int(t) <= 5 and not position.strip():
            pytest.fail(f"valid rating {rating!r} refused")
        return
    _check_accepted(tables)
    assert int(tables.ratings["rating"].iloc[0]) == int(float(rating.strip()))


@FUZZ
@given(values=st.lists(numbers, min_size=3, max_size=3), order=st.permutations(["age", "experience_years", "weekly_readings"]))
def test_participant_numbers(tmp_path_factory, values, order):
    d = tmp_path_factory.mktemp("p")
    (d / "r.csv").write_bytes(_csv(["participant_id", "image_id", "source", "rating"], [["P", "i", "real", "3"]]))
    (d / "p.csv").write_bytes(_csv(["participant_id", *order], [["P", *values]]))
    try:
        tables = read_study(d / "r.csv", d / "p.csv")
    except DataError:
        return
    _check_accepted(tables)
    for c, v in zip(order, values):
        got = tables.participants[c].iloc[0]
        assert (math.isnan(got) and not v.strip()) or math.isfinite(got)


# ----------------------------------------------------------------------------------------- bundle importer
def _bundle(run: dict, results: list, n: int = 3, meta_extra: dict | None = None) -> bytes:
    hashes = [hashlib.sha256(bytes([i])).hexdigest() for i in range(n)]
    files = {
        "run.json": json.dumps(run).encode(),
        "results.json": json.dumps(results).encode(),
        "imageset/manifest.jsonl": "".join(json.dumps({"index": i, "file": f"images/{i:06d}.png", "sha256": h}) + "\n"
                                           for i, h in enumerate(hashes)).encode(),
    }
    meta = {"kind": "echobench-submission", "schema_version": 1, "files": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()},
            "imageset_content_hash": hashlib.sha256("".join(hashes).encode()).hexdigest(), **(meta_extra or {})}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("bundle.json", json.dumps(meta))
        for k, v in files.items():
            zf.writestr(k, v)
    return buf.getvalue()


def _good_run() -> dict:
    return {"id": "r-1", "generator": "g", "data_source": "phantom", "n": 3, "seed": 0, "status": "ok",
            "config": {}, "versions": {}}


def _good_result() -> dict:
    from harness.registry import tasks

    return {"task": "fid", "task_version": tasks.get("fid").spec.version, "metric": "FD_radiomics", "value": 1.5,
            "ci_low": 1.0, "ci_high": 2.0, "n": 3, "feature_space": "radiomics", "higher_is_better": False, "details": {}}


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8)


@pytest.fixture(scope="module")
def bundle_store(tmp_path_factory):
    from harness.store import Store

    d = tmp_path_factory.mktemp("bundles")
    return Store(f"sqlite:///{d / 'b.db'}"), d


@FEW
@given(where=st.sampled_from(["run", "result"]), field=st.sampled_from(
    ["id", "generator", "data_source", "n", "seed", "status", "config", "reference", "feature_space", "git_sha",
     "started_at", "task_version", "metric", "value", "ci_low", "n", "higher_is_better", "details"]),
    value=json_values)
def test_bundle_fields_with_any_json_value(bundle_store, where, field, value):
    from harness.bundle import import_bundle, read_bundle

    store, d = bundle_store
    run, res = _good_run(), _good_result()
    (run if where == "run" else res)[field] = value
    run["id"] = hashlib.sha256(repr((where, field, value)).encode()).hexdigest()[:32]
    path = d / "x.zip"
    path.write_bytes(_bundle(run, [res]))
    try:
        read_bundle(path)
    except DataError:
        return
    try:  # what read_bundle accepts must store without a database error
        info = import_bundle(path, db=store.url, home=d / "home")
    except DataError as exc:
        assert "already" in str(exc)
        return
    assert info.results == 1


@FEW
@given(raw=st.binary(max_size=300))
def test_bundle_random_bytes(tmp_path_factory, raw):
    from harness.bundle import read_bundle

    path = tmp_path_factory.mktemp("z") / "b.zip"
    path.write_bytes(raw)
    with pytest.raises(DataError):
        read_bundle(path)


@FEW
@given(text=st.text(max_size=60), where=st.sampled_from(["run.json", "results.json"]))
def test_bundle_json_documents_replaced_by_any_text(tmp_path_factory, text, where):
    from harness.bundle import read_bundle

    run, res = json.dumps(_good_run()), json.dumps([_good_result()])
    docs = {"run.json": run, "results.json": res}
    docs[where] = text
    path = tmp_path_factory.mktemp("t") / "b.zip"
    hashes = [hashlib.sha256(bytes([i])).hexdigest() for i in range(3)]
    files = {"run.json": docs["run.json"].encode(), "results.json": docs["results.json"].encode(),
             "imageset/manifest.jsonl": "".join(json.dumps({"index": i, "sha256": h}) + "\n" for i, h in enumerate(hashes)).encode()}
    meta = {"kind": "echobench-submission", "schema_version": 1, "files": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("bundle.json", json.dumps(meta))
        for k, v in files.items():
            zf.writestr(k, v)
    path.write_bytes(buf.getvalue())
    try:
        read_bundle(path)
    except DataError:
        return
    assert text.strip()  # only a valid document can pass


# -------------------------------------------------------------------------------------- command-line options
def _not_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return True
    return False


def _check_param(task_cls, name, value):
    task = task_cls(**{name: value})
    default = task_cls.spec.parameters[name]
    got = task.params[name]
    if default is None:  # numbers become finite floats; other text is passed to the task unchanged
        assert got is None or (isinstance(got, float) and math.isfinite(got)) or (isinstance(got, str) and _not_number(got))
    else:
        assert type(got) is type(default)
        if isinstance(got, float):
            assert math.isfinite(got)
    lo, hi = task_cls.spec.ranges.get(name, (None, None))
    if lo is not None and isinstance(got, (int, float)) and not isinstance(got, bool):
        assert lo <= got <= hi


@FUZZ
@given(task=st.sampled_from(["fid", "diversity", "memorization", "color-shift"]), data=st.data(),
       raw=st.one_of(numbers, st.text(max_size=10), st.sampled_from(["true", "no", "none", "null", "[1]", "{}"])))
def test_task_options_are_typed_and_ranged(task, data, raw):
    from harness.cli import _parse_task_options
    from harness.registry import tasks

    cls = tasks.get(task)
    name = data.draw(st.sampled_from(sorted(cls.spec.parameters)))
    try:
        value = _parse_task_options([f"{task}.{name}={raw}"])[task][name]
        _check_param(cls, name, value)
    except UsageError:
        pass


OPTION_NAMES = ["--n", "--seed", "--batch-size", "--task-option", "--option", "-o", "--device",
                "--checkpoint", "--conditions", "--data", "--reference", "--n-ref", "--features", "-f", "--weights",
                "--json", "--db", "--out", "-g", "-t", "--bogus"]


@FEW
@given(tokens=st.lists(st.one_of(st.sampled_from(OPTION_NAMES), numbers,
                                 st.text(alphabet=string.ascii_letters + string.digits + ":=.-_/[]", max_size=8)),
                       max_size=8))
def test_run_command_line_never_crashes(tmp_path_factory, capsys, tokens):
    from harness.cli import run_cli

    d = tmp_path_factory.mktemp("cli")
    rc = run_cli(["run", *tokens, "--db", f"sqlite:///{d / 'x.db'}", "--out", str(d / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, (tokens, rc, err)

