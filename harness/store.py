"""The results store: SQLAlchemy 2 models, Alembic migrations, SQLite by default, any URL by ``--db``.

Tables (DESIGN.md): ``run`` (one per ``harness run``: generator, checkpoint hash, data, n, seed, config,
versions, git SHA, timestamps), ``result`` (one per metric: value, CI, feature space, details) and
``artifact`` (galleries, plots). The schema is created and upgraded only by Alembic migrations
(``harness/migrations``), never by ``create_all``, so SQLite and PostgreSQL databases evolve the same way.

URL resolution: explicit ``--db`` → ``ECHOBENCH_DB`` → ``sqlite:///echobench.db`` in the working directory.
A bare path (no ``://``) means a SQLite file.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from harness.errors import StoreError, UsageError

log = logging.getLogger(__name__)
DEFAULT_DB = "sqlite:///echobench.db"
#: A ``running`` row of another host without a heartbeat for this long is taken as interrupted.
STALE_AFTER_S = float(os.environ.get("ECHOBENCH_STALE_AFTER_S", 6 * 3600))


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def run_is_stale(run: Run, *, here: str | None = None, now: dt.datetime | None = None,
                 stale_after: float = STALE_AFTER_S) -> bool:
    """Whether a ``running`` row belongs to a process that is gone (see :meth:`Store.reap_stale_runs`)."""
    if run.status != "running":
        return False
    here = here if here is not None else socket.gethostname()[:255]
    if run.pid is not None and run.host == here:
        return not pid_alive(run.pid)
    last = run.heartbeat_at or run.started_at
    if last is None:
        return True
    if last.tzinfo is None:  # SQLite returns naive datetimes; they were written in UTC
        last = last.replace(tzinfo=dt.timezone.utc)
    return ((now or _now()) - last).total_seconds() > stale_after


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class Run(Base):
    __tablename__ = "run"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    generator: Mapped[str] = mapped_column(String(200), index=True)
    checkpoint_hash: Mapped[str | None] = mapped_column(String(64))
    data_source: Mapped[str] = mapped_column(String(500))
    reference: Mapped[str | None] = mapped_column(String(500))
    n: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    feature_space: Mapped[str | None] = mapped_column(String(100))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    git_sha: Mapped[str | None] = mapped_column(String(64))
    imageset_path: Mapped[str | None] = mapped_column(Text)
    imageset_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="running")
    origin: Mapped[str] = mapped_column(String(20), default="local")
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # who runs it, to tell a live run from one that was killed (SIGKILL, power loss): see Store.reap_stale_runs
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    results: Mapped[list[Result]] = relationship(back_populates="run", cascade="all, delete-orphan")
    artifacts: Mapped[list[Artifact]] = relationship(back_populates="run", cascade="all, delete-orphan")


class Result(Base):
    __tablename__ = "result"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(100))
    task_version: Mapped[str | None] = mapped_column(String(20))
    metric: Mapped[str] = mapped_column(String(100))
    value: Mapped[float | None] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int | None] = mapped_column(Integer)
    feature_space: Mapped[str | None] = mapped_column(String(100))
    higher_is_better: Mapped[bool] = mapped_column(Boolean, default=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    run: Mapped[Run] = relationship(back_populates="results")


class Artifact(Base):
    __tablename__ = "artifact"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(100))
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    run: Mapped[Run] = relationship(back_populates="artifacts")


# Human evaluation (FORMATS.md): studies, participants, images and their ratings. --------------------


# SQLite AUTOINCREMENT on every human-evaluation table: an id, once used, is never handed out again (without it
# SQLite reuses the highest freed id, and a rater still signed in to a replaced study could reach a new row).
_NO_ID_REUSE = {"sqlite_autoincrement": True}


class Study(Base):
    __tablename__ = "study"
    __table_args__ = (_NO_ID_REUSE,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    origin: Mapped[str] = mapped_column(String(20), default="import")  # import | app
    content_hash: Mapped[str | None] = mapped_column(String(64))  # of the imported files (idempotent import)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # design, scale, synthetic flag, ...
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Participant(Base):
    __tablename__ = "participant"
    __table_args__ = (UniqueConstraint("study_id", "participant_id", name="uq_participant_study_pid"), _NO_ID_REUSE)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    participant_id: Mapped[str] = mapped_column(String(200))
    experience_years: Mapped[float | None] = mapped_column(Float)
    weekly_readings: Mapped[float | None] = mapped_column(Float)
    specialty: Mapped[str | None] = mapped_column(String(200))
    age: Mapped[float | None] = mapped_column(Float)
    sex: Mapped[str | None] = mapped_column(String(50))
    language: Mapped[str | None] = mapped_column(String(50))
    token_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # consent, pre/post questionnaires
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class StudyImage(Base):
    __tablename__ = "image"
    __table_args__ = (UniqueConstraint("study_id", "image_id", name="uq_image_study_iid"), _NO_ID_REUSE)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[str] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(String(100))
    path: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(36))  # the image set's run, when known


class AnswerColumns:
    """What a rater answers for one image: the Likert rating, the five artifact check-boxes, a comment."""

    rating: Mapped[int] = mapped_column(Integer)
    walls_not_visible: Mapped[bool] = mapped_column(Boolean, default=False)
    unnatural_artifacts: Mapped[bool] = mapped_column(Boolean, default=False)
    possible_pathology: Mapped[bool] = mapped_column(Boolean, default=False)
    cropped_image: Mapped[bool] = mapped_column(Boolean, default=False)
    wall_destruction: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str | None] = mapped_column(Text)


class Rating(AnswerColumns, Base):
    __tablename__ = "rating"
    __table_args__ = (UniqueConstraint("participant_pk", "image_pk", name="uq_rating_participant_image"), _NO_ID_REUSE)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    participant_pk: Mapped[int] = mapped_column(ForeignKey("participant.id", ondelete="CASCADE"))
    image_pk: Mapped[int] = mapped_column(ForeignKey("image.id", ondelete="CASCADE"))
    position: Mapped[int | None] = mapped_column(Integer)
    rated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revision: Mapped[int] = mapped_column(Integer, default=1)  # > 1: the rater went back and changed it
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class RatingRevision(AnswerColumns, Base):
    """Every answer a rater saved in the rating app for an image (revision 1, 2, ...): going back and changing
    an answer never loses the earlier one. ``rating`` holds the current answer; this table its history."""

    __tablename__ = "rating_revision"
    __table_args__ = (UniqueConstraint("rating_id", "revision", name="uq_rating_revision"), _NO_ID_REUSE)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rating_id: Mapped[int] = mapped_column(ForeignKey("rating.id", ondelete="CASCADE"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    saved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


# ------------------------------------------------------------------------------------------------


def resolve_url(db: str | None = None) -> str:
    """``--db`` value or ``ECHOBENCH_DB`` or the default; a bare path becomes a SQLite URL."""
    value = db or os.environ.get("ECHOBENCH_DB") or DEFAULT_DB
    if "://" not in value:
        value = f"sqlite:///{Path(value).expanduser()}"
    try:
        make_url(value)
    except ArgumentError as exc:
        raise UsageError(f"invalid database URL {value!r}: {exc}") from exc
    return value


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.close()


class Store:
    """A connection to the results database (migrated to the latest schema on open)."""

    def __init__(self, db: str | None = None, *, migrate: bool = True):
        self.url = resolve_url(db)
        is_sqlite = self.url.startswith("sqlite")
        if is_sqlite:
            path = make_url(self.url).database
            if path and path != ":memory:":
                parent = Path(path).expanduser().resolve().parent
                if not parent.is_dir():
                    raise StoreError(f"cannot open database {_safe(self.url)}: folder {parent} does not exist")
        kwargs: dict[str, Any] = {"future": True}
        if not is_sqlite:
            kwargs["pool_pre_ping"] = True
            kwargs["connect_args"] = {"connect_timeout": 10}
        try:
            self.engine: Engine = create_engine(self.url, **kwargs)
        except (ImportError, NoSuchModuleError) as exc:
            backend = make_url(self.url).get_backend_name()
            raise StoreError(
                f"cannot open {_safe(self.url)}: the {backend} database driver is not installed ({exc}). EchoBench is "
                "tested with SQLite (default) and PostgreSQL (pip install 'psycopg[binary]'); for another database "
                "install its SQLAlchemy driver") from None
        if is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            with self.engine.connect():
                pass
        except (OperationalError, SQLAlchemyError) as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(
                f"cannot connect to the results database {_safe(self.url)}: {reason}. "
                "Check --db / ECHOBENCH_DB (e.g. sqlite:///echobench.db or postgresql+psycopg://user@host/db)."
            ) from exc
        if migrate:
            self.upgrade()

    def upgrade(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to ``revision``."""
        from alembic import command

        try:
            command.upgrade(alembic_config(self.engine), revision)
        except (OperationalError, SQLAlchemyError) as exc:
            raise StoreError(f"cannot migrate the results database {_safe(self.url)}: {getattr(exc, 'orig', exc)}") from exc

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # writing -------------------------------------------------------------------------------------
    def start_run(self, **fields: Any) -> str:
        """Add a ``running`` run row; it records this process (pid, host) and a first heartbeat."""
        now = _now()
        fields.setdefault("pid", os.getpid())
        fields.setdefault("host", socket.gethostname()[:255])
        fields.setdefault("heartbeat_at", now)
        run = Run(**fields)
        with self.session() as s, s.begin():
            s.add(run)
        return run.id

    def heartbeat(self, run_id: str) -> None:
        """Say that run ``run_id`` is alive (call every few minutes during long stages)."""
        with self.session() as s, s.begin():
            run = s.get(Run, run_id)
            if run is not None and run.status == "running":
                run.heartbeat_at = _now()

    def resume_run(self, run_id: str) -> None:
        """Take over an ``interrupted`` (or stale ``running``) run row: it is ``running`` again, in this process."""
        with self.session() as s, s.begin():
            run = s.get(Run, run_id)
            if run is None:
                raise StoreError(f"run {run_id} is not in {_safe(self.url)}")
            run.status, run.finished_at = "running", None
            run.pid, run.host, run.heartbeat_at = os.getpid(), socket.gethostname()[:255], _now()

    def reap_stale_runs(self, *, stale_after: float = STALE_AFTER_S) -> list[str]:
        """Mark ``running`` rows whose process is gone as ``interrupted``; return their ids.

        Gone: on this host, its pid no longer exists (SIGKILL, crash, reboot); on another host (or a row without
        a pid), no heartbeat (or start) for ``stale_after`` seconds. Their image sets resume on a re-run.
        """
        here = socket.gethostname()[:255]
        now = _now()
        stale: list[str] = []
        with self.session() as s, s.begin():
            for run in s.scalars(select(Run).where(Run.status == "running")):
                if run_is_stale(run, here=here, now=now, stale_after=stale_after):
                    run.status = "interrupted"
                    run.provenance = {**(run.provenance or {}), "interrupted": "its process is gone (killed or crashed)"}
                    stale.append(run.id)
        if stale:
            log.info("%d run(s) whose process is gone are marked interrupted: %s", len(stale), ", ".join(stale))
        return stale

    def finish_run(self, run_id: str, results: Iterable[dict], artifacts: Iterable[dict] = (), status: str = "ok",
                   imageset_hash: str | None = None) -> None:
        """Write all results and artifacts of a run and mark it finished, in one transaction."""
        with self.session() as s, s.begin():
            run = s.get(Run, run_id)
            if run is None:
                raise StoreError(f"run {run_id} is not in {_safe(self.url)}")
            if imageset_hash is not None:
                run.imageset_hash = imageset_hash
            for r in results:
                s.add(Result(run_id=run_id, **r))
            for a in artifacts:
                s.add(Artifact(run_id=run_id, **a))
            run.status = status
            run.finished_at = _now()

    def mark_failed(self, run_id: str, reason: str, *, status: str = "failed") -> None:
        with self.session() as s, s.begin():
            run = s.get(Run, run_id)
            if run is not None:
                run.status = status
                run.finished_at = _now()
                run.provenance = {**(run.provenance or {}), "error" if status == "failed" else "interrupted": reason[:2000]}

    def mark_interrupted(self, run_id: str, reason: str) -> None:
        """The run stopped on purpose (Ctrl-C): ``interrupted``; a re-run of the same request takes the row over."""
        self.mark_failed(run_id, reason, status="interrupted")

    # reading -------------------------------------------------------------------------------------
    def runs(self) -> list[Run]:
        """Every run, oldest first (``running`` rows of killed processes are reported ``interrupted``)."""
        self.reap_stale_runs()
        with self.session() as s:
            return list(s.scalars(select(Run).order_by(Run.started_at)))

    def results_frame(self):
        """One row per result joined with its run (the ``harness export`` columns)."""
        import pandas as pd

        stmt = (
            select(
                Run.id.label("run_id"),
                Run.generator,
                Run.checkpoint_hash,
                Run.data_source.label("data"),
                Run.reference,
                Run.n.label("run_n"),
                Run.seed,
                Run.origin,
                Run.git_sha,
                Result.task,
                Result.task_version,
                Result.metric,
                Result.value,
                Result.ci_low,
                Result.ci_high,
                Result.n,
                Result.feature_space,
                Result.higher_is_better,
                Result.created_at.label("created"),
            )
            .join(Result, Result.run_id == Run.id)
            .order_by(Result.created_at, Result.id)
        )
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(stmt).mappings().all())


def alembic_config(engine: Engine):
    """An Alembic Config pointing at the packaged migrations, bound to ``engine``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg
