"""Data access and shaping for the leaderboard: pure pandas, unit-testable without Streamlit.

Everything here reads the results store (never writes): :func:`connect` opens it read-only,
:func:`load_results` reads one row per stored metric (with the substitute flag, baseline and stand-in
status learned from what each run stored), and the ``run_*`` helpers fetch what the generator detail view
shows; :mod:`leaderboard.table` pivots the results into the leaderboard. Human-evaluation tables are optional: :func:`load_study`
returns ``None`` until a study has been imported.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, String, create_engine, func, inspect, select, type_coerce
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from harness.errors import EchoBenchError, StoreError
from harness.io import IMAGE_SUFFIXES
from harness.store import Artifact, Result, Run, resolve_url

log = logging.getLogger(__name__)

NO_CHECKPOINT = "—"


# ------------------------------------------------------------------------------------------ connection
def readonly_url(url: str) -> str:
    """The URL to open ``url`` read-only: SQLite files through a ``mode=ro`` URI; other URLs unchanged
    (:func:`connect` makes PostgreSQL sessions read-only)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return url
    path = Path(u.database).expanduser().resolve()
    return f"sqlite:///file:{path.as_posix()}?mode=ro&uri=true"


def sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database).expanduser()


def connect(db: str | None = None) -> Engine | None:
    """Open the results database read-only; ``None`` when a SQLite file does not exist yet (first run).

    Raises
    ------
    StoreError
        The database exists but cannot be opened (bad server, not a database file, ...).
    """
    url = resolve_url(db)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return None
    kwargs: dict[str, Any] = {}
    if make_url(url).get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on", "connect_timeout": 10}
    engine = create_engine(readonly_url(url), **kwargs)
    try:
        with engine.connect() as conn:
            inspect(conn).get_table_names()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        safe = make_url(url).render_as_string(hide_password=True)
        raise StoreError(f"cannot open the results database {safe} read-only: {reason}. "
                         "Check --db / ECHOBENCH_DB.") from exc
    return engine


def table_names(engine: Engine | None) -> set[str]:
    if engine is None:
        return set()
    with engine.connect() as conn:
        return set(inspect(conn).get_table_names())


# ------------------------------------------------------------------------------------------ results
RESULT_COLUMNS = ["run_id", "generator", "checkpoint", "data", "run_n", "seed", "started_at", "task", "metric",
                  "value", "ci_low", "ci_high", "n", "feature_space", "higher_is_better", "substitute", "baseline",
                  "stand_in", "imageset_path", "order"]


def substitute_column(conn) -> ColumnElement:
    """The ONE place the leaderboard learns whether a result was computed in a stand-in feature space: the flag
    the runner's record stage stores in every result's ``details`` (``substitute_features``; results stored before
    it carry the task's ``substitute`` message). Never guessed from a feature-space name. Read the selected value
    with :func:`is_true`."""
    return func.coalesce(Result.details["substitute_features"].as_string(), Result.details["substitute"].as_string())


def is_true(stored: Any) -> bool:
    """A stored flag (``substitute_column``'s value) as a bool: absent, 0 and false are False."""
    if stored is None or (isinstance(stored, float) and np.isnan(stored)):
        return False
    return str(stored).strip().lower() not in ("", "0", "false", "none", "null")


@functools.lru_cache(maxsize=256)
def _generator_class(name: str) -> type | None:
    """The registered generator class (lazy: baselines and adapters import torch only when sampling), or
    ``None`` for one this installation does not know (a run made elsewhere)."""
    from harness.registry import generators

    try:
        return generators.get(name)
    except EchoBenchError:
        return None


def generator_role(generator: str, config: dict | None) -> tuple[str | None, str | None]:
    """``(baseline, stand_in)`` of a run, learned from what the run stored: the generator description in its
    config (``config["generator"]``, what :meth:`generators.base.Generator.describe` returned: ``baseline``,
    ``stand_in``). Runs stored before these keys were recorded ask the registered class (its ``baseline``;
    its :meth:`~generators.base.Generator.stand_in` on the stored description), importing its module."""
    desc = (config or {}).get("generator") if isinstance(config, dict) else None
    desc = desc if isinstance(desc, dict) else {}
    if "baseline" in desc and "stand_in" in desc:  # recorded: nothing to import
        return (str(desc["baseline"]) if desc["baseline"] else None), (str(desc["stand_in"]) if desc["stand_in"] else None)
    cls = _generator_class(generator)
    baseline = desc["baseline"] if "baseline" in desc else getattr(cls, "baseline", None)
    stand_in = desc.get("stand_in")
    if "stand_in" not in desc and cls is not None and hasattr(cls, "stand_in"):
        try:
            stand_in = cls.stand_in(desc)
        except Exception:  # a plug-in's hook must not break the page  # noqa: BLE001
            log.warning("generator %r: stand_in() failed on the stored description", generator, exc_info=True)
    return (str(baseline) if baseline else None), (str(stand_in) if stand_in else None)


def load_results(engine: Engine | None) -> pd.DataFrame:
    """One row per stored metric of a finished run (columns :data:`RESULT_COLUMNS`; ``order`` is the
    result's insertion order, so the last row of a group is the newest); empty when none.

    ``substitute`` (stand-in feature space) comes from :func:`substitute_column`; ``baseline`` and
    ``stand_in`` from :func:`generator_role`. Two plain queries (runs, results) joined in pandas; timestamps
    are parsed once, vectorised (SQLite stores them as text), which keeps 20,000 results well under a second.
    """
    if engine is None or not {"run", "result"} <= table_names(engine):
        return pd.DataFrame(columns=RESULT_COLUMNS)
    run_cols = [Run.id, Run.generator, Run.checkpoint_hash, Run.data_source, Run.n, Run.seed,
                type_coerce(Run.started_at, String), Run.imageset_path, Run.config]
    with engine.connect() as conn:
        res_cols = [Result.run_id, Result.task, Result.metric, Result.value, Result.ci_low, Result.ci_high, Result.n,
                    Result.feature_space, Result.higher_is_better, substitute_column(conn), Result.id]
        runs = pd.DataFrame.from_records([tuple(r) for r in conn.execute(select(*run_cols).where(Run.status == "ok"))],
                                         columns=["run_id", "generator", "checkpoint", "data", "run_n", "seed",
                                                  "started_at", "imageset_path", "config"])
        res = pd.DataFrame.from_records([tuple(r) for r in conn.execute(select(*res_cols))],
                                        columns=["run_id", "task", "metric", "value", "ci_low", "ci_high", "n",
                                                 "feature_space", "higher_is_better", "substitute", "order"])
    roles = [generator_role(g, c) for g, c in zip(runs["generator"], runs["config"])]
    runs["baseline"] = [b for b, _ in roles]
    runs["stand_in"] = [s for _, s in roles]
    runs = runs.drop(columns="config")
    frame = runs.merge(res, on="run_id", how="inner").sort_values("order", kind="stable").reset_index(drop=True)
    frame["checkpoint"] = frame["checkpoint"].fillna(NO_CHECKPOINT)
    frame["feature_space"] = frame["feature_space"].fillna("none")
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True, format="mixed")
    frame["higher_is_better"] = frame["higher_is_better"].astype(bool)
    frame["substitute"] = [is_true(v) for v in frame["substitute"]]
    for col in ("value", "ci_low", "ci_high"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    for col in ("baseline", "stand_in", "imageset_path"):
        frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame[RESULT_COLUMNS]


# ------------------------------------------------------------------------------------------ detail view
def runs_of(results: pd.DataFrame, generator: str, checkpoint: str) -> list[str]:
    """Run ids of one leaderboard row, newest first."""
    sel = results[(results["generator"] == generator) & (results["checkpoint"] == checkpoint)]
    return list(sel.sort_values("started_at", ascending=False)["run_id"].drop_duplicates())


def run_record(engine: Engine, run_id: str) -> dict[str, Any]:
    """Every column of one ``run`` row (config, versions, seed, git SHA, ...)."""
    with engine.connect() as conn:
        row = conn.execute(select(Run.__table__).where(Run.id == run_id)).mappings().first()
    if row is None:
        raise StoreError(f"run {run_id} is not in the database")
    return dict(row)


def run_results(engine: Engine, run_id: str) -> pd.DataFrame:
    """The run's results with their details JSON."""
    names = ["task", "metric", "value", "ci_low", "ci_high", "n", "feature_space", "higher_is_better", "substitute",
             "details"]
    with engine.connect() as conn:
        cols = [Result.task, Result.metric, Result.value, Result.ci_low, Result.ci_high, Result.n, Result.feature_space,
                Result.higher_is_better, substitute_column(conn), Result.details]
        rows = conn.execute(select(*cols).where(Result.run_id == run_id).order_by(Result.id)).all()
    frame = pd.DataFrame(rows, columns=names)
    frame["substitute"] = [is_true(v) for v in frame["substitute"]]
    # results without a feature space (e.g. colour shift) keep None, not the NaN pandas turns it into
    frame["feature_space"] = frame["feature_space"].astype(object).where(frame["feature_space"].notna(), None)
    return frame


def run_artifacts(engine: Engine, run_id: str) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(select(Artifact.kind, Artifact.path).where(Artifact.run_id == run_id)
                            .order_by(Artifact.id)).all()
    return pd.DataFrame(rows, columns=["kind", "path"])


def image_files(path: str | Path | None) -> list[Path]:
    """Image files of an artifact: the file itself, or the images in the folder (sorted); [] if missing."""
    if not path:
        return []
    p = Path(path)
    if p.is_file():
        return [p] if p.suffix.lower() in IMAGE_SUFFIXES else []
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    return []


def sample_images(imageset_path: str | None, k: int = 12) -> list[Path]:
    """The first ``k`` images of a run's image set (``<set>/images/*.png``)."""
    if not imageset_path:
        return []
    return image_files(Path(imageset_path) / "images")[:k]


def artifact_groups(artifacts: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split artifacts into colour-shift, memorisation, diversity and other (by their kind)."""
    kind = artifacts["kind"].str.lower()
    groups = {
        "color_shift": kind.str.contains("colo"),
        "memorization": kind.str.contains("memor") | kind.str.contains("copy") | kind.str.contains("pair"),
        "diversity": kind.str.contains("divers") | kind.str.contains("vendi"),
    }
    out, used = {}, pd.Series(False, index=artifacts.index)
    for name, m in groups.items():
        m = m & ~used
        out[name] = artifacts[m]
        used |= m
    out["other"] = artifacts[~used]
    return out


def fid_inf_fit(details: dict | None) -> dict | None:
    """The FID∞ fit stored in a result's details: ``points`` (1/N, FID_N), intercept ``a`` and slope ``k``;
    ``None`` when the details do not carry it."""
    if not isinstance(details, dict):
        return None
    pts, a, k = details.get("points"), details.get("a"), details.get("k")
    if not pts or a is None or k is None:
        return None
    arr = np.asarray(pts, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2:
        return None
    return {"points": pd.DataFrame(arr, columns=["inv_n", "fid_n"]), "a": float(a), "k": float(k),
            "se_a": details.get("se_a"), "rms_residual": details.get("rms_residual")}


# ------------------------------------------------------------------------------------------ human evaluation
FLAG_COLUMNS = ("walls_not_visible", "unnatural_artifacts", "possible_pathology", "cropped_image", "wall_destruction")
PARTICIPANT_FIELDS = ("experience_years", "weekly_readings", "specialty", "age", "sex", "language")
HUMAN_TABLES = {"study", "participant", "image", "rating"}


@dataclass
class StudyData:
    """One human-evaluation study: long-format ``ratings`` (participant_id, image_id, source, rating, the
    artifact flags), ``participants`` and ``images`` (image_id, source, path, run_id)."""

    name: str
    ratings: pd.DataFrame
    participants: pd.DataFrame
    images: pd.DataFrame
    scale: tuple[int, int] = (1, 5)
    synthetic: bool = False
    per_image: pd.DataFrame | None = None  # metric, image, value saved by `harness human agreement`


def list_studies(engine: Engine | None) -> list[str]:
    """Names of the stored studies (oldest first); [] when the human-evaluation tables are absent."""
    from harness.store import Study

    if not HUMAN_TABLES <= table_names(engine):
        return []
    with engine.connect() as conn:
        return list(conn.execute(select(Study.name).order_by(Study.created_at, Study.id)).scalars())


def load_study(engine: Engine | None, name: str | None = None) -> StudyData | None:
    """The study ``name`` (default: the newest) with at least one rating, or ``None`` when there is none."""
    from harness.store import Participant, Rating, Study, StudyImage

    names = list_studies(engine)
    if not names:
        return None
    name = name if name in names else names[-1]
    with engine.connect() as conn:
        study = conn.execute(select(Study.id, Study.config).where(Study.name == name)).first()
        stmt = (
            select(Participant.participant_id, StudyImage.image_id, StudyImage.source, Rating.rating,
                   *[getattr(Rating, f) for f in FLAG_COLUMNS])
            .join(Participant, Participant.id == Rating.participant_pk)
            .join(StudyImage, StudyImage.id == Rating.image_pk)
            .where(Rating.study_id == study.id).order_by(Rating.id)
        )
        ratings = pd.DataFrame(conn.execute(stmt).all(), columns=["participant_id", "image_id", "source", "rating",
                                                                  *FLAG_COLUMNS])
        pcols = [Participant.participant_id, *[getattr(Participant, f) for f in PARTICIPANT_FIELDS]]
        participants = pd.DataFrame(conn.execute(select(*pcols).where(Participant.study_id == study.id)).all(),
                                    columns=[c.key for c in pcols])
        icols = [StudyImage.image_id, StudyImage.source, StudyImage.path, StudyImage.run_id]
        images = pd.DataFrame(conn.execute(select(*icols).where(StudyImage.study_id == study.id)).all(),
                              columns=[c.key for c in icols])
    if ratings.empty:
        return None
    ratings["rating"] = ratings["rating"].astype("int64")
    for f in FLAG_COLUMNS:
        ratings[f] = ratings[f].fillna(False).astype(bool)
    for f in ("experience_years", "weekly_readings", "age"):
        participants[f] = pd.to_numeric(participants[f], errors="coerce")
    config = study.config or {}
    scale = tuple(config.get("scale", (1, 5)))
    saved = (config.get("per_image_metrics") or {}).get("rows") or []
    per_image = pd.DataFrame(saved, columns=["metric", "image", "value"]).dropna(subset=["value"])
    return StudyData(name, ratings, participants, images, (int(scale[0]), int(scale[1])),
                     bool(config.get("synthetic", False)), per_image)


def source_name(generator: str) -> str:
    """The human-evaluation source name of a generator (``sd-lora`` → ``sd``), via the study alias table."""
    try:
        from human_eval.schema import canonical_source
    except ImportError:
        return generator.lower()
    return canonical_source(generator)


def per_image_metrics(engine: Engine | None) -> pd.DataFrame:
    """Per-image metric values stored by tasks in ``details["per_image"]`` (a mapping image → value, or a list
    of ``{"image"|"file"|"image_id": ..., "value": ...}``). Returns ``metric, feature_space, generator, image,
    value``; empty when no task stored any."""
    cols = ["metric", "feature_space", "generator", "image", "value"]
    if engine is None or not {"run", "result"} <= table_names(engine):
        return pd.DataFrame(columns=cols)
    stmt = (select(Result.metric, Result.feature_space, Run.generator, Result.details)
            .join(Run, Run.id == Result.run_id).where(Run.status == "ok"))
    rows = []
    with engine.connect() as conn:
        for metric, space, gen, details in conn.execute(stmt):
            per = details.get("per_image") if isinstance(details, dict) else None
            if isinstance(per, dict):
                items = per.items()
            elif isinstance(per, list):
                items = [(d.get("image") or d.get("file") or d.get("image_id"), d.get("value"))
                         for d in per if isinstance(d, dict)]
            else:
                continue
            rows += [(metric, space, gen, str(k).replace("\\", "/").rsplit("/", 1)[-1], v)
                     for k, v in items if k is not None and v is not None]
    return pd.DataFrame(rows, columns=cols)
