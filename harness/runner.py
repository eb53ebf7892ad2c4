"""The run pipeline, as named stages with typed hand-offs:

``plan(request) -> RunPlan`` → ``materialize(plan) -> ImageSets`` → ``extract(plan, sets) -> {space: Features}``
→ ``evaluate(plan, sets, features) -> results`` → ``record(plan, run_id, results)``.

:func:`plan` resolves and validates everything (components, typed options, data specs parsed once, defaults
filled, the store reachable) before anything is written: a typo fails in a second and leaves no run row and no
image folder. :func:`run` is what ``harness run`` calls; it never prints (progress goes through a
:class:`Reporter`). Every stage reuses what exists: image sets by run key (resuming a killed run), features by
(content hash, extractor fingerprint), reference statistics likewise.

Under ``accelerate launch`` (``harness run --num-processes K``) every process runs :func:`run`: generation and
feature extraction are split by image index (:mod:`harness.distributed`, :mod:`harness.materialize`), and only
rank 0 opens the run row, runs the tasks and records the results; the other ranks return ``None``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from generators.base import Generator
from harness import registry
from harness.data.base import DataSource, DataSpec
from harness.distributed import Dist
from harness.errors import DataError, UsageError
from harness.imageset import ImageSet, run_key
from harness.io import jsonable, sha256_file
from harness.materialize import extract_set, materialize_set
from harness.provenance import git_sha, versions
from harness.seeding import named_rng
from tasks.base import MetricResult, Task, TaskContext

log = logging.getLogger(__name__)


class Reporter:
    """Progress sink. ``stage(description, total)`` is a context manager yielding ``advance(k, total=None)``
    (``total`` sets or replaces the stage's total, for work whose size is known only once it starts)."""

    @contextlib.contextmanager
    def stage(self, description: str, total: int | None) -> Iterator[Callable[..., None]]:
        yield lambda k, total=None: None


def default_home() -> Path:
    """Where image sets live: ``ECHOBENCH_HOME`` or ``./runs``."""
    return Path(os.environ.get("ECHOBENCH_HOME", "runs"))


@dataclass
class RunRequest:
    generator: str
    tasks: list[str]
    data: str | None = None  # default: the source of the checkpoint's training data, else the phantom
    reference: str | None = None
    n: int | None = None
    n_ref: int | None = None
    train_data: str | None = None
    n_train: int | None = None
    seed: int = 0
    features: str | None = None  # one space or several comma-separated ("radiomics,dinov2"); None: each task's default
    weights: str | None = None
    checkpoint: Path | None = None
    conditions: list[str] | None = None
    generator_options: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_size: int = 32
    device: str = "auto"
    db: str | None = None
    home: Path | None = None


@dataclass
class RunOutcome:
    run_id: str
    generator: str
    feature_space: str | None  # the spaces of this run, comma-separated (None: no features)
    substitute: bool  # any result computed in a stand-in space (each result says which: MetricResult.substitute)
    n: int
    n_ref: int
    results: list[tuple[str, MetricResult]]  # (task name, result)
    imageset: Path
    reference_imageset: Path | None
    artifacts: dict[str, Path]


DEFAULT_SPACE = "inception"  # where FID is defined; the default of every feature task without a preferred space


# the plan ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RealSet:
    """A real image set the run needs (reference or training set): ``n`` images of ``spec``'s split."""

    role: str  # "reference" | "training set"
    spec: DataSpec
    n: int

    def generator(self) -> Generator:
        return registry.generators.get("real")(data=self.spec.source, split=self.spec.split)


@dataclass
class RunPlan:
    """Everything :func:`run` needs, resolved and validated (see :func:`plan`)."""

    request: RunRequest
    dist: Dist
    device: str
    home: Path
    data: DataSpec
    generator: Generator
    checkpoint_hash: str | None
    n: int
    tasks: list[tuple[str, Task]]
    extractors: list  # FeatureExtractor instances, one per requested space (empty: no task needs features)
    reference: RealSet | None
    train: RealSet | None
    gen_key: str
    gen_info: dict
    real_train: RealSet | None = None  # the data source's labelled training split (segmentation/condition tasks)
    task_spaces: dict[str, list[str]] = field(default_factory=dict)  # feature task -> the spaces it is scored in

    @property
    def spaces(self) -> str | None:
        return ",".join(e.feature_space for e in self.extractors) or None

    @property
    def gen_root(self) -> Path:
        return self.home / _safe_name(self.request.generator) / self.gen_key


def plan(req: RunRequest, dist: Dist) -> RunPlan:
    """Resolve and check every part of ``req``; raise :class:`UsageError`/:class:`DataError` before any side effect."""
    from harness.validate import validate_device

    tasks = _plan_tasks(req)
    needs = {flag: any(getattr(t.spec, flag) for _, t in tasks)
             for flag in ("needs_features", "needs_reference", "needs_train", "needs_real_train")}
    device = dist.device(validate_device(req.device))
    task_spaces = _task_spaces(req, tasks)
    explicit = req.features is not None or req.weights is not None
    spaces = (DEFAULT_SPACE if req.features is None else req.features) if explicit else \
        ",".join(dict.fromkeys(s for names in task_spaces.values() for s in names))
    extractors = _plan_extractors(spaces, device, req.weights) if needs["needs_features"] else []
    # the names asked for -> the spaces the extractors report (a plug-in "module:Class" names its own space)
    named = dict(zip(dict.fromkeys(n.strip() for n in spaces.split(",") if n.strip()), (e.feature_space for e in extractors)))
    task_spaces = {task: [named.get(n, n) for n in names] for task, names in task_spaces.items()}
    data = DataSpec.parse(req.data or "phantom")
    gen_cls = registry.generators.get(req.generator)
    options = dict(req.generator_options)
    if data.split is not None and getattr(gen_cls, "samples_data_split", False):
        options.setdefault("split", data.split)  # `--data SRC@split` chooses what `real`/`labelmap` sample
    gen: Generator = gen_cls(data=data.source, **options)
    gen.check_conditions(req.conditions)
    ck_hash = checkpoint_hash(req.checkpoint)
    gen.load(req.checkpoint, device)
    if req.data is None and gen.train_data:  # a checkpoint trained on CAMUS is scored against CAMUS by default
        trained_on = DataSpec.parse(gen.train_data)
        data = DataSpec(trained_on.name, trained_on.arg, None, trained_on.source)
    n = req.n if req.n is not None else gen.default_n()
    if n < 2:
        raise UsageError(f"--n must be at least 2 (got {n})")
    if req.seed < 0:
        raise UsageError(f"--seed must be >= 0 (got {req.seed})")
    reference = _real_set("reference", req.reference, data, data.source.reference_split, req.n_ref, n) \
        if needs["needs_reference"] else None
    train_spec = req.train_data or gen.train_data
    train = _real_set("training set", train_spec, data, data.source.train_split, req.n_train, n) \
        if needs["needs_train"] and extractors else None
    real_train = _real_set("real training split", None, data, data.source.train_split, req.n_train, n) \
        if needs["needs_real_train"] else None
    parts = {"fingerprint": gen.fingerprint(), "checkpoint": ck_hash, "seed": req.seed if gen.uses_seed else None,
             "conditions": req.conditions}
    for _, task in tasks:  # e.g. seg-utility: a reference without label maps is known before any image exists
        task.check_plan(reference=reference.spec if reference else None, reference_n=reference.n if reference else None)
    if reference is not None and _same_images(gen, reference.generator()):
        raise UsageError(f"the reference set {reference.spec} is the very images being scored ({req.generator} samples "
                         f"the same split); pass --reference with another split or source, or choose what "
                         f"{req.generator} samples with --data SOURCE@SPLIT")
    info = {"generator": req.generator, **parts, "versions": versions(), "git_sha": git_sha()}
    home = Path(req.home) if req.home else default_home()
    return RunPlan(req, dist, device, home, data, gen, ck_hash, n, tasks, extractors, reference, train,
                   run_key(parts), info, real_train, task_spaces)


def _plan_tasks(req: RunRequest) -> list[tuple[str, Task]]:
    if not req.tasks:
        raise UsageError("give at least one --task")
    if len(set(req.tasks)) != len(req.tasks):
        raise UsageError(f"a task is listed twice: {req.tasks}")
    unused = sorted(set(req.task_options) - set(req.tasks))
    if unused:
        raise UsageError(f"--task-option given for task(s) not run: {', '.join(unused)} (tasks: {', '.join(req.tasks)})")
    return [(name, registry.tasks.get(name)(**req.task_options.get(name, {}))) for name in req.tasks]


def _task_spaces(req: RunRequest, tasks: list[tuple[str, Task]]) -> dict[str, list[str]]:
    """The feature spaces each feature task is scored in.

    With ``--features`` (or ``--weights``, which names Inception's file unless ``--features`` says otherwise) every
    feature task runs in every listed space. Without either, each task runs in its preferred space
    (``TaskSpec.default_features``: diversity → ``dinov2`` as dgm-eval does, cmmd → ``clip`` as the CMMD paper
    does) when that model's weights are on this machine (``FeatureExtractor.availability``: never downloads), else
    in Inception (the space FID is defined in).
    """
    feature_tasks = [(name, t) for name, t in tasks if t.spec.needs_features]
    if req.features is not None or req.weights is not None:
        names = [f.strip() for f in (DEFAULT_SPACE if req.features is None else str(req.features)).split(",")]
        return {name: list(dict.fromkeys(n for n in names if n)) for name, _ in feature_tasks}
    out: dict[str, list[str]] = {}
    for name, task in feature_tasks:
        preferred = task.spec.default_features or DEFAULT_SPACE
        if preferred != DEFAULT_SPACE and not registry.features.get(preferred).availability().startswith("ok"):
            preferred = DEFAULT_SPACE
        out[name] = [preferred]
    return out


def _plan_extractors(features: str, device: str, weights: str | None) -> list:
    names = [f.strip() for f in str(features).split(",") if f.strip()]
    if not names:
        raise UsageError("--features names no feature space (e.g. --features radiomics or radiomics,dinov2)")
    if len(set(names)) != len(names):
        raise UsageError(f"--features lists a space twice: {features}")
    classes = [registry.features.get(name) for name in names]  # an unknown name fails here, before any weights load
    if weights is not None and len(classes) > 1:
        raise UsageError("--weights is ambiguous with several --features; run one space per --weights file")
    extractors = [cls(device=device, weights=weights) for cls in classes]
    for ex in extractors:
        ex.prepare()  # a missing or wrong weight file fails here, before any image is generated
    return extractors


def _real_set(role: str, given: str | None, data: DataSpec, default_split: str, n_req: int | None,
              n_default: int) -> RealSet:
    """The reference or training set: ``given`` (a spec) or the data source's ``default_split``, keeping its folder."""
    spec = DataSpec.parse(given) if given else data.with_split(default_split)
    spec = spec if spec.split is not None else spec.with_split(spec.source.default_split)
    count = spec.source.count(spec.split)
    if count == 0:
        raise DataError(f"the {role} {spec} is empty: split {spec.split!r} holds no images")
    n = n_req if n_req is not None else (n_default if count is None else min(n_default, count))
    if n < 2:
        raise UsageError(f"the {role} {spec} needs at least 2 images (got {n})")
    if count is not None and n > count:
        raise UsageError(f"the {role} {spec} has {count} images; asked for {n}")
    return RealSet(role, spec, n)


# the stages ----------------------------------------------------------------------------------------------
@dataclass
class ImageSets:
    gen: ImageSet
    n: int
    ref: ImageSet | None = None
    train: ImageSet | None = None
    real_train: ImageSet | None = None
    overlap: int = 0  # generated images identical to reference images


def materialize(p: RunPlan, reporter: Reporter) -> ImageSets:
    """Make (or reuse/resume) the generated set and the real sets the tasks need."""
    req = p.request
    gen_set = materialize_set(p.generator, p.gen_root, p.n, seed=req.seed, batch_size=req.batch_size,
                              conditions=req.conditions, info=p.gen_info, key=p.gen_key, reporter=reporter,
                              label=req.generator, dist=p.dist)
    sets = ImageSets(gen_set, p.n)
    if p.reference is not None:
        sets.ref = _materialize_real(p, p.reference, reporter)
        sets.overlap = _overlap(gen_set, p.n, sets.ref, p.reference.n) if p.dist.is_main else 0
        if sets.overlap == p.n == p.reference.n:
            raise UsageError(f"every generated image is also in the reference set {p.reference.spec}: the set would be "
                             f"scored against itself; pass --reference with another split or source")
        if sets.overlap:
            log.warning("%d of %d generated images are identical to reference images", sets.overlap, p.n)
    if p.train is not None:
        sets.train = _materialize_real(p, p.train, reporter)
    if p.real_train is not None:
        sets.real_train = _materialize_real(p, p.real_train, reporter)
    return sets


def _materialize_real(p: RunPlan, real: RealSet, reporter: Reporter) -> ImageSet:
    gen = real.generator()
    parts = {"fingerprint": gen.fingerprint()}
    key = run_key(parts)
    return materialize_set(gen, p.home / "_reference" / key, real.n, seed=0, batch_size=p.request.batch_size,
                           conditions=None, info={"generator": "real", "spec": str(real.spec), **parts}, key=key,
                           reporter=reporter, label=f"{real.role} {real.spec}", dist=p.dist)


@dataclass
class Features:
    """One feature space's arrays for the run (``None`` on ranks other than 0)."""

    extractor: Any
    gen: np.ndarray | None
    ref: np.ndarray | None = None
    train: np.ndarray | None = None
    ref_stats: Callable[[], dict] | None = None


def extract(p: RunPlan, sets: ImageSets, reporter: Reporter) -> dict[str, Features]:
    """Features of every set in every requested space (cached by content hash + extractor fingerprint)."""
    from harness.features.cache import FeatureCache

    cache = FeatureCache()
    out = {}
    for ex in p.extractors:
        def feats(iset: ImageSet | None, n: int, label: str, ex=ex) -> np.ndarray | None:
            return None if iset is None else extract_set(iset, n, ex, cache, reporter, label, p.dist)

        f = Features(ex, feats(sets.gen, p.n, p.request.generator))
        if sets.ref is not None:
            f.ref = feats(sets.ref, p.reference.n, "reference")
            ref_hash, ref_feats = sets.ref.content_hash(p.reference.n), f.ref
            f.ref_stats = lambda ex=ex, h=ref_hash, r=ref_feats: cache.reference_stats(h, ex, r)
        if sets.train is not None:
            f.train = feats(sets.train, p.train.n, "training set")
        out[ex.feature_space] = f
    return out


def evaluate(p: RunPlan, sets: ImageSets, features: dict[str, Features], reporter: Reporter,
             artifacts_dir: Path | None) -> tuple[list[tuple[str, MetricResult]], dict[str, Path]]:
    """Run each task: once per feature space for tasks on features, once for the others."""
    results: list[tuple[str, MetricResult]] = []
    artifacts: dict[str, Path] = {}
    for name, task in p.tasks:
        spaces = p.task_spaces.get(name, list(features)) if task.spec.needs_features else []
        for f in ([features[s] for s in spaces] if task.spec.needs_features else [None]):
            ctx = _context(p, sets, f, name, artifacts_dir)
            label = f"task {name}" + (f" [{f.extractor.feature_space}]" if f is not None and len(features) > 1 else "")
            with reporter.stage(label, None) as advance:
                ctx.progress = advance
                results += [(name, r) for r in task.evaluate(ctx)]
            artifacts.update(ctx.artifacts)
    return results, artifacts


def _context(p: RunPlan, sets: ImageSets, f: Features | None, task: str, artifacts_dir: Path | None) -> TaskContext:
    ex = f.extractor if f is not None else None
    ctx = TaskContext(
        feature_space=ex.feature_space if ex else None,
        rng=named_rng(p.request.seed, task),  # each task its own stream: results do not depend on task order
        feature_substitute=bool(ex and ex.substitute),
        metric_namer=ex.metric_name if ex else None,
        artifacts_dir=artifacts_dir,
        gen_images=lambda: sets.gen.load_images(p.n),
    )
    if f is not None:
        ctx.gen_features, ctx.ref_features, ctx.ref_stats, ctx.train_features = f.gen, f.ref, f.ref_stats, f.train
    if sets.ref is not None:
        ctx.ref_images = lambda: sets.ref.load_images(p.reference.n)
    if sets.train is not None:
        ctx.train_images = lambda: sets.train.load_images(p.train.n)
    _label_context(ctx, p, sets, dict(p.tasks)[task].spec)
    return ctx


def _label_context(ctx: TaskContext, p: RunPlan, sets: ImageSets, spec) -> None:
    """Label maps, conditions and the real training split, for the tasks that ask for them (loaded lazily)."""
    from harness.features.cache import default_cache_root

    ctx.generator, ctx.device, ctx.cache_dir = p.request.generator, p.device, default_cache_root().parent
    if spec.needs_labels:
        ctx.gen_label_maps = lambda: sets.gen.load_label_maps(p.n)
        ctx.gen_label_source = getattr(p.generator, "label_source", "phantom")
        if sets.ref is not None:
            ctx.ref_label_maps = lambda: sets.ref.load_label_maps(p.reference.n)
            ctx.ref_label_source = p.reference.spec.name
    if spec.needs_conditions:
        ctx.gen_conditions = lambda: sets.gen.conditions(p.n)
        if sets.ref is not None:
            ctx.ref_conditions = lambda: sets.ref.conditions(p.reference.n)
    if sets.real_train is not None and spec.needs_real_train:
        ctx.train_images = lambda: sets.real_train.load_images(p.real_train.n)
        ctx.train_label_maps = lambda: sets.real_train.load_label_maps(p.real_train.n)
        ctx.train_label_source = p.real_train.spec.name
        ctx.train_conditions = lambda: sets.real_train.conditions(p.real_train.n)


def record(store, p: RunPlan, run_id: str, sets: ImageSets, results: list[tuple[str, MetricResult]],
           artifacts: dict[str, Path]) -> None:
    """Write the results (the one place the run-level facts are added to each result's details) and close the run."""
    versions_of = {name: t.spec.version for name, t in p.tasks}
    rows = []
    for name, r in results:
        details = {**r.details, "substitute_features": r.substitute}
        if sets.overlap:
            details["identical_to_reference"] = sets.overlap
        rows.append(dict(task=name, task_version=versions_of[name], metric=r.metric, value=_num(r.value),
                         ci_low=_num(r.ci_low), ci_high=_num(r.ci_high), n=r.n, feature_space=r.feature_space,
                         higher_is_better=r.higher_is_better, details=jsonable(details)))
    store.finish_run(run_id, rows, [dict(kind=k, path=str(Path(v).resolve())) for k, v in artifacts.items()],
                     imageset_hash=sets.gen.content_hash(p.n))


def _start_run(store, p: RunPlan) -> str:
    req = p.request
    return store.start_run(
        generator=req.generator, checkpoint_hash=p.checkpoint_hash, data_source=str(p.data),
        reference=str(p.reference.spec) if p.reference else None, n=p.n, seed=req.seed, feature_space=p.spaces,
        config=jsonable({"request": dataclasses.asdict(req), "generator": p.generator.describe(),
                         "extractors": {e.feature_space: e.fingerprint() for e in p.extractors},
                         "task_spaces": p.task_spaces,
                         "reference": _set_info(p.reference), "training_set": _set_info(p.train),
                         "tasks": {name: {"version": t.spec.version, "params": t.params} for name, t in p.tasks}}),
        versions=versions(), git_sha=git_sha(), imageset_path=str(p.gen_root.resolve()), provenance={},
    )


def _open_run(store, p: RunPlan) -> str:
    """A new run row, or the ``interrupted`` row of the same request (same image set, tasks and spaces) taken over."""
    # store.runs() first marks the rows of dead processes interrupted
    same = [r for r in store.runs() if r.status == "interrupted" and r.imageset_path == str(p.gen_root.resolve())
            and (r.config or {}).get("request", {}).get("tasks") == p.request.tasks and r.feature_space == p.spaces]
    if same:
        store.resume_run(same[-1].id)
        return same[-1].id
    return _start_run(store, p)


class _Heartbeat(Reporter):
    """A reporter that also beats the run row's heartbeat (at most once a minute) while work advances."""

    def __init__(self, inner: Reporter, beat: Callable[[], None], every: float = 60.0):
        self.inner, self.beat, self.every, self.last = inner, beat, every, 0.0

    @contextlib.contextmanager
    def stage(self, description: str, total: int | None) -> Iterator[Callable[..., None]]:
        import time

        with self.inner.stage(description, total) as advance:
            def step(k: int, total: int | None = None) -> None:
                advance(k, total=total)
                if time.monotonic() - self.last >= self.every:
                    self.last = time.monotonic()
                    self.beat()

            yield step


# the pipeline --------------------------------------------------------------------------------------------
def run(req: RunRequest, reporter: Reporter | None = None) -> RunOutcome | None:
    """Run one generator through the requested tasks and store the results.

    Returns ``None`` on the ranks other than 0 of a multi-process launch (rank 0 returns the outcome).
    """
    from harness import distributed
    from harness.store import Store

    dist = distributed.current(req.device)
    reporter = (reporter or Reporter()) if dist.is_main else Reporter()
    p = plan(req, dist)
    store = Store(req.db) if dist.is_main else None  # an unreachable database fails before any long work
    run_id = _open_run(store, p) if store is not None else None
    if store is not None:
        reporter = _Heartbeat(reporter, lambda: store.heartbeat(run_id))
    try:
        sets = materialize(p, reporter)
        features = extract(p, sets, reporter)
        if store is None:  # not rank 0: our shards of images and features are done
            return None
        results, artifacts = evaluate(p, sets, features, reporter, sets.gen.root / "artifacts" / run_id)
        record(store, p, run_id, sets, results, artifacts)
    except KeyboardInterrupt:  # the run row says so; a re-run of the same request takes it over and resumes
        if store is not None:
            store.mark_interrupted(run_id, "interrupted (Ctrl-C)")
        raise
    except BaseException as exc:  # the run row says what happened; the image set resumes
        if store is not None:
            store.mark_failed(run_id, f"{type(exc).__name__}: {exc}")
        raise
    return RunOutcome(run_id=run_id, generator=req.generator, feature_space=p.spaces,
                      substitute=any(r.substitute for _, r in results), n=p.n,
                      n_ref=p.reference.n if p.reference else 0, results=results, imageset=sets.gen.root,
                      reference_imageset=sets.ref.root if sets.ref else None, artifacts=artifacts)


# helpers -------------------------------------------------------------------------------------------------
def checkpoint_hash(path: Path | None) -> str | None:
    """sha256 of a checkpoint file, or of the sorted (name, sha256) list of a checkpoint folder."""
    if path is None:
        return None
    path = Path(path)
    if not path.exists():
        raise DataError(f"checkpoint {path} does not exist")
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(f"{f.relative_to(path)}:{sha256_file(f)}\n".encode())
    return h.hexdigest()


def _same_images(a: Generator, b: Generator) -> bool:
    """Whether two generators yield the very same images (equal fingerprints, options aside: ``real`` with
    ``split=None`` and ``split="test"`` of the same source sample the same frames)."""
    strip = lambda fp: {k: v for k, v in fp.items() if k != "options"}
    return strip(a.fingerprint()) == strip(b.fingerprint())


def _set_info(real: RealSet | None) -> dict | None:
    return None if real is None else {"spec": str(real.spec), "split": real.spec.split, "n": real.n}


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _overlap(a: ImageSet, na: int, b: ImageSet, nb: int) -> int:
    hb = {e.sha256 for e in b.entries[:nb]}
    return sum(e.sha256 in hb for e in a.entries[:na])


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


__all__ = ["DataSource", "ImageSets", "Features", "RunPlan", "RunRequest", "RunOutcome", "Reporter", "plan",
           "materialize", "extract", "evaluate", "record", "run", "checkpoint_hash"]
