"""The run pipeline: resolve components → image set → features → tasks → results store.

``run(RunRequest) -> RunOutcome`` is what ``harness run`` calls; it never prints. Progress goes through a
:class:`Reporter` (the CLI passes a rich one). Every stage reuses what exists: the image set by run key
(resuming a killed run), features by (content hash, extractor fingerprint), reference statistics likewise.

Under ``accelerate launch`` (``harness run --num-processes K``) every process runs :func:`run`: image
generation and feature extraction are split by image index (:mod:`harness.distributed`), and only rank 0
opens the run row, runs the tasks and writes the results; the other ranks return ``None``.
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

from generators.base import GeneratedBatch, Generator, image_seed
from harness import registry
from harness.data.base import open_data_spec
from harness.distributed import Dist, runs, shard
from harness.errors import DataError, UsageError
from harness.imageset import ImageSet, run_key, sha256_file, writer_lock
from harness.provenance import git_sha, versions
from harness.seeding import named_rng
from tasks.base import MetricResult, TaskContext

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
    data: str = "phantom"
    reference: str | None = None
    n: int | None = None
    n_ref: int | None = None
    train_data: str | None = None
    n_train: int | None = None
    seed: int = 0
    features: str = "inception"
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
    feature_space: str | None
    substitute: bool
    n: int
    n_ref: int
    results: list[tuple[str, MetricResult]]  # (task name, result)
    imageset: Path
    reference_imageset: Path | None
    artifacts: dict[str, Path]


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
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path)}:{sha256_file(f)}\n".encode())
    return h.hexdigest()


def materialize(gen: Generator, root: Path, n: int, *, seed: int, batch_size: int, conditions, info: dict,
                key: str, reporter: Reporter, label: str, dist: Dist | None = None) -> ImageSet:
    """Make sure the image set at ``root`` holds at least ``n`` images, generating the missing ones.

    With several processes (``dist``) each generates its shard of the missing indices (see
    :func:`_materialize_sharded`); every process returns the complete set.
    """
    if dist is not None and dist.distributed:
        return _materialize_sharded(gen, root, n, seed=seed, batch_size=batch_size, conditions=conditions,
                                    info=info, key=key, reporter=reporter, label=label, dist=dist)
    with writer_lock(root):
        return _materialize_local(gen, root, n, seed=seed, batch_size=batch_size, conditions=conditions, info=info,
                                  key=key, reporter=reporter, label=label)


def _materialize_local(gen: Generator, root: Path, n: int, *, seed: int, batch_size: int, conditions, info: dict,
                       key: str, reporter: Reporter, label: str) -> ImageSet:
    iset = ImageSet.open(root, info, key=key)
    start = len(iset)
    if start >= n:
        return iset
    with reporter.stage(f"generating {label}", n) as advance:
        advance(start)
        index = start
        for batch in gen.sample(n, seed=seed, batch_size=batch_size, conditions=conditions, start=start):
            if not isinstance(batch, GeneratedBatch):
                batch = GeneratedBatch(images=np.asarray(batch))
            b = len(batch)
            if b == 0:
                continue
            b = min(b, n - index)
            iset.write_batch(index, batch.images[:b], **_batch_meta(gen, batch, seed, index, b))
            index += b
            advance(b)
            if index >= n:
                break
    if len(iset) < n:
        raise DataError(f"generator {gen.name!r} produced {len(iset)} images; {n} were requested")
    return iset


def _batch_meta(gen: Generator, batch: GeneratedBatch, seed: int, index: int, b: int) -> dict:
    """The manifest fields of the first ``b`` images of ``batch`` (written at ``index ..``)."""
    return {
        "seeds": [image_seed(seed, i) for i in range(index, index + b)] if gen.uses_seed else None,
        "conditions": batch.conditions[:b] if batch.conditions else None,
        "prompts": batch.prompts[:b] if batch.prompts else None,
        "label_maps": batch.label_maps[:b] if batch.label_maps is not None else None,
        "source_ids": batch.source_ids[:b] if batch.source_ids else None,
    }


def _materialize_sharded(gen: Generator, root: Path, n: int, *, seed: int, batch_size: int, conditions, info: dict,
                         key: str, reporter: Reporter, label: str, dist: Dist) -> ImageSet:
    """:func:`materialize` split across processes by image index.

    Rank 0 creates or resumes the set (merging shard manifests a killed run left); every rank then lists the
    missing indices, takes its contiguous block (:func:`harness.distributed.shard`), generates it with
    ``sample(hi, start=lo)`` per run of indices and writes it with :meth:`ImageSet.write_shard`; rank 0
    merges the shard manifests and checks that 0..n-1 are all there. Rank 0's run key (and folder) is
    everyone's: a key that differs on another rank is logged (a fingerprint that is not reproducible).
    """
    main_root, main_key = dist.broadcast((str(root), key))
    if main_key != key:
        log.warning("rank %d computed run key %s, rank 0 %s: a generator fingerprint differs between processes "
                    "(the image set will not be reused by later runs); writing into rank 0's set",
                    dist.rank, key, main_key)
    root, key = Path(main_root), main_key
    with contextlib.ExitStack() as stack:
        if dist.is_main:  # rank 0 holds the set's writer lock for the whole job (other jobs wait)
            stack.enter_context(writer_lock(root))
            ImageSet.open(root, info, key=key)
        return _fill_shards(gen, root, n, seed=seed, batch_size=batch_size, conditions=conditions, info=info,
                            key=key, reporter=reporter, label=label, dist=dist)


def _fill_shards(gen: Generator, root: Path, n: int, *, seed: int, batch_size: int, conditions, info: dict,
                 key: str, reporter: Reporter, label: str, dist: Dist) -> ImageSet:
    dist.barrier()
    todo = ImageSet.attach(root, key=key).missing(n)
    dist.barrier()  # everyone has listed the missing indices before anyone writes
    mine = shard(todo, dist.rank, dist.world)
    iset = ImageSet(root)
    if mine:
        with reporter.stage(f"generating {label}{dist.label()}", len(mine)) as advance:
            for lo, hi in runs(mine):
                index = lo
                for batch in gen.sample(hi, seed=seed, batch_size=batch_size, conditions=conditions, start=lo):
                    if not isinstance(batch, GeneratedBatch):
                        batch = GeneratedBatch(images=np.asarray(batch))
                    b = min(len(batch), hi - index)
                    if b <= 0:
                        continue
                    iset.write_shard(dist.rank, index, batch.images[:b], **_batch_meta(gen, batch, seed, index, b))
                    index += b
                    advance(b)
                    if index >= hi:
                        break
    dist.barrier()
    if dist.is_main:
        iset = ImageSet.open(root, info, key=key)  # merges the shard manifests
        if len(iset) < n:
            raise DataError(f"generator {gen.name!r} produced {len(iset)} images; {n} were requested "
                            f"(indices {iset.missing(n)[:10]} are missing)")
    dist.barrier()
    return iset if dist.is_main else ImageSet.attach(root, key=key)


def _features(iset: ImageSet, n: int, extractor, cache, reporter: Reporter, label: str,
              dist: Dist | None = None) -> np.ndarray | None:
    """Features of the first ``n`` images, from the cache or computed (split by index across processes).

    With several processes the features reach rank 0 only (the others return ``None``): each rank extracts
    its block to ``.features-*.rank<r>.npy`` in the image set folder; rank 0 concatenates them in order.
    """
    from harness.features.cache import extract_features

    content_hash = iset.content_hash(n)
    if dist is None or not dist.distributed:
        def compute() -> np.ndarray:
            with reporter.stage(f"features {extractor.name}: {label}", n) as advance:
                return extract_features(extractor, iset.iter_images(n, extractor.batch_size), total=n, progress=advance)

        return cache.get_or_compute(content_hash, extractor, compute)

    blocks = [shard(range(n), r, dist.world) for r in range(dist.world)]
    stem = f".features-{cache.key(content_hash, extractor)[-16:]}"

    def extract_mine() -> np.ndarray:
        mine = blocks[dist.rank]
        lo, hi = (mine[0], mine[-1] + 1) if mine else (0, 0)
        with reporter.stage(f"features {extractor.name}: {label}{dist.label()}", hi - lo) as advance:
            return extract_features(extractor, iset.iter_images(hi, extractor.batch_size, start=lo), total=hi - lo,
                                    progress=advance)

    def compute() -> np.ndarray:  # rank 0, on a cache miss
        dist.broadcast(True)
        parts = [extract_mine()]
        dist.barrier()
        for r in range(1, dist.world):
            path = iset.root / f"{stem}.rank{r}.npy"
            parts.append(np.load(path, allow_pickle=False))
            path.unlink()
        feats = np.concatenate(parts)
        if len(feats) != n:
            raise DataError(f"gathered {len(feats)} feature rows for {n} images of {iset.root}")
        return feats

    if dist.is_main:
        computed = []
        feats = cache.get_or_compute(content_hash, extractor, lambda: computed.append(1) or compute())
        if not computed:
            dist.broadcast(False)
        return feats
    if dist.broadcast(None):
        feats = extract_mine()
        path = iset.root / f"{stem}.rank{dist.rank}.npy"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.save(f, feats, allow_pickle=False)
        os.replace(tmp, path)
        dist.barrier()
    return None


def run(req: RunRequest, reporter: Reporter | None = None) -> RunOutcome | None:
    """Run one generator through the requested tasks and store the results.

    Returns ``None`` on the ranks other than 0 of a multi-process launch (rank 0 returns the outcome).
    """
    from harness import distributed
    from harness.store import Store

    dist = distributed.current(req.device)
    reporter = (reporter or Reporter()) if dist.is_main else Reporter()
    device = dist.device(req.device)
    home = Path(req.home) if req.home else default_home()
    if not req.tasks:
        raise UsageError("give at least one --task")
    if len(set(req.tasks)) != len(req.tasks):
        raise UsageError(f"a task is listed twice: {req.tasks}")

    # 1. resolve every component before any long work, so a typo fails in a second
    gen_cls = registry.generators.get(req.generator)
    task_objs = [(name, registry.tasks.get(name)(**req.task_options.get(name, {}))) for name in req.tasks]
    needs_features = any(t.spec.needs_features for _, t in task_objs)
    needs_reference = any(t.spec.needs_reference for _, t in task_objs)
    needs_train = any(t.spec.needs_train for _, t in task_objs)
    extractor = None
    if needs_features:
        extractor = registry.features.get(req.features)(device=device, weights=req.weights)
        prepare = getattr(extractor, "prepare", None)
        if prepare is not None:  # e.g. locate Inception weights: a missing file fails now, not after generation
            prepare()
    source, _ = open_data_spec(req.data)
    gen: Generator = gen_cls(data=source, **req.generator_options)
    ck_hash = checkpoint_hash(req.checkpoint)
    gen.load(req.checkpoint, device)
    n = req.n if req.n is not None else gen.default_n()
    if n < 2:
        raise UsageError(f"--n must be at least 2 (got {n})")
    if req.seed < 0:
        raise UsageError(f"--seed must be >= 0 (got {req.seed})")
    ref_spec = req.reference or f"{parse_name(req.data)}:{source.reference_split}"
    store = Store(req.db) if dist.is_main else None  # a database that cannot be reached fails before any long work

    # 2. image sets
    gen_parts = {
        "fingerprint": gen.fingerprint(),
        "checkpoint": ck_hash,
        "seed": req.seed if gen.uses_seed else None,
        "conditions": req.conditions,
    }
    key = run_key(gen_parts)
    info = {"generator": req.generator, **gen_parts, "versions": versions(), "git_sha": git_sha()}
    run_id = None if store is None else store.start_run(
        generator=req.generator,
        checkpoint_hash=ck_hash,
        data_source=req.data,
        reference=ref_spec if needs_reference else None,
        n=n,
        seed=req.seed,
        feature_space=extractor.feature_space if extractor else None,
        config=_jsonable({"request": dataclasses.asdict(req), "generator": gen.describe(),
                          "extractor": extractor.fingerprint() if extractor else None,
                          "tasks": {name: {"version": t.spec.version, "params": t.params} for name, t in task_objs}}),
        versions=versions(),
        git_sha=git_sha(),
        imageset_path=str((home / _safe_name(req.generator) / key).resolve()),
        provenance={},
    )
    try:
        gen_set = materialize(gen, home / _safe_name(req.generator) / key, n, seed=req.seed,
                              batch_size=req.batch_size, conditions=req.conditions, info=info, key=key,
                              reporter=reporter, label=req.generator, dist=dist)
        ref_set, n_ref, overlap = None, 0, 0
        if needs_reference:
            ref_set, n_ref = _real_set(ref_spec, req.n_ref, n, home, req.batch_size, reporter, "reference", dist)
            overlap = _overlap(gen_set, n, ref_set, n_ref) if dist.is_main else 0
            if overlap:
                log.warning("%d of %d generated images are identical to reference images", overlap, n)

        # 3. features (cached by content hash + extractor fingerprint)
        ctx = TaskContext(feature_space=extractor.feature_space if extractor else None,
                          rng=np.random.default_rng(req.seed),
                          feature_substitute=bool(extractor and extractor.substitute),
                          metric_namer=extractor.metric_name if extractor else None,
                          artifacts_dir=gen_set.root / "artifacts" / run_id if run_id else None)
        if extractor is not None:
            from harness.features.cache import FeatureCache

            cache = FeatureCache()
            ctx.gen_features = _features(gen_set, n, extractor, cache, reporter, req.generator, dist)
            if needs_train:
                train_spec = req.train_data or gen.train_data or f"{parse_name(req.data)}:train"
                train_set, n_train = _real_set(train_spec, req.n_train, n, home, req.batch_size, reporter,
                                               "training set", dist)
                ctx.train_features = _features(train_set, n_train, extractor, cache, reporter, "training set", dist)
                ctx.train_images = lambda: train_set.load_images(n_train)
            if ref_set is not None:
                ref_features = _features(ref_set, n_ref, extractor, cache, reporter, "reference", dist)
                ctx.ref_features = ref_features
                ref_hash = ref_set.content_hash(n_ref)
                ctx.ref_stats = lambda: cache.reference_stats(ref_hash, extractor, ref_features)
        if store is None:  # not rank 0: our shards of images and features are done
            return None
        ctx.gen_images = lambda: gen_set.load_images(n)
        if ref_set is not None:
            ctx.ref_images = lambda: ref_set.load_images(n_ref)

        # 4. tasks
        results: list[tuple[str, MetricResult]] = []
        for name, task in task_objs:
            with reporter.stage(f"task {name}", None) as advance:
                ctx.progress = advance
                ctx.rng = named_rng(req.seed, name)  # each task its own stream: results do not depend on task order
                for r in task.evaluate(ctx):
                    if extractor is not None and r.feature_space is None and task.spec.needs_features:
                        r = dataclasses.replace(r, feature_space=extractor.feature_space)
                    if ctx.feature_substitute:
                        r = dataclasses.replace(r, details={**r.details, "substitute_features": True})
                    if overlap:
                        r = dataclasses.replace(r, details={**r.details, "identical_to_reference": overlap})
                    results.append((name, r))
        spec_version = {name: t.spec.version for name, t in task_objs}
        store.finish_run(
            run_id,
            [dict(task=name, task_version=spec_version[name], metric=r.metric, value=_num(r.value),
                  ci_low=_num(r.ci_low), ci_high=_num(r.ci_high), n=r.n, feature_space=r.feature_space,
                  higher_is_better=r.higher_is_better, details=_jsonable(r.details)) for name, r in results],
            [dict(kind=kind, path=str(Path(path).resolve())) for kind, path in ctx.artifacts.items()],
            imageset_hash=gen_set.content_hash(n),
        )
    except BaseException as exc:  # Ctrl-C included: the run row says what happened; the image set resumes
        if store is not None:
            store.mark_failed(run_id, f"{type(exc).__name__}: {exc}")
        raise
    return RunOutcome(run_id=run_id, generator=req.generator,
                      feature_space=extractor.feature_space if extractor else None,
                      substitute=bool(extractor and extractor.substitute), n=n, n_ref=n_ref, results=results,
                      imageset=gen_set.root, reference_imageset=ref_set.root if ref_set else None,
                      artifacts=dict(ctx.artifacts))


def _real_set(spec: str, n_req: int | None, n_default: int, home: Path, batch_size: int, reporter: Reporter,
              label: str, dist: Dist | None = None) -> tuple[ImageSet, int]:
    """Materialise ``n`` images of a data-source spec (a reference or training set) as a cached image set."""
    source, split = open_data_spec(spec)
    gen = registry.generators.get("real")(data=source, split=split)
    count = source.count(split)
    n = n_req if n_req is not None else (n_default if count is None else min(n_default, count))
    if n < 2:
        raise UsageError(f"the {label} {spec} needs at least 2 images (got {n})")
    parts = {"fingerprint": gen.fingerprint()}
    key = run_key(parts)
    iset = materialize(gen, home / "_reference" / key, n, seed=0, batch_size=batch_size, conditions=None,
                       info={"generator": "real", "spec": spec, **parts}, key=key, reporter=reporter,
                       label=f"{label} {spec}", dist=dist)
    return iset, n


def parse_name(spec: str) -> str:
    return spec.partition(":")[0]


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


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
