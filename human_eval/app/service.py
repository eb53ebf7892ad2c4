"""The rating app's service layer: every read and write of the app goes through these functions.

The Streamlit page (``app.py``) only renders; the tests drive the same functions from threads. All access is
through the :mod:`harness.store` models and ``Store.session()``; nothing is cached between calls except the
immutable :class:`Rater` handle a sign-in returns, so two browser tabs of one rater see the same state.

Data model (no extra tables): a study made here has ``Study.origin = "app"`` and its design in
``Study.config["design"]``; a participant's plan (ordered image ids), consent and questionnaires live in
``Participant.answers``; each answer is one ``Rating`` row, unique per (participant, image).

Tokens: ``secrets.token_urlsafe(24)`` (192 random bits) shown once to the admin; only ``sha256(token)`` is
stored. A slow, salted password hash (bcrypt/argon2) exists to stop brute force on *low-entropy* passwords;
a 192-bit random token cannot be guessed, and an unsalted digest lets sign-in find the participant by an
indexed equality lookup. A token is *used* once its participant has finished the study: it then no longer
signs in (until then it resumes the session, e.g. after the browser was closed).

Writes: ``submit_rating`` is one ``INSERT ... ON CONFLICT (participant, image) DO UPDATE ... WHERE <values
differ>`` statement (SQLite ≥ 3.35 and PostgreSQL), so a double submit, two tabs or a retry can never create a
second row; a changed answer bumps ``revision`` and sets ``updated_at``; an identical one changes nothing.
Each stored answer (first or changed) is appended to ``rating_revision`` in the same transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from harness.errors import DataError, StoreError, UsageError
from harness.imageset import ImageSet
from harness.io import IMAGE_SUFFIXES
from harness.store import Participant, Rating, RatingRevision, Run, Store, Study, StudyImage
from human_eval.app.design import balanced_latin_square, participant_plan
from human_eval.schema import FLAG_COLUMNS, canonical_source

log = logging.getLogger(__name__)

__all__ = [
    "AuthError",
    "Item",
    "Rater",
    "SubmitResult",
    "add_participants",
    "app_studies",
    "create_study",
    "export_ratings",
    "hash_token",
    "item_at",
    "next_item",
    "progress",
    "registered_image_sets",
    "save_answers",
    "sign_in",
    "stage",
    "submit_rating",
    "write_export",
]

PRE_FIELDS = ("age", "sex", "specialty", "experience_years", "weekly_readings", "language")
EXPORT_PARTICIPANT_COLUMNS = ("participant_id", "experience_years", "weekly_readings", "specialty", "age", "sex",
                              "language")
EXPORT_RATING_COLUMNS = ("participant_id", "image_id", "source", "rating", *FLAG_COLUMNS, "comment", "rated_at",
                         "position")


class AuthError(UsageError):
    """Not allowed: an unknown or used token, another rater's image, a finished study.

    ``code`` is the catalogue key of the message shown to the rater (``err_token_invalid``, ...).
    """

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def hash_token(token: str) -> str:
    """sha256 hex digest of a (high-entropy) invitation token; see the module docstring."""
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


@contextlib.contextmanager
def _db(store: Store, what: str) -> Iterator[None]:
    """Turn a lost connection into a StoreError the page can show ("nothing submitted is lost")."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:  # connection-level failures only; bugs stay bugs
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
        raise StoreError(f"the study database is unreachable while trying to {what} ({reason}). Answers already "
                         "submitted are saved; try again in a moment.") from exc


# ------------------------------------------------------------------------------------------------ setup
def _pool_files(source: str, spec: str | Path | Sequence[str | Path]) -> tuple[list[Path], str | None]:
    """Image files of one source: an image-set root (manifest order), a plain folder, or a list of paths."""
    if isinstance(spec, (str, Path)):
        root = Path(spec)
        if (root / "manifest.jsonl").exists():
            s = ImageSet.read(root)
            return [s.root / e.file for e in s.entries], str(root)
        if root.is_dir():
            return sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), str(root)
        raise DataError(f"source {source!r}: {root} is neither an image set (manifest.jsonl) nor a folder of images")
    return [Path(p) for p in spec], None


def create_study(store: Store, name: str, sources: Mapping[str, str | Path | Sequence[str | Path]], *,
                 pool_per_source: int, per_participant: int, seed: int = 0,
                 scale: tuple[int, int] = (1, 5)) -> int:
    """Create a study from image sets: a seeded pool of ``pool_per_source`` images per source.

    Parameters
    ----------
    sources : mapping
        source name (canonicalised, e.g. ``"Stable Diffusion"`` -> ``sd``) -> image-set root, image folder or
        list of image paths.
    pool_per_source, per_participant : int
        Pool size drawn from each source, and images of each source every participant rates
        (the paper: 400 and 10).

    Returns the study's primary key. Raises UsageError/DataError naming the source when a set is too small or a
    file is missing, and when the name is taken.
    """
    name = name.strip()
    if not name:
        raise UsageError("the study needs a name")
    if len(sources) < 1:
        raise UsageError("choose at least one source")
    if per_participant < 1 or pool_per_source < per_participant:
        raise UsageError(f"images per source per participant ({per_participant}) must be between 1 and the pool "
                         f"size per source ({pool_per_source})")
    lo, hi = scale
    if not lo < hi:
        raise UsageError(f"the rating scale {lo}..{hi} is empty")
    pools: dict[str, list[str]] = {}
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for raw, spec in sources.items():
        source = canonical_source(str(raw))
        if source in pools:
            raise UsageError(f"source {raw!r} and another one both mean {source!r}; give each source once")
        files, root = _pool_files(source, spec)
        missing = [p for p in files if not p.is_file()]
        if missing:
            problems.append(f"source {source!r}: {len(missing)} image file(s) missing, e.g. {missing[0]}")
        if len(files) < pool_per_source:
            problems.append(f"source {source!r} has {len(files)} images but the design needs a pool of "
                            f"{pool_per_source}: add images or lower the pool per source")
            continue
        rng_idx = _pool_sample(len(files), pool_per_source, seed, source)
        run_id = _run_for(store, root) if root else None
        pools[source] = []
        for i in rng_idx:
            path = files[i]
            iid = f"{source}/{path.name}"
            pools[source].append(iid)
            rows.append({"image_id": iid, "source": source, "path": str(path.resolve()), "run_id": run_id})
    if problems:
        raise DataError("cannot create study " + repr(name) + ":\n  - " + "\n  - ".join(problems))
    design = {"sources": sorted(pools), "pool_per_source": pool_per_source, "per_participant": per_participant,
              "seed": seed, "square": balanced_latin_square(len(pools)), "pools": pools}
    with _db(store, "create the study"), store.session() as s, s.begin():
        if s.scalar(select(Study.id).where(Study.name == name)) is not None:
            raise UsageError(f"a study named {name!r} exists already; choose another name")
        study = Study(name=name, origin="app", config={"scale": [lo, hi], "design": design})
        s.add(study)
        s.flush()
        s.add_all(StudyImage(study_id=study.id, **r) for r in rows)
        return study.id


def _pool_sample(n: int, k: int, seed: int, source: str) -> list[int]:
    """``k`` of ``n`` file indices, seeded by (study seed, source name), kept in file order (the pool)."""
    import zlib

    import numpy as np

    rng = np.random.default_rng([seed, zlib.crc32(source.encode("utf-8")), 7919])
    return sorted(int(i) for i in rng.choice(n, size=k, replace=False))


def registered_image_sets(store: Store) -> list[dict[str, Any]]:
    """Finished runs whose image set is still on disk: ``generator, run_id, n, path`` (newest first)."""
    with _db(store, "list the image sets"), store.session() as s:
        runs = list(s.scalars(select(Run).where(Run.imageset_path.is_not(None), Run.status == "ok")
                              .order_by(Run.started_at.desc())))
    seen, out = set(), []
    for r in runs:
        if r.imageset_path in seen or not (Path(r.imageset_path) / "manifest.jsonl").exists():
            continue
        seen.add(r.imageset_path)
        out.append({"generator": r.generator, "run_id": r.id, "n": r.n, "path": r.imageset_path})
    return out


def app_studies(store: Store) -> list[str]:
    """Names of the studies made with the rating app (oldest first)."""
    with _db(store, "list the studies"), store.session() as s:
        return list(s.scalars(select(Study.name).where(Study.origin == "app").order_by(Study.created_at, Study.id)))


def _run_for(store: Store, root: str) -> str | None:
    with store.session() as s:
        keys = {root, str(Path(root).resolve())}
        return s.scalar(select(Run.id).where(Run.imageset_path.in_(keys)).order_by(Run.started_at.desc()).limit(1))


def _study(s, study: str | int) -> Study:
    found = s.get(Study, study) if isinstance(study, int) else s.scalar(select(Study).where(Study.name == study))
    if found is None:
        raise UsageError(f"no study {study!r}; create it on the admin page first")
    if found.origin != "app" or "design" not in (found.config or {}):
        raise UsageError(f"study {found.name!r} was imported, not made with the rating app")
    return found


def add_participants(store: Store, study: str | int, n: int, *, prefix: str = "P",
                     language: str | None = None) -> list[tuple[str, str]]:
    """Create ``n`` participants with their plans; return ``(participant_id, token)`` pairs.

    The plaintext tokens are returned only here; the database keeps their sha256.
    """
    if n < 1:
        raise UsageError(f"number of participants must be at least 1 (got {n})")
    out: list[tuple[str, str]] = []
    try:
        out = _add_participants(store, study, n, prefix, language)
    except IntegrityError as exc:
        raise UsageError("participants were added from another page at the same time, or the id prefix "
                         f"{prefix!r} is taken; try again or use another prefix") from exc
    return out


def _add_participants(store: Store, study: str | int, n: int, prefix: str, language: str | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    with _db(store, "add participants"), store.session() as s, s.begin():
        st = _study(s, study)
        d = st.config["design"]
        first = s.scalar(select(func.count()).select_from(Participant).where(Participant.study_id == st.id)) or 0
        for i in range(first, first + n):
            plan, order = participant_plan(d["pools"], d["per_participant"], i, seed=d["seed"])
            token = secrets.token_urlsafe(24)
            pid = f"{prefix}{i + 1:03d}"
            s.add(Participant(study_id=st.id, participant_id=pid, token_hash=hash_token(token), language=language,
                              answers={"ordinal": i, "order": order, "plan": plan}))
            out.append((pid, token))
    return out


# ------------------------------------------------------------------------------------------------ rater
@dataclass(frozen=True)
class Rater:
    """What a sign-in grants: one participant of one study (nothing else is reachable through it)."""

    pk: int
    participant_id: str
    study_id: int
    study: str
    language: str | None
    scale: tuple[int, int]
    plan: tuple[str, ...]
    image_pks: Mapping[str, int] = field(repr=False)


@dataclass(frozen=True)
class Item:
    image_pk: int
    image_id: str
    source: str
    path: str | None
    position: int  # 1-based place in the rater's plan
    total: int
    rating: int | None = None  # the stored answer, when going back
    flags: Mapping[str, bool] = field(default_factory=dict)
    comment: str | None = None
    revision: int = 0


@dataclass(frozen=True)
class SubmitResult:
    status: str  # "inserted", "updated" or "unchanged"
    revision: int


def sign_in(store: Store, token: str) -> Rater:
    """The participant a token belongs to; AuthError for an unknown or used token."""
    if not token or not token.strip():
        raise AuthError("enter the token from your invitation", "err_token_empty")
    with _db(store, "sign in"), store.session() as s:
        p = s.scalar(select(Participant).where(Participant.token_hash == hash_token(token)))
        if p is None:
            raise AuthError("this token is not valid; check it against your invitation", "err_token_invalid")
        if p.finished_at is not None:
            raise AuthError("this token was already used to complete the study", "err_token_used")
        st = s.get(Study, p.study_id)
        plan = tuple((p.answers or {}).get("plan", ()))
        pks = dict(s.execute(select(StudyImage.image_id, StudyImage.id).where(
            StudyImage.study_id == p.study_id, StudyImage.image_id.in_(plan))).all())
        scale = tuple(st.config.get("scale", (1, 5)))
        return Rater(p.id, p.participant_id, st.id, st.name, p.language, scale, plan, pks)  # type: ignore[arg-type]


def stage(store: Store, rater: Rater) -> str:
    """Where the rater is: ``consent``, ``pre``, ``rating``, ``post`` or ``done``."""
    with _db(store, "load your progress"), store.session() as s:
        p = s.get(Participant, rater.pk)
        if p is None:  # the study was deleted or replaced since sign-in
            raise AuthError(f"participant {rater.participant_id} no longer exists", "err_token_invalid")
        answers = p.answers or {}
        if p.finished_at is not None:
            return "done"
        if not answers.get("consent"):
            return "consent"
        if "pre" not in answers:
            return "pre"
    return "rating" if next_item(store, rater) is not None else "post"


def save_answers(store: Store, rater: Rater, section: str, values: Mapping[str, Any]) -> None:
    """Store consent (``{"given": True}``), the pre-study (demographics) or post-study questionnaire."""
    if section not in ("consent", "pre", "post"):
        raise UsageError(f"unknown questionnaire section {section!r}")
    with _db(store, "save your answers"), store.session() as s, s.begin():
        p = s.get(Participant, rater.pk, with_for_update=True)
        if p.finished_at is not None:
            raise AuthError("this study is complete; answers can no longer be changed", "err_finished")
        answers = dict(p.answers or {})
        answers[section] = {**dict(values), "at": _now().isoformat()}
        if section == "consent":
            p.started_at = p.started_at or _now()
        if section == "pre":
            for k in PRE_FIELDS:
                if k in values and values[k] not in (None, ""):
                    setattr(p, k, values[k])
        if section == "post":
            p.finished_at = _now()
        p.answers = answers


def _items(store: Store, rater: Rater) -> tuple[dict[str, StudyImage], dict[int, Rating]]:
    with _db(store, "load your images"), store.session() as s:
        imgs = {i.image_id: i for i in s.scalars(select(StudyImage).where(StudyImage.id.in_(list(rater.image_pks.values()))))}
        done = {r.image_pk: r for r in s.scalars(select(Rating).where(Rating.participant_pk == rater.pk))}
    return imgs, done


def _item(img: StudyImage, pos: int, total: int, r: Rating | None) -> Item:
    if r is None:
        return Item(img.id, img.image_id, img.source, img.path, pos, total)
    return Item(img.id, img.image_id, img.source, img.path, pos, total, r.rating,
                {f: bool(getattr(r, f)) for f in FLAG_COLUMNS}, r.comment, r.revision)


def next_item(store: Store, rater: Rater) -> Item | None:
    """The first image of the plan not yet rated; images whose file is missing are skipped (and logged)."""
    imgs, done = _items(store, rater)
    for pos, iid in enumerate(rater.plan, start=1):
        img = imgs.get(iid)
        if img is None or img.id in done:
            continue
        if not img.path or not Path(img.path).is_file():
            log.warning("study %s, participant %s: image %s is missing (%s); skipped", rater.study,
                        rater.participant_id, iid, img.path)
            continue
        return _item(img, pos, len(rater.plan), None)
    return None


def item_at(store: Store, rater: Rater, position: int) -> Item | None:
    """The rater's own image at ``position`` (1-based) with their stored answer, for going back."""
    if not 1 <= position <= len(rater.plan):
        return None
    imgs, done = _items(store, rater)
    img = imgs.get(rater.plan[position - 1])
    return None if img is None else _item(img, position, len(rater.plan), done.get(img.id))


def _upsert(dialect: str):
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        raise StoreError(f"the rating app supports SQLite and PostgreSQL, not {dialect}")
    return insert


def submit_rating(store: Store, rater: Rater, image_id: str, rating: int, flags: Mapping[str, bool] | None = None,
                  comment: str | None = None) -> SubmitResult:
    """Store one answer (committed at once). Idempotent: the same answer again is ``unchanged``; a different
    answer for the same image updates the row and bumps its revision. Every saved answer is also appended to
    ``rating_revision``, so an answer the rater later changed is never lost."""
    flags = dict(flags or {})
    unknown = set(flags) - set(FLAG_COLUMNS)
    if unknown:
        raise UsageError(f"unknown artifact flag(s) {sorted(unknown)}; known: {', '.join(FLAG_COLUMNS)}")
    lo, hi = rater.scale
    if isinstance(rating, bool) or not isinstance(rating, int) or not lo <= rating <= hi:
        raise UsageError(f"the rating must be a whole number {lo}..{hi} (got {rating!r})")
    image_pk = rater.image_pks.get(image_id)
    if image_pk is None:
        raise AuthError(f"image {image_id!r} is not one of yours", "err_not_yours")
    comment = (comment or "").strip() or None
    now = _now()
    values = {"rating": rating, **{f: bool(flags.get(f, False)) for f in FLAG_COLUMNS}, "comment": comment}
    insert = _upsert(store.engine.dialect.name)
    stmt = insert(Rating).values(study_id=rater.study_id, participant_pk=rater.pk, image_pk=image_pk,
                                 position=rater.plan.index(image_id) + 1, rated_at=now, revision=1, **values)
    ex = stmt.excluded
    differs = (Rating.rating != ex.rating) | (Rating.comment.is_distinct_from(ex.comment))
    for f in FLAG_COLUMNS:
        differs = differs | (getattr(Rating, f) != getattr(ex, f))
    stmt = stmt.on_conflict_do_update(
        index_elements=[Rating.participant_pk, Rating.image_pk],
        set_={**{k: getattr(ex, k) for k in values}, "revision": Rating.revision + 1, "updated_at": now},
        where=differs,
    ).returning(Rating.id, Rating.revision)
    with _db(store, "save your rating"), store.session() as s, s.begin():
        finished = s.scalar(select(Participant.finished_at).where(Participant.id == rater.pk))
        if finished is not None:
            raise AuthError("this study is complete; ratings can no longer be changed", "err_finished")
        row = s.execute(stmt).first()
        revision = None if row is None else row.revision
        if row is not None:  # same transaction, row still locked: the history gets exactly this answer
            s.add(RatingRevision(rating_id=row.id, revision=row.revision, saved_at=now, **values))
        if revision is None:
            current = s.scalar(select(Rating.revision).where(Rating.participant_pk == rater.pk,
                                                             Rating.image_pk == image_pk))
            return SubmitResult("unchanged", int(current or 1))
    return SubmitResult("inserted" if revision == 1 else "updated", int(revision))


# ------------------------------------------------------------------------------------------------ admin
def progress(store: Store, study: str | int) -> pd.DataFrame:
    """One row per participant: stage, images rated / planned, answers changed, start and finish times."""
    with _db(store, "load the progress"), store.session() as s:
        st = _study(s, study)
        counts = dict(s.execute(select(Rating.participant_pk, func.count()).where(Rating.study_id == st.id)
                                .group_by(Rating.participant_pk)).all())
        revised = dict(s.execute(select(Rating.participant_pk, func.count()).where(
            Rating.study_id == st.id, Rating.revision > 1).group_by(Rating.participant_pk)).all())
        rows = []
        for p in s.scalars(select(Participant).where(Participant.study_id == st.id).order_by(Participant.id)):
            a = p.answers or {}
            stage_ = ("done" if p.finished_at else "rating" if "pre" in a else "questionnaire" if a.get("consent")
                      else "invited")
            rows.append({"participant_id": p.participant_id, "stage": stage_, "rated": counts.get(p.id, 0),
                         "planned": len(a.get("plan", ())), "changed": revised.get(p.id, 0),
                         "language": p.language, "started_at": p.started_at, "finished_at": p.finished_at})
    return pd.DataFrame(rows, columns=["participant_id", "stage", "rated", "planned", "changed", "language",
                                       "started_at", "finished_at"])


def export_ratings(store: Store, study: str | int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(ratings, participants, images)`` in the import format of FORMATS.md (flags as 0/1, ISO times)."""
    with _db(store, "export the ratings"), store.session() as s:
        st = _study(s, study)
        stmt = (select(Participant.participant_id, StudyImage.image_id, StudyImage.source, Rating.rating,
                       *[getattr(Rating, f) for f in FLAG_COLUMNS], Rating.comment, Rating.rated_at, Rating.position)
                .join(Participant, Participant.id == Rating.participant_pk)
                .join(StudyImage, StudyImage.id == Rating.image_pk)
                .where(Rating.study_id == st.id).order_by(Participant.id, Rating.position))
        ratings = pd.DataFrame(s.execute(stmt).mappings().all(), columns=list(EXPORT_RATING_COLUMNS))
        parts = pd.DataFrame(s.execute(select(*[getattr(Participant, c) for c in EXPORT_PARTICIPANT_COLUMNS])
                                       .where(Participant.study_id == st.id).order_by(Participant.id)).mappings().all(),
                             columns=list(EXPORT_PARTICIPANT_COLUMNS))
        images = pd.DataFrame(s.execute(select(StudyImage.image_id, StudyImage.source, StudyImage.path)
                                        .where(StudyImage.study_id == st.id).order_by(StudyImage.id)).mappings().all(),
                              columns=["image_id", "source", "path"])
    for f in FLAG_COLUMNS:
        ratings[f] = ratings[f].astype(bool).astype(int)
    ratings["rated_at"] = [_iso(v) for v in ratings["rated_at"]]
    ratings["position"] = ratings["position"].astype("Int64")
    return ratings, parts, images


def _iso(v) -> str:
    if v is None or v is pd.NaT:
        return ""
    if v.tzinfo is None:  # SQLite returns naive datetimes; they were written in UTC
        v = v.replace(tzinfo=dt.timezone.utc)
    return v.isoformat()


HISTORY_COLUMNS = ("participant_id", "image_id", "source", "revision", "rating", *FLAG_COLUMNS, "comment", "saved_at")


def rating_history(store: Store, study: str | int) -> pd.DataFrame:
    """Every answer saved in the app, one row per (participant, image, revision), oldest revision first;
    the highest revision of each (participant, image) is the answer in ``ratings.csv``."""
    with _db(store, "export the rating history"), store.session() as s:
        st = _study(s, study)
        stmt = (select(Participant.participant_id, StudyImage.image_id, StudyImage.source, RatingRevision.revision,
                       RatingRevision.rating, *[getattr(RatingRevision, f) for f in FLAG_COLUMNS],
                       RatingRevision.comment, RatingRevision.saved_at)
                .join(Rating, Rating.id == RatingRevision.rating_id)
                .join(Participant, Participant.id == Rating.participant_pk)
                .join(StudyImage, StudyImage.id == Rating.image_pk)
                .where(Rating.study_id == st.id)
                .order_by(Participant.id, Rating.position, RatingRevision.revision))
        hist = pd.DataFrame(s.execute(stmt).mappings().all(), columns=list(HISTORY_COLUMNS))
    for f in FLAG_COLUMNS:
        hist[f] = hist[f].astype(bool).astype(int)
    hist["saved_at"] = [_iso(v) for v in hist["saved_at"]]
    return hist


def write_export(store: Store, study: str | int, out_dir: Path) -> list[Path]:
    """Write ``ratings.csv``, ``participants.csv`` and ``images.csv`` (the import format) and
    ``rating_history.csv`` (every saved answer, changed ones included), each atomically, into ``out_dir``."""
    from harness.io import atomic_write_bytes

    ratings, parts, images = export_ratings(store, study)
    history = rating_history(store, study)
    out_dir = Path(out_dir)
    paths = []
    for fname, df in (("ratings.csv", ratings), ("participants.csv", parts), ("images.csv", images),
                      ("rating_history.csv", history)):
        path = out_dir / fname
        atomic_write_bytes(path, df.to_csv(index=False).encode("utf-8"))
        paths.append(path)
    return paths
