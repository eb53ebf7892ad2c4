"""Read and validate a human-evaluation study (FORMATS.md, "Human evaluation (import)").

A study is one long-format ``ratings.csv`` (one row per rating) plus optional ``participants.csv`` and
``images.csv``. :func:`read_study` checks every rule, collects *all* problems and raises them together as
one :class:`ValidationError`; each problem names the file, the file line (header = line 1) and the column,
e.g. ``ratings.csv line 214, column rating: '6' is outside 1..5``.

Validation is vectorised over pandas columns read as strings, so a file with a million ratings is checked in
seconds and in memory proportional to the file. Line numbers stay exact when quoted fields contain newlines
and when the file has blank lines.
"""

from __future__ import annotations

import codecs
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import DataError

__all__ = [
    "FLAG_COLUMNS",
    "SOURCE_ALIASES",
    "StudyTables",
    "ValidationError",
    "canonical_source",
    "read_study",
    "study_from_frames",
]

#: Optional boolean artifact check-boxes of the rating app (FORMATS.md).
FLAG_COLUMNS = ("walls_not_visible", "unnatural_artifacts", "possible_pathology", "cropped_image", "wall_destruction")

RATING_COLUMNS_REQUIRED = ("participant_id", "image_id", "source", "rating")
RATING_COLUMNS_OPTIONAL = (*FLAG_COLUMNS, "comment", "rated_at", "position")
PARTICIPANT_COLUMNS = ("participant_id", "experience_years", "weekly_readings", "specialty", "age", "sex", "language")
IMAGE_COLUMNS = ("image_id", "source", "path")

#: The one table of source-name aliases. Keys are normalised (lower case; runs of space, ``-`` and ``_``
#: collapsed to one space); names not listed are kept in that normalised form with spaces as ``_``.
SOURCE_ALIASES: dict[str, str] = {
    "real": "real",
    "echonet": "real",
    "echonet dynamic": "real",
    "reference": "real",
    "sd": "sd",
    "sd lora": "sd",
    "sd1.5 lora": "sd",
    "sd 1.5 lora": "sd",
    "stable diffusion": "sd",
    "stable diffusion lora": "sd",
    "stablediffusion": "sd",
    "cyclegan": "cyclegan",
    "cycle gan": "cyclegan",
    "cut": "cut",
    "fastcut": "fastcut",
    "contrastive unpaired translation": "cut",
}

_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "n", "f", ""})
_MAX_PER_RULE = 50  # problems listed per rule; the rest are counted in one line
#: Integer columns are stored as SQL INTEGER (PostgreSQL: 32-bit signed).
INT32_MAX = 2**31 - 1
#: Plausible ceilings of the numeric participant columns (a typo such as 400 years is an error, not an outlier).
PARTICIPANT_LIMITS = {"experience_years": 100.0, "weekly_readings": 100_000.0, "age": 130.0}
_ASCII_INT = r"[+-]?[0-9]+(?:\.0*)?"  # ASCII digits only: Python's \d also matches '３' and '٣'
_ASCII_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"


def text_limits() -> dict[str, int]:
    """Maximum length of each text column as the results store declares it (String(n) columns)."""
    from harness.store import Participant, Study, StudyImage

    out = {"study": Study.__table__.c.name.type.length}
    for table, cols in ((Participant, ("participant_id", "specialty", "sex", "language")),
                        (StudyImage, ("image_id", "source"))):
        for c in cols:
            out[c] = table.__table__.c[c].type.length
    return out


class ValidationError(DataError):
    """A study file breaks the import format; ``problems`` lists every problem found (file, line, column)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        head = "\n".join(f"  - {p}" for p in self.problems[:200])
        more = f"\n  ... and {len(self.problems) - 200} more" if len(self.problems) > 200 else ""
        super().__init__(
            f"{len(self.problems)} problem(s) in the study files; fix them and import again:\n{head}{more}"
        )


@dataclass
class StudyTables:
    """A validated study.

    Attributes
    ----------
    ratings : DataFrame
        ``participant_id, image_id, source`` (canonical name), ``source_raw``, ``rating`` (int64), the five
        flag columns (bool), ``comment``, ``rated_at`` (datetime64, NaT when empty), ``position`` (Int64) and
        ``line`` (the file line, for messages).
    participants : DataFrame
        One row per participant (ids from ratings when no participants file was given), numeric columns as
        float (NaN when empty).
    images : DataFrame or None
        ``image_id, source, path`` when an images file was given.
    content_hash : str
        sha256 over the input files' bytes (detects re-imports of the same study).
    warnings : list of str
        Non-fatal findings (unbalanced design, participants without ratings, unknown columns).
    scale : tuple of int
        The Likert bounds used for validation.
    """

    ratings: pd.DataFrame
    participants: pd.DataFrame
    images: pd.DataFrame | None = None
    content_hash: str = ""
    warnings: list[str] = field(default_factory=list)
    scale: tuple[int, int] = (1, 5)


def canonical_source(name: str) -> str:
    """Map a source name to its canonical form (``"Stable Diffusion"`` -> ``"sd"``, case-insensitive)."""
    key = _norm_source(pd.Series([name])).iloc[0]
    return SOURCE_ALIASES.get(key, key.replace(" ", "_"))


def _norm_source(s: pd.Series) -> pd.Series:
    return s.str.strip().str.lower().str.replace(r"[\s_\-]+", " ", regex=True)


# ----------------------------------------------------------------------------------------------- reading
def _check_utf8(data: bytes, fname: str) -> None:
    """Raise a problem naming the byte offset and line of the first invalid UTF-8 sequence."""
    try:
        str(data, "utf-8")  # transient copy; memory stays proportional to the file
    except UnicodeDecodeError as e:
        off = e.start
        line = data.count(b"\n", 0, off) + 1
        raise ValidationError(
            [
                f"{fname} line {line}: byte offset {off} (0x{data[off]:02x}) is not valid UTF-8; "
                "save the file as UTF-8 (e.g. Excel: 'CSV UTF-8')"
            ]
        ) from None


def _read_table(path: Path | str, required: tuple[str, ...]) -> tuple[pd.DataFrame, bytes]:
    """Read one CSV as strings; return the frame (with a ``line`` column) and the raw bytes."""
    path = Path(path)
    fname = path.name
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror}); check the path") from None
    _check_utf8(data, fname)
    body = data[3:] if data.startswith(codecs.BOM_UTF8) else data
    first = body.split(b"\n", 1)[0]
    if not first.strip():
        raise ValidationError([f"{fname} line 1: the file is empty; a header row is required"])
    sep = ";" if first.count(b";") > first.count(b",") else ","
    try:
        df = pd.read_csv(
            io.BytesIO(body),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            encoding="utf-8",
            engine="c",
        )
    except pd.errors.ParserError as e:
        raise ValidationError([f"{fname}: {e} (line numbers count the header as line 1)"]) from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    from harness.csvsafe import undo_neutralise

    for c in df.columns:  # the ' that EchoBench's exports put before formula-like text (harness/csvsafe.py)
        df[c] = undo_neutralise(df[c])
    # file line of each row: header is line 1; add newlines embedded in quoted fields of earlier rows
    n = len(df)
    line = np.arange(2, n + 2, dtype=np.int64)
    if n and body.count(b"\n") > n + 1:  # cheap check: only then can fields hold newlines
        nl = np.zeros(n, dtype=np.int64)
        for c in df.columns:
            nl += df[c].str.count("\n").to_numpy(dtype=np.int64)
        line += np.concatenate([[0], np.cumsum(nl)[:-1]])
    df["line"] = line
    blank = np.ones(n, dtype=bool)
    for c in df.columns[:-1]:
        blank &= (df[c].str.strip() == "").to_numpy()
    df = df.loc[~blank].reset_index(drop=True)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValidationError(
            [f"{fname} line 1: missing required column(s) {', '.join(missing)} (header has: "
             f"{', '.join(c for c in df.columns if c != 'line')}; separator detected: {sep!r})"]
        )
    if df.empty:
        raise ValidationError([f"{fname}: has a header but no data rows"])
    return df, data


# -------------------------------------------------------------------------------------------- validation
class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add_rows(self, fname: str, df: pd.DataFrame, mask, column: str, msg) -> None:
        """Add one problem per row in ``mask``; ``msg(value)`` formats it (capped per rule)."""
        mask = np.asarray(mask, dtype=bool)
        k = int(mask.sum())
        if not k:
            return
        sub = df.loc[mask, ["line", column] if column in df.columns else ["line"]].head(_MAX_PER_RULE)
        for row in sub.itertuples(index=False):
            val = row[1] if len(row) > 1 else ""
            self.items.append(f"{fname} line {row[0]}, column {column}: {msg(val)}")
        if k > _MAX_PER_RULE:
            self.items.append(f"{fname}: ... and {k - _MAX_PER_RULE} more row(s) with the same problem in column {column}")


def _parse_int(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Integers written with ASCII digits as ``3`` or ``3.0``; returns (values as float with NaN, ok mask).

    Fullwidth (``３``) or Arabic-Indic (``٣``) digits are not integers here: pandas cannot convert them, and a
    value that silently became NaN (then 0) would change a study's means.
    """
    t = s.str.strip()
    ok = t.str.fullmatch(_ASCII_INT).to_numpy(dtype=bool)
    vals = pd.to_numeric(t.where(ok, None), errors="coerce").astype(float)
    ok = ok & np.isfinite(vals.to_numpy(dtype=float))
    return vals, ok


def _check_text(df: pd.DataFrame, fname: str, columns, P: _Problems) -> None:
    """NUL characters (PostgreSQL text cannot hold them) and values longer than the store's column."""
    limits = text_limits()
    for c in columns:
        if c not in df.columns:
            continue
        v = df[c]
        P.add_rows(fname, df, v.str.contains("\x00", regex=False).to_numpy(dtype=bool), c,
                   lambda _v: "contains a NUL character (\\x00); remove it")
        if c in limits:
            n = limits[c]
            P.add_rows(fname, df, (v.str.strip().str.len() > n).to_numpy(dtype=bool), c,
                       lambda x, n=n: f"value of {len(x.strip())} characters is longer than the {n} allowed")


def _validate_ratings(df: pd.DataFrame, fname: str, scale: tuple[int, int], P: _Problems, warnings: list[str]):
    lo, hi = scale
    unknown = [c for c in df.columns if c not in (*RATING_COLUMNS_REQUIRED, *RATING_COLUMNS_OPTIONAL, "line")]
    if unknown:
        warnings.append(f"{fname}: column(s) {', '.join(unknown)} are not part of the format and are ignored")
    _check_text(df, fname, ("participant_id", "image_id", "source", "comment"), P)
    out = pd.DataFrame({"line": df["line"].to_numpy()})
    for c in ("participant_id", "image_id", "source"):
        v = df[c].str.strip()
        P.add_rows(fname, df, (v == "").to_numpy(), c, lambda _v: "empty value; every rating needs one")
        out[c] = v.to_numpy()
    out["source_raw"] = out["source"]
    key = _norm_source(out["source"])
    out["source"] = key.map(SOURCE_ALIASES).fillna(key.str.replace(" ", "_")).to_numpy()

    raw = df["rating"].str.strip()
    vals, ok = _parse_int(raw)
    empty = (raw == "").to_numpy()
    P.add_rows(fname, df, empty, "rating", lambda v: f"empty rating; expected an integer {lo}..{hi}")
    P.add_rows(fname, df, ~ok & ~empty, "rating", lambda v: f"{v.strip()!r} is not an integer (expected {lo}..{hi})")
    out_of = ok & ~((vals >= lo) & (vals <= hi)).to_numpy(dtype=bool)  # NaN never passes a range check
    P.add_rows(fname, df, out_of, "rating", lambda v: f"{v.strip()!r} is outside {lo}..{hi}")
    good = ok & ~out_of  # rows with a problem are never imported (the problems raise); keep int64 valid
    out["rating"] = np.where(good, np.nan_to_num(vals.to_numpy(dtype=float), nan=lo), lo).astype("int64")

    for c in FLAG_COLUMNS:
        if c not in df.columns:
            out[c] = False
            continue
        t = df[c].str.strip().str.lower()
        is_t = t.isin(_TRUE).to_numpy()
        bad = ~(is_t | t.isin(_FALSE).to_numpy())
        P.add_rows(fname, df, bad, c, lambda v: f"{v!r} is not a yes/no value (use 0/1, true/false, yes/no or empty)")
        out[c] = is_t
    out["comment"] = df["comment"].to_numpy() if "comment" in df.columns else ""
    if "rated_at" in df.columns:
        t = df["rated_at"].str.strip()
        ts = pd.to_datetime(t.where(t != "", None), format="ISO8601", errors="coerce", utc=True)
        P.add_rows(fname, df, (ts.isna() & (t != "")).to_numpy(), "rated_at",
                   lambda v: f"{v!r} is not an ISO-8601 date-time (e.g. 2024-03-01T10:15:00)")
        out["rated_at"] = ts.to_numpy()
    else:
        out["rated_at"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    if "position" in df.columns:
        t = df["position"].str.strip()
        pv, pok = _parse_int(t)
        P.add_rows(fname, df, ~pok & (t != "").to_numpy(), "position", lambda v: f"{v!r} is not an integer")
        big = pok & ~((pv >= 0) & (pv <= INT32_MAX)).to_numpy(dtype=bool)
        P.add_rows(fname, df, big, "position", lambda v: f"{v.strip()!r} is outside 0..{INT32_MAX}")
        pv = pv.where(pok & ~big)
        out["position"] = pv.astype("Int64").to_numpy()
    else:
        out["position"] = pd.array([pd.NA] * len(out), dtype="Int64")

    # duplicate (participant_id, image_id)
    dup = out.duplicated(["participant_id", "image_id"], keep="first").to_numpy()
    if dup.any():
        first = out.groupby(["participant_id", "image_id"], sort=False)["line"].transform("min")
        sub = out.loc[dup].assign(first=first[dup])
        for r in sub.head(_MAX_PER_RULE).itertuples(index=False):
            P.items.append(
                f"{fname} line {r.line}, column image_id: participant {r.participant_id!r} already rated image "
                f"{r.image_id!r} on line {r.first}; remove the duplicate"
            )
        if len(sub) > _MAX_PER_RULE:
            P.items.append(f"{fname}: ... and {len(sub) - _MAX_PER_RULE} more duplicate (participant_id, image_id) rows")
    # an image listed under two sources
    nsrc = out.groupby("image_id", sort=False)["source"].transform("nunique").to_numpy()
    if (nsrc > 1).any():
        sub = out.loc[nsrc > 1]
        firsts = sub.drop_duplicates(["image_id", "source"])
        k = 0
        for img, g in firsts.groupby("image_id", sort=False):
            if k >= _MAX_PER_RULE:
                P.items.append(f"{fname}: ... and more images listed under several sources")
                break
            k += 1
            where = "; ".join(f"{s!r} on line {ln}" for s, ln in zip(g["source"], g["line"]))
            P.items.append(f"{fname} line {g['line'].iloc[-1]}, column source: image {img!r} is listed under "
                           f"different sources ({where}); one image has one source")
    return out


def _validate_participants(df: pd.DataFrame, fname: str, P: _Problems, warnings: list[str]) -> pd.DataFrame:
    unknown = [c for c in df.columns if c not in (*PARTICIPANT_COLUMNS, "line")]
    if unknown:
        warnings.append(f"{fname}: column(s) {', '.join(unknown)} are not part of the format and are ignored")
    _check_text(df, fname, ("participant_id", "specialty", "sex", "language"), P)
    out = pd.DataFrame({"participant_id": df["participant_id"].str.strip().to_numpy(), "line": df["line"].to_numpy()})
    P.add_rows(fname, df, (out["participant_id"] == "").to_numpy(), "participant_id", lambda v: "empty participant id")
    dup = out["participant_id"].duplicated().to_numpy() & (out["participant_id"] != "").to_numpy()
    P.add_rows(fname, df, dup, "participant_id", lambda v: f"participant {v.strip()!r} is listed twice")
    for c in ("experience_years", "weekly_readings", "age"):
        if c not in df.columns:
            out[c] = np.nan
            continue
        t = df[c].str.strip().str.replace(",", ".", regex=False)
        num = t.str.fullmatch(_ASCII_NUMBER).to_numpy(dtype=bool)  # no inf/nan, no Unicode digits
        v = pd.to_numeric(t.where(num, None), errors="coerce").astype(float)
        top = PARTICIPANT_LIMITS[c]
        bad = (t != "").to_numpy() & ~(num & ((v >= 0) & (v <= top)).to_numpy(dtype=bool))
        P.add_rows(fname, df, bad, c, lambda x, top=top: f"{x!r} is not a number from 0 to {top:g}")
        out[c] = v.where(~pd.Series(bad)).to_numpy(dtype=float)
    for c in ("specialty", "sex", "language"):  # empty text = not answered (None), as the rating app stores it
        text = df[c].str.strip() if c in df.columns else pd.Series([""] * len(df), dtype=object)
        out[c] = text.astype(object).where(text != "", None).to_numpy()
    return out


def _validate_images(df: pd.DataFrame, fname: str, P: _Problems) -> pd.DataFrame:
    _check_text(df, fname, ("image_id", "source", "path"), P)
    out = pd.DataFrame({"image_id": df["image_id"].str.strip().to_numpy(), "line": df["line"].to_numpy()})
    P.add_rows(fname, df, (out["image_id"] == "").to_numpy(), "image_id", lambda v: "empty image id")
    P.add_rows(fname, df, out["image_id"].duplicated().to_numpy(), "image_id", lambda v: f"image {v.strip()!r} is listed twice")
    if "source" in df.columns:
        key = _norm_source(df["source"])
        out["source"] = key.map(SOURCE_ALIASES).fillna(key.str.replace(" ", "_")).to_numpy()
    else:
        out["source"] = ""
    out["path"] = df["path"].str.strip().to_numpy() if "path" in df.columns else ""
    return out


def _cross_checks(ratings, participants, images, files: dict[str, str], P: _Problems, warnings: list[str]) -> None:
    rf, pf = files["ratings"], files.get("participants")
    if participants is not None:
        known = set(participants["participant_id"])
        firsts = ratings.drop_duplicates("participant_id")
        miss = firsts.loc[~firsts["participant_id"].isin(known)]
        for r in miss.head(_MAX_PER_RULE).itertuples(index=False):
            P.items.append(f"{rf} line {r.line}, column participant_id: participant {r.participant_id!r} is not in "
                           f"{pf}; add a row for them there")
        if len(miss) > _MAX_PER_RULE:
            P.items.append(f"{rf}: ... and {len(miss) - _MAX_PER_RULE} more participants missing from {pf}")
        unused = participants.loc[~participants["participant_id"].isin(set(ratings["participant_id"]))]
        if len(unused):
            ids = ", ".join(unused["participant_id"].head(20))
            warnings.append(f"{pf}: {len(unused)} participant(s) without ratings: {ids}")
    if images is not None:
        f = files["images"]
        m = ratings.drop_duplicates("image_id").merge(images[["image_id", "source"]], on="image_id", how="left",
                                                      suffixes=("", "_img"))
        nofile = m["source_img"].isna()
        if nofile.any():
            warnings.append(f"{f}: {int(nofile.sum())} rated image(s) have no row (no file to compare metrics with)")
        clash = m.loc[~nofile & (m["source_img"] != "") & (m["source_img"] != m["source"])]
        for r in clash.head(_MAX_PER_RULE).itertuples(index=False):
            P.items.append(f"{rf} line {r.line}, column source: image {r.image_id!r} is {r.source!r} here but "
                           f"{r.source_img!r} in {f}")


def _design_warnings(ratings: pd.DataFrame, warnings: list[str]) -> None:
    tab = pd.crosstab(ratings["participant_id"], ratings["source"])
    if tab.size and tab.to_numpy().min() != tab.to_numpy().max():
        lo, hi = int(tab.to_numpy().min()), int(tab.to_numpy().max())
        warnings.append(
            f"unbalanced design: ratings per participant per source range from {lo} to {hi} "
            f"({tab.shape[0]} participants x {tab.shape[1]} sources); analyses that need complete "
            "participant x source cells drop incomplete participants and say so"
        )


def _finish(ratings_s, participants_s, images_s, files, scale, digest) -> StudyTables:
    P = _Problems()
    warnings: list[str] = []
    ratings = _validate_ratings(ratings_s, files["ratings"], scale, P, warnings)
    participants = (_validate_participants(participants_s, files["participants"], P, warnings)
                    if participants_s is not None else None)
    images = _validate_images(images_s, files["images"], P) if images_s is not None else None
    if not P.items:
        _cross_checks(ratings, participants, images, files, P, warnings)
    if P.items:
        raise ValidationError(P.items)
    if participants is None:
        participants = pd.DataFrame({"participant_id": pd.unique(ratings["participant_id"])})
        for c in PARTICIPANT_COLUMNS[1:]:
            participants[c] = np.nan if c in ("experience_years", "weekly_readings", "age") else ""
    else:
        participants = participants.drop(columns="line")
    if images is not None:
        images = images.drop(columns="line")
    _design_warnings(ratings, warnings)
    return StudyTables(ratings=ratings, participants=participants, images=images, content_hash=digest,
                       warnings=warnings, scale=tuple(scale))


def read_study(ratings_path, participants_path=None, images_path=None, *, scale: tuple[int, int] = (1, 5)) -> StudyTables:
    """Read and validate a study's CSV files.

    Parameters
    ----------
    ratings_path, participants_path, images_path : path-like
        ``ratings.csv`` (required) and the optional participants/images files (FORMATS.md).
    scale : (int, int)
        Likert bounds; ratings outside are errors.

    Returns
    -------
    StudyTables

    Raises
    ------
    ValidationError
        With every problem found (``.problems``), each naming file, line and column.
    """
    lo, hi = scale
    if not (isinstance(lo, (int, np.integer)) and isinstance(hi, (int, np.integer)) and lo < hi):
        raise DataError(f"scale must be two integers low < high, got {scale!r}")
    h = hashlib.sha256()
    files: dict[str, str] = {}
    frames = {}
    problems: list[str] = []
    for name, p, req in (("ratings", ratings_path, RATING_COLUMNS_REQUIRED),
                         ("participants", participants_path, ("participant_id",)),
                         ("images", images_path, ("image_id",))):
        if p is None:
            frames[name] = None
            h.update(b"\0none\0")
            continue
        files[name] = Path(p).name
        try:
            frames[name], data = _read_table(p, req)
        except ValidationError as e:  # keep reading the other files so all problems come at once
            problems.extend(e.problems)
            continue
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    if problems:
        raise ValidationError(problems)
    return _finish(frames["ratings"], frames["participants"], frames["images"], files, scale, h.hexdigest())


def study_from_frames(ratings: pd.DataFrame, participants: pd.DataFrame | None = None,
                      images: pd.DataFrame | None = None, *, scale: tuple[int, int] = (1, 5)) -> StudyTables:
    """Validate in-memory tables with the same rules as :func:`read_study` (rows are numbered as file lines
    of an equivalent CSV: first row = line 2)."""
    def prep(df, name, req):
        if df is None:
            return None
        s = df.astype(str).replace({"nan": "", "<NA>": "", "None": "", "NaT": ""})
        s.columns = [str(c).strip().lower() for c in s.columns]
        missing = [c for c in req if c not in s.columns]
        if missing:
            raise ValidationError([f"{name}: missing required column(s) {', '.join(missing)}"])
        if s.empty:
            raise ValidationError([f"{name}: has no rows"])
        s["line"] = np.arange(2, len(s) + 2)
        return s

    files = {"ratings": "ratings"}
    files.update({k: k for k, v in (("participants", participants), ("images", images)) if v is not None})
    r = prep(ratings, "ratings", RATING_COLUMNS_REQUIRED)
    p = prep(participants, "participants", ("participant_id",))
    i = prep(images, "images", ("image_id",))
    h = hashlib.sha256(pd.util.hash_pandas_object(r, index=False).to_numpy().tobytes())
    return _finish(r, p, i, files, scale, h.hexdigest())
