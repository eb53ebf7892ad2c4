"""Image sets and features on disk, for one process or many: the runner's two data-moving stages.

:func:`materialize_set` makes sure an image set holds ``n`` images, generating the missing ones; :func:`extract_set`
returns an image set's features from the cache or computes them. Both split the work by image index when several
processes run (``accelerate launch``); :func:`write_generated` is the one batch-writing loop both paths use.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from generators.base import GeneratedBatch, Generator, image_seed
from harness.distributed import Dist, runs, shard
from harness.errors import DataError
from harness.imageset import ImageSet, writer_lock
from harness.io import atomic_write

log = logging.getLogger(__name__)

#: ``write(index, images, **meta)``: store images ``index ..`` of a batch (ImageSet.write_batch / write_shard).
Writer = Callable[..., object]


def write_generated(gen: Generator, lo: int, hi: int, *, seed: int, batch_size: int, conditions, write: Writer,
                    advance: Callable[[int], object]) -> int:
    """Generate images ``lo .. hi-1`` with ``gen.sample(hi, start=lo)`` and hand each batch to ``write``.

    Batches are cut at ``hi`` (a generator may yield more); returns the index after the last image written.
    """
    index = lo
    if hi <= lo:
        return index
    for batch in gen.sample(hi, seed=seed, batch_size=batch_size, conditions=conditions, start=lo):
        if not isinstance(batch, GeneratedBatch):
            batch = GeneratedBatch(images=np.asarray(batch))
        b = min(len(batch), hi - index)
        if b <= 0:
            continue
        write(index, batch.images[:b], **_batch_meta(gen, batch, seed, index, b))
        index += b
        advance(b)
        if index >= hi:
            break
    return index


def _batch_meta(gen: Generator, batch: GeneratedBatch, seed: int, index: int, b: int) -> dict:
    """The manifest fields of the first ``b`` images of ``batch`` (written at ``index ..``)."""
    return {
        "seeds": [image_seed(seed, i) for i in range(index, index + b)] if gen.uses_seed else None,
        "conditions": batch.conditions[:b] if batch.conditions else None,
        "prompts": batch.prompts[:b] if batch.prompts else None,
        "label_maps": batch.label_maps[:b] if batch.label_maps is not None else None,
        "source_ids": batch.source_ids[:b] if batch.source_ids else None,
    }


def materialize_set(gen: Generator, root: Path, n: int, *, seed: int, batch_size: int, conditions, info: dict,
                    key: str, reporter, label: str, dist: Dist | None = None) -> ImageSet:
    """Make sure the image set at ``root`` holds at least ``n`` images, generating the missing ones.

    One process: under the set's writer lock, resume from the first missing index. Several processes: rank 0
    creates/resumes the set (merging shard manifests a killed run left) and holds the lock; every rank generates
    its block of the missing indices (:func:`harness.distributed.shard`) into its shard manifest; rank 0 merges
    them and checks that 0..n-1 are all there. Rank 0's run key (and folder) is everyone's.
    """
    sample = dict(seed=seed, batch_size=batch_size, conditions=conditions)
    if dist is None or not dist.distributed:
        with writer_lock(root):
            iset = ImageSet.open(root, info, key=key)
            start = len(iset)
            if start < n:
                with reporter.stage(f"generating {label}", n) as advance:
                    advance(start)
                    write_generated(gen, start, n, write=iset.write_batch, advance=advance, **sample)
            _check_complete(gen, iset, n)
            return iset
    main_root, main_key = dist.broadcast((str(root), key))
    if main_key != key:
        log.warning("rank %d computed run key %s, rank 0 %s: a generator fingerprint differs between processes "
                    "(the image set will not be reused by later runs); writing into rank 0's set", dist.rank, key, main_key)
    root, key = Path(main_root), main_key
    with contextlib.ExitStack() as stack:
        if dist.is_main:  # rank 0 holds the set's writer lock for the whole job (other jobs wait)
            stack.enter_context(writer_lock(root))
            ImageSet.open(root, info, key=key)
        dist.barrier()
        todo = ImageSet.attach(root, key=key).missing(n)
        dist.barrier()  # everyone has listed the missing indices before anyone writes
        mine = shard(todo, dist.rank, dist.world)
        iset = ImageSet(root)
        if mine:
            write = lambda index, images, **meta: iset.write_shard(dist.rank, index, images, **meta)
            with reporter.stage(f"generating {label}{dist.label()}", len(mine)) as advance:
                for lo, hi in runs(mine):
                    write_generated(gen, lo, hi, write=write, advance=advance, **sample)
        dist.barrier()
        if dist.is_main:
            iset = ImageSet.open(root, info, key=key)  # merges the shard manifests
            _check_complete(gen, iset, n)
        dist.barrier()
        return iset if dist.is_main else ImageSet.attach(root, key=key)


def _check_complete(gen: Generator, iset: ImageSet, n: int) -> None:
    if len(iset) < n:
        raise DataError(f"generator {gen.name!r} produced {len(iset)} images; {n} were requested "
                        f"(indices {iset.missing(n)[:10]} are missing)")


def extract_set(iset: ImageSet, n: int, extractor, cache, reporter, label: str,
                dist: Dist | None = None) -> np.ndarray | None:
    """Features of the first ``n`` images, from the cache or computed (split by index across processes).

    With several processes the features reach rank 0 only (the others return ``None``): each rank extracts its
    block to ``.features-*.rank<r>.npy`` in the image set folder; rank 0 concatenates them in order.
    """
    from harness.features.cache import extract_features

    content_hash = iset.content_hash(n)
    distributed = dist is not None and dist.distributed
    world, rank = (dist.world, dist.rank) if distributed else (1, 0)
    suffix = dist.label() if distributed else ""

    def extract_block(r: int) -> np.ndarray:
        block = shard(range(n), r, world)
        lo, hi = (block[0], block[-1] + 1) if block else (0, 0)
        with reporter.stage(f"features {extractor.name}: {label}{suffix}", hi - lo) as advance:
            return extract_features(extractor, iset.iter_images(hi, extractor.batch_size, start=lo), total=hi - lo,
                                    progress=advance)

    if not distributed:
        return cache.get_or_compute(content_hash, extractor, lambda: extract_block(0))
    stem = f".features-{cache.key(content_hash, extractor)[-16:]}"
    if dist.is_main:
        computed: list[int] = []

        def gather() -> np.ndarray:  # rank 0, on a cache miss: tell the others to extract their blocks too
            computed.append(1)
            dist.broadcast(True)
            parts = [extract_block(0)]
            dist.barrier()
            parts += [_take(iset.root / f"{stem}.rank{r}.npy") for r in range(1, world)]
            feats = np.concatenate(parts)
            if len(feats) != n:
                raise DataError(f"gathered {len(feats)} feature rows for {n} images of {iset.root}")
            return feats

        feats = cache.get_or_compute(content_hash, extractor, gather)
        if not computed:
            dist.broadcast(False)
        return feats
    if dist.broadcast(None):
        feats = extract_block(rank)
        atomic_write(iset.root / f"{stem}.rank{rank}.npy", lambda tmp: _save_npy(tmp, feats))
        dist.barrier()
    return None


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def _take(path: Path) -> np.ndarray:
    """Load a rank's feature block and remove its file."""
    arr = np.load(path, allow_pickle=False)
    path.unlink()
    return arr


__all__: Sequence[str] = ["materialize_set", "extract_set", "write_generated"]
