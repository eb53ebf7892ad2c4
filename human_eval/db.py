"""Human-evaluation tables in the results store: import a validated study, load it back.

Import is all-or-nothing (one transaction) and idempotent: the same files (same content hash) imported
again are a no-op; a study name that exists with other data needs ``replace=True``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import delete, func, insert, select, update

from harness.errors import DataError, UsageError
from harness.store import Participant, Rating, RatingRevision, Store, Study, StudyImage
from human_eval.schema import FLAG_COLUMNS, StudyTables

log = logging.getLogger(__name__)
PARTICIPANT_FIELDS = ("experience_years", "weekly_readings", "specialty", "age", "sex", "language")


@dataclass(frozen=True)
class ImportSummary:
    study: str
    status: str  # "imported", "replaced" or "unchanged"
    ratings: int
    participants: int
    images: int
    backup: Path | None = None  # where a replaced app study was exported first


def _none(v):
    return None if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NaT or v is pd.NA else v


def _has_app_data(s, study: Study) -> bool:
    """Whether a study holds data only the rating app collected (its origin, sign-in tokens or answer history)."""
    if study.origin == "app":
        return True
    tokens = s.scalar(select(func.count()).select_from(Participant).where(
        Participant.study_id == study.id, Participant.token_hash.is_not(None)))
    history = s.scalar(select(func.count()).select_from(RatingRevision).join(Rating, Rating.id == RatingRevision.rating_id)
                       .where(Rating.study_id == study.id))
    return bool(tokens or history)


def backup_folder(name: str, root: Path | str | None = None) -> Path:
    """``<root>/<study>-backup-<UTC time>`` (root: ``ECHOBENCH_BACKUPS`` or ``./backups``); never an existing folder."""
    import os
    import re

    base = Path(root or os.environ.get("ECHOBENCH_BACKUPS", "backups"))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80] or "study"
    return base / f"{safe}-backup-{stamp}"


def import_study(store: Store, tables: StudyTables, name: str, *, replace: bool = False,
                 replace_app_study: bool = False, backup_root: Path | str | None = None,
                 config: dict | None = None) -> ImportSummary:
    """Write a validated study into the store under ``name`` (one transaction).

    ``replace`` overwrites an *imported* study of that name. A study with data collected in the rating app
    (ratings, their history, sign-in tokens) is never replaced by ``replace`` alone: that needs
    ``replace_app_study`` too, and then the study is first exported (:func:`human_eval.app.service.write_export`,
    the import format) into a dated backup folder, inside the same locked transaction, so no answer saved up to
    the replacement is lost; raters still signed in are refused on their next save.
    """
    from human_eval.schema import text_limits

    if not name.strip():
        raise UsageError("--study NAME must not be empty")
    limit = text_limits()["study"]
    if "\x00" in name or len(name) > limit:
        raise UsageError(f"--study NAME must be at most {limit} characters without NUL characters")
    r = tables.ratings
    backup = None
    with store.session() as s, s.begin():
        existing = s.scalar(select(Study).where(Study.name == name))
        if existing is not None:
            app_data = _has_app_data(s, existing)
            if existing.content_hash == tables.content_hash and not replace and not app_data:
                n = s.query(Rating).filter(Rating.study_id == existing.id).count()
                return ImportSummary(name, "unchanged", n, len(tables.participants), r["image_id"].nunique())
            if app_data and not replace_app_study:
                raise DataError(
                    f"study {name!r} holds ratings collected with the rating app; importing over it would delete them. "
                    f"Import under another --study name (or export it first: harness human export --study {name} --out DIR)")
            if not replace and not app_data:
                raise DataError(f"study {name!r} already exists with different data; use --replace to overwrite it")
            if app_data:
                # lock first (a no-op write: SQLite's write lock, PostgreSQL's row lock), so every answer saved
                # before this point is in the backup and every save after it waits, then is refused
                s.execute(update(Study).where(Study.id == existing.id).values(name=Study.name))
                from human_eval.app.service import write_export_in

                backup = backup_folder(name, backup_root)
                write_export_in(s, existing, backup)
                log.warning("study %r: app data backed up to %s before replacing it", name, backup)
            s.execute(delete(Study).where(Study.id == existing.id))
            s.flush()
        study = Study(name=name, origin="import", content_hash=tables.content_hash,
                      config={"scale": list(tables.scale), **(config or {})})
        s.add(study)
        s.flush()
        parts = tables.participants
        p_rows = [{"study_id": study.id, "participant_id": str(row["participant_id"]), "answers": {},
                   **{f: _none(row.get(f)) for f in PARTICIPANT_FIELDS}} for row in parts.to_dict("records")]
        s.execute(insert(Participant), p_rows)
        images = r.drop_duplicates("image_id")[["image_id", "source"]]
        paths = {}
        if tables.images is not None:
            paths = dict(zip(tables.images["image_id"], tables.images.get("path", pd.Series(dtype=str))))
        i_rows = [{"study_id": study.id, "image_id": str(iid), "source": str(src), "path": _none(paths.get(iid)) or None}
                  for iid, src in zip(images["image_id"], images["source"])]
        s.execute(insert(StudyImage), i_rows)
        pk_p = dict(s.execute(select(Participant.participant_id, Participant.id).where(Participant.study_id == study.id)).all())
        pk_i = dict(s.execute(select(StudyImage.image_id, StudyImage.id).where(StudyImage.study_id == study.id)).all())
        frame = pd.DataFrame({
            "participant_pk": r["participant_id"].map(pk_p).astype("int64"),
            "image_pk": r["image_id"].map(pk_i).astype("int64"),
            "rating": r["rating"].astype("int64"),
            **{f: r[f].astype(bool) if f in r else False for f in FLAG_COLUMNS},
            "comment": r["comment"].where(r["comment"].astype(str).str.len() > 0, None) if "comment" in r else None,
            "position": r["position"].astype("object").where(r["position"].notna(), None) if "position" in r else None,
            "rated_at": r["rated_at"].astype("object").where(r["rated_at"].notna(), None) if "rated_at" in r else None,
        })
        frame["revision"] = 1
        frame["study_id"] = study.id
        records = frame.to_dict("records")
        for chunk in range(0, len(records), 50_000):
            s.execute(insert(Rating), [{k: _none(v) for k, v in rec.items()} for rec in records[chunk : chunk + 50_000]])
        status = "replaced" if existing is not None else "imported"
    return ImportSummary(name, status, len(r), len(parts), len(i_rows), backup)


def save_per_image_metrics(store: Store, name: str, rows: pd.DataFrame, *, feature_space: str) -> None:
    """Keep per-image metric values (``metric, image, value``) with the study, for the leaderboard's scatter."""
    records = [{"metric": str(m), "image": str(i), "value": (None if pd.isna(v) else float(v))}
               for m, i, v in zip(rows["metric"], rows["image"], rows["value"])]
    with store.session() as s, s.begin():
        study = s.scalar(select(Study).where(Study.name == name))
        if study is None:
            raise UsageError(f"no study {name!r}")
        study.config = {**(study.config or {}), "per_image_metrics": {"feature_space": feature_space, "rows": records}}


def list_studies(store: Store) -> list[str]:
    with store.session() as s:
        return list(s.scalars(select(Study.name).order_by(Study.created_at)))


def load_study(store: Store, name: str) -> StudyTables:
    """Read a stored study back as the tables :func:`human_eval.schema.read_study` returns."""
    with store.session() as s:
        study = s.scalar(select(Study).where(Study.name == name))
        if study is None:
            names = list_studies(store)
            known = ", ".join(names) or "none (harness human import ...)"
            raise UsageError(f"no study {name!r} in {store.url.split('@')[-1]}; studies: {known}")
        stmt = (
            select(Participant.participant_id, StudyImage.image_id, StudyImage.source, Rating.rating,
                   *[getattr(Rating, f) for f in FLAG_COLUMNS], Rating.comment, Rating.rated_at, Rating.position)
            .join(Participant, Participant.id == Rating.participant_pk)
            .join(StudyImage, StudyImage.id == Rating.image_pk)
            .where(Rating.study_id == study.id)
            .order_by(Rating.id)
        )
        ratings = pd.DataFrame(s.execute(stmt).mappings().all())
        participants = pd.DataFrame(s.execute(
            select(Participant.participant_id, *[getattr(Participant, f) for f in PARTICIPANT_FIELDS])
            .where(Participant.study_id == study.id).order_by(Participant.id)).mappings().all())
        images = pd.DataFrame(s.execute(
            select(StudyImage.image_id, StudyImage.source, StudyImage.path, StudyImage.run_id)
            .where(StudyImage.study_id == study.id).order_by(StudyImage.id)).mappings().all())
        scale = tuple(study.config.get("scale", (1, 5)))
        content_hash = study.content_hash or ""
    if ratings.empty:
        ratings = pd.DataFrame(columns=["participant_id", "image_id", "source", "rating", *FLAG_COLUMNS, "comment", "rated_at", "position"])
    ratings["rating"] = ratings["rating"].astype("int64")
    return StudyTables(ratings=ratings, participants=participants, images=images, content_hash=content_hash, scale=scale)  # type: ignore[arg-type]
