"""Human-evaluation tables in the results store: import a validated study, load it back.

Import is all-or-nothing (one transaction) and idempotent: the same files (same content hash) imported
again are a no-op; a study name that exists with other data needs ``replace=True``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import delete, insert, select

from harness.errors import DataError, UsageError
from harness.store import Participant, Rating, Store, Study, StudyImage
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


def _none(v):
    return None if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NaT or v is pd.NA else v


def import_study(store: Store, tables: StudyTables, name: str, *, replace: bool = False, config: dict | None = None) -> ImportSummary:
    """Write a validated study into the store under ``name`` (one transaction)."""
    if not name.strip():
        raise UsageError("--study NAME must not be empty")
    r = tables.ratings
    with store.session() as s, s.begin():
        existing = s.scalar(select(Study).where(Study.name == name))
        if existing is not None:
            if existing.content_hash == tables.content_hash and not replace:
                n = s.query(Rating).filter(Rating.study_id == existing.id).count()
                return ImportSummary(name, "unchanged", n, len(tables.participants), r["image_id"].nunique())
            if not replace:
                raise DataError(f"study {name!r} already exists with different data; use --replace to overwrite it")
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
    return ImportSummary(name, status, len(r), len(parts), len(i_rows))


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
