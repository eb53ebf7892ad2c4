"""Data access and shaping for the leaderboard: pure pandas, unit-testable without Streamlit.

Everything here reads the results store (never writes): :func:`connect` opens it read-only,
:func:`load_results` reads one row per stored metric, :func:`main_table` pivots them into the leaderboard
(one row per (generator, checkpoint), one column per (metric, feature space)), and the ``run_*`` helpers
fetch what the generator detail view shows. Human-evaluation tables are optional: :func:`load_study`
returns ``None`` until a study has been imported.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import String, create_engine, inspect, select, type_coerce
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from harness.errors import StoreError
from harness.store import Artifact, Result, Run, resolve_url

log = logging.getLogger(__name__)

#: Feature spaces that are stand-ins (random-init networks): their numbers carry a visible "substitute" label.
SUBSTITUTE_SPACES = frozenset({"random-inception"})
NO_CHECKPOINT = "—"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


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
                  "value", "ci_low", "ci_high", "n", "feature_space", "higher_is_better", "order"]


def load_results(engine: Engine | None) -> pd.DataFrame:
    """One row per stored metric of a finished run (columns :data:`RESULT_COLUMNS`; ``order`` is the
    result's insertion order, so the last row of a group is the newest); empty when none.

    Two plain queries (runs, results) joined in pandas; timestamps are parsed once, vectorised (SQLite stores
    them as text), which keeps 20,000 results well under a second.
    """
    if engine is None or not {"run", "result"} <= table_names(engine):
        return pd.DataFrame(columns=RESULT_COLUMNS)
    run_cols = [Run.id, Run.generator, Run.checkpoint_hash, Run.data_source, Run.n, Run.seed,
                type_coerce(Run.started_at, String)]
    res_cols = [Result.run_id, Result.task, Result.metric, Result.value, Result.ci_low, Result.ci_high, Result.n,
                Result.feature_space, Result.higher_is_better, Result.id]
    with engine.connect() as conn:
        runs = pd.DataFrame.from_records([tuple(r) for r in conn.execute(select(*run_cols).where(Run.status == "ok"))],
                                         columns=["run_id", "generator", "checkpoint", "data", "run_n", "seed",
                                                  "started_at"])
        res = pd.DataFrame.from_records([tuple(r) for r in conn.execute(select(*res_cols))],
                                        columns=["run_id", "task", "metric", "value", "ci_low", "ci_high", "n",
                                                 "feature_space", "higher_is_better", "order"])
    frame = runs.merge(res, on="run_id", how="inner").sort_values("order", kind="stable").reset_index(drop=True)
    frame["checkpoint"] = frame["checkpoint"].fillna(NO_CHECKPOINT)
    frame["feature_space"] = frame["feature_space"].fillna("none")
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True, format="mixed")
    frame["higher_is_better"] = frame["higher_is_better"].astype(bool)
    for col in ("value", "ci_low", "ci_high"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame[RESULT_COLUMNS]


def is_substitute(feature_space: str | None) -> bool:
    return isinstance(feature_space, str) and (feature_space in SUBSTITUTE_SPACES or feature_space.startswith("random"))


def metric_name(metric: str, feature_space: str | None) -> str:
    """The metric's name, never calling a non-Inception number FID (``FID…`` becomes ``FD_<space>…``)."""
    if metric.startswith("FID") and feature_space not in (None, "inception"):
        return f"FD_{feature_space}{metric[3:]}"
    return metric


def metric_header(metric: str, feature_space: str | None, higher_is_better: bool) -> str:
    """Column header: metric name, arrow (↑ higher / ↓ lower is better), feature space, substitute label."""
    arrow = "↑" if higher_is_better else "↓"
    space = feature_space or "none"
    label = f"{space}, SUBSTITUTE" if is_substitute(feature_space) else space
    return f"{metric_name(metric, feature_space)} {arrow} [{label}]"


@dataclass(frozen=True)
class Filters:
    """Which results enter the table; ``None`` means no restriction."""

    data: Sequence[str] | None = None
    feature_space: Sequence[str] | None = None
    n: tuple[int, int] | None = None  # inclusive range of the run's N
    dates: tuple[dt.date, dt.date] | None = None  # inclusive range of the run's start date (UTC)


def apply_filters(results: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    keep = np.ones(len(results), dtype=bool)
    if filters.data is not None:
        keep &= results["data"].isin(list(filters.data)).to_numpy()
    if filters.feature_space is not None:
        keep &= results["feature_space"].isin(list(filters.feature_space)).to_numpy()
    if filters.n is not None:
        keep &= results["run_n"].between(filters.n[0], filters.n[1]).to_numpy()
    if filters.dates is not None:
        day = results["started_at"].dt.date
        keep &= ((day >= filters.dates[0]) & (day <= filters.dates[1])).to_numpy()
    return results[keep]


@dataclass(frozen=True)
class Column:
    header: str
    metric: str
    feature_space: str
    higher_is_better: bool
    substitute: bool


@dataclass
class Table:
    """The leaderboard: ``value``/``ci_low``/``ci_high`` share the index (generator, checkpoint) and the
    metric headers; ``info`` has the row's latest run (run_id, data, N, started, runs); ``best`` marks the
    best value of each column (ties included)."""

    value: pd.DataFrame
    ci_low: pd.DataFrame
    ci_high: pd.DataFrame
    info: pd.DataFrame
    columns: list[Column] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.value.empty

    @property
    def best(self) -> pd.DataFrame:
        return best_mask(self.value, {c.header: c.higher_is_better for c in self.columns})

    def display(self, star_best: bool = True) -> pd.DataFrame:
        """Formatted strings ``value [ci_low, ci_high]`` per cell (the best of each column prefixed with ★),
        with the row info columns in front."""
        best = self.best
        cells = {c.header: [("★ " if b and star_best else "") + format_cell(v, lo, hi) for v, lo, hi, b in
                            zip(self.value[c.header], self.ci_low[c.header], self.ci_high[c.header], best[c.header])]
                 for c in self.columns}
        out = pd.DataFrame(cells, index=self.value.index)
        return pd.concat([self.info[["data", "N", "started", "runs"]], out], axis=1).reset_index()

    def to_csv(self) -> bytes:
        """Numbers, not strings: per metric the value and CI columns, plus the row info."""
        parts = [self.info]
        for c in self.columns:
            parts.append(pd.DataFrame({c.header: self.value[c.header], f"{c.header} ci_low": self.ci_low[c.header],
                                       f"{c.header} ci_high": self.ci_high[c.header]}))
        return pd.concat(parts, axis=1).reset_index().to_csv(index=False).encode("utf-8")


def format_number(x: float | None) -> str:
    if x is None or not np.isfinite(x):
        return "—"
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.3e}"


def format_cell(value: float, lo: float, hi: float) -> str:
    if value is None or not np.isfinite(value):
        return ""
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return format_number(value)
    return f"{format_number(value)} [{format_number(lo)}, {format_number(hi)}]"


def best_mask(values: pd.DataFrame, higher: dict[str, bool]) -> pd.DataFrame:
    """True where a cell equals its column's best (max if higher is better, else min); NaN never best."""
    mask = pd.DataFrame(False, index=values.index, columns=values.columns)
    for col in values.columns:
        x = values[col].astype(float)
        if x.notna().any():
            target = x.max() if higher.get(col, False) else x.min()
            mask[col] = np.isclose(x.to_numpy(), target, rtol=1e-12, atol=0.0) & x.notna().to_numpy()
    return mask


def main_table(results: pd.DataFrame, filters: Filters = Filters()) -> Table:
    """Pivot results into the leaderboard: for each (generator, checkpoint) and (metric, feature space), the
    latest stored value passing ``filters``. Rows are sorted by the first distance column (best first)."""
    res = apply_filters(results, filters)
    index = pd.MultiIndex.from_arrays([[], []], names=["generator", "checkpoint"])
    if res.empty:
        empty = pd.DataFrame(index=index)
        return Table(empty, empty, empty, pd.DataFrame(index=index, columns=["run_id", "data", "N", "started", "runs"]))
    res = res.assign(metric_label=[metric_name(m, s) for m, s in zip(res["metric"], res["feature_space"])])
    latest = res.drop_duplicates(["generator", "checkpoint", "metric_label", "feature_space"], keep="last")
    latest = latest.assign(header=[metric_header(m, s, bool(h)) for m, s, h in
                                   zip(latest["metric"], latest["feature_space"], latest["higher_is_better"])])
    keys = ["generator", "checkpoint"]
    wide = latest.pivot(index=keys, columns="header", values=["value", "ci_low", "ci_high"])
    value, ci_low, ci_high = wide["value"], wide["ci_low"], wide["ci_high"]
    meta = latest.drop_duplicates("header").set_index("header")
    columns = [Column(h, meta.at[h, "metric_label"], meta.at[h, "feature_space"], bool(meta.at[h, "higher_is_better"]),
                      is_substitute(meta.at[h, "feature_space"])) for h in _column_order(meta)]
    order = [c.header for c in columns]
    last_run = res.sort_values("order").groupby(keys, sort=False).tail(1).set_index(keys)
    info = pd.DataFrame({
        "run_id": last_run["run_id"], "data": last_run["data"], "N": last_run["run_n"],
        "started": last_run["started_at"].dt.strftime("%Y-%m-%d %H:%M"),
        "runs": res.groupby(keys)["run_id"].nunique(),
    }).reindex(value.index)
    value, ci_low, ci_high = value[order], ci_low[order], ci_high[order]
    sort_col = next((c.header for c in columns if not c.higher_is_better), order[0])
    rows = value[sort_col].sort_values(ascending=not _col(columns, sort_col).higher_is_better, na_position="last").index
    return Table(value.loc[rows], ci_low.loc[rows], ci_high.loc[rows], info.loc[rows], columns)


def _col(columns: list[Column], header: str) -> Column:
    return next(c for c in columns if c.header == header)


def _column_order(meta: pd.DataFrame) -> list[str]:
    """Real feature spaces before substitutes; Inception first; then by metric name."""
    def key(h: str):
        space = meta.at[h, "feature_space"]
        return (is_substitute(space), space != "inception", space, meta.at[h, "metric_label"])

    return sorted(meta.index, key=key)


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
    cols = [Result.task, Result.metric, Result.value, Result.ci_low, Result.ci_high, Result.n, Result.feature_space,
            Result.higher_is_better, Result.details]
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).where(Result.run_id == run_id).order_by(Result.id)).all()
    frame = pd.DataFrame(rows, columns=[c.key for c in cols])
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
            label = metric_name(metric, space)
            rows += [(label, space, gen, str(k).replace("\\", "/").rsplit("/", 1)[-1], v)
                     for k, v in items if k is not None and v is not None]
    return pd.DataFrame(rows, columns=cols)
