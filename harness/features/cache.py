"""The feature cache: features and reference statistics on disk as ``.npz``, keyed by what changes them.

A key combines the image set's content hash and the extractor's :meth:`fingerprint` (name, weights hash,
preprocessing version) with what is stored (``features`` or ``stats``): a readable prefix for people
(``<fingerprint>__<content hash, 12>__<kind>``) plus a SHA-256 of the full strings, e.g.
``inception-3f1c2a9b8e7d-pclean1__a1b2c3d4e5f6__features__9c0d…npz``. Each file also stores the full
content hash and fingerprint; a file whose stored identity or arrays do not match (or that cannot be
read) is logged and recomputed, never trusted. Writes are atomic (temporary file, then ``os.replace``).

The root is, in order: the ``root`` argument, ``$ECHOBENCH_CACHE/features``, or
``platformdirs.user_cache_dir("echobench")/features``; never the package folder.

Images → features → statistics are the two cached stages (torch-fidelity's naming); metrics are not
cached. The statistics are :func:`tasks.fid_math.gaussian_stats` (mean, covariance, its square root and ``n``): one
implementation for the cache and the metrics.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from harness.errors import DataError
from harness.features.base import FeatureExtractor
from harness.io import atomic_write

log = logging.getLogger(__name__)

ENV_CACHE = "ECHOBENCH_CACHE"
STATS_VERSION = "2"  # 2: tasks.fid_math.gaussian_stats, with n
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_cache_root() -> Path:
    """``$ECHOBENCH_CACHE/features`` when set, else ``user_cache_dir("echobench")/features``."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser() / "features"
    import platformdirs

    return Path(platformdirs.user_cache_dir("echobench")) / "features"


# the cache -------------------------------------------------------------------------------------
class FeatureCache:
    """``.npz`` store of features and reference statistics (see the module docstring).

    ``hits`` and ``misses`` count lookups served from disk and computations (for tests and benchmarks).
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_root()
        self.hits = 0
        self.misses = 0

    # keys ------------------------------------------------------------------------------------
    def key(self, content_hash: str, extractor: FeatureExtractor, kind: str = "features") -> str:
        """File stem: readable prefix + SHA-256 of (content hash, fingerprint, kind)."""
        fingerprint = extractor.fingerprint()
        digest = hashlib.sha256(f"{content_hash}\0{fingerprint}\0{kind}".encode()).hexdigest()[:16]
        prefix = "__".join(_UNSAFE.sub("_", part) for part in (fingerprint, content_hash[:12], kind))
        return f"{prefix}__{digest}"

    def path(self, content_hash: str, extractor: FeatureExtractor, kind: str = "features") -> Path:
        return self.root / f"{self.key(content_hash, extractor, kind)}.npz"

    # public API --------------------------------------------------------------------------------
    def get_or_compute(self, content_hash: str, extractor: FeatureExtractor,
                       compute: Callable[[], np.ndarray]) -> np.ndarray:
        """Cached features of the image set ``content_hash`` under ``extractor``; else ``compute()`` and store."""
        meta = self._meta(content_hash, extractor, "features")
        cached = self._load(self.path(content_hash, extractor), meta, ("features",))
        if cached is not None:
            self.hits += 1
            return cached["features"]
        self.misses += 1
        feats = np.asarray(compute())
        if feats.ndim != 2:
            raise ValueError(f"{extractor.name}: compute() returned shape {feats.shape}, expected (N, D)")
        self._save(self.path(content_hash, extractor), meta, {"features": feats})
        return feats

    def reference_stats(self, content_hash: str, extractor: FeatureExtractor,
                        features: np.ndarray) -> dict[str, np.ndarray]:
        """Cached :func:`tasks.fid_math.gaussian_stats` of ``features`` (of image set ``content_hash``):
        ``dict(mu, sigma, sqrt_sigma, n)``."""
        from tasks.fid_math import gaussian_stats

        kind = f"stats{STATS_VERSION}"
        meta = self._meta(content_hash, extractor, kind)
        path = self.path(content_hash, extractor, kind)
        cached = self._load(path, meta, ("mu", "sigma", "sqrt_sigma", "n"))
        if cached is not None and cached["mu"].shape[0] == np.shape(features)[1] and int(cached["n"]) == len(features):
            self.hits += 1
            return {**cached, "n": int(cached["n"])}
        self.misses += 1
        stats = gaussian_stats(features)
        self._save(path, meta, {**stats, "n": np.asarray(stats["n"])})
        return stats

    # storage -------------------------------------------------------------------------------------
    @staticmethod
    def _meta(content_hash: str, extractor: FeatureExtractor, kind: str) -> dict:
        return {"content_hash": content_hash, "fingerprint": extractor.fingerprint(), "kind": kind,
                "feature_space": extractor.feature_space}

    def _load(self, path: Path, meta: dict, names: Sequence[str]) -> dict[str, np.ndarray] | None:
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                stored = json.loads(str(z["meta"]))
                arrays = {n: z[n] for n in names}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            log.warning("feature cache file %s is unreadable (%s: %s); recomputing", path, type(exc).__name__, exc)
            return None
        if any(stored.get(k) != v for k, v in meta.items()):
            log.warning("feature cache file %s belongs to %s, not %s; recomputing", path, stored, meta)
            return None
        return arrays

    def _save(self, path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta)), **arrays)

        atomic_write(path, write)
        log.debug("wrote %s", path)


# extraction helper ------------------------------------------------------------------------------
def extract_features(extractor: FeatureExtractor, image_batches: Iterable[Sequence[np.ndarray]],
                     total: int | None = None, progress: Callable[[int], object] | None = None) -> np.ndarray:
    """Run ``extractor`` over batches of any size, re-batched to ``extractor.batch_size``.

    Parameters
    ----------
    image_batches : iterable of sequences of uint8 images (a list of arrays, or an array (B, H, W[, 3])).
    total : expected number of images; a different count raises :class:`DataError`.
    progress : called as ``progress(n)`` after each extracted chunk of ``n`` images.

    Returns
    -------
    float32 array (N, extractor.dim) in input order.
    """
    size = max(1, int(extractor.batch_size))
    chunks: list[np.ndarray] = []
    buffer: list[np.ndarray] = []
    count = 0

    def flush() -> None:
        nonlocal count
        feats = np.asarray(extractor.extract_batch(buffer), dtype=np.float32)
        chunks.append(feats)
        count += len(buffer)
        if progress is not None:
            progress(len(buffer))
        buffer.clear()

    for batch in image_batches:
        for image in batch:
            buffer.append(image)
            if len(buffer) == size:
                flush()
    if buffer:
        flush()
    if total is not None and count != total:
        raise DataError(f"expected {total} images for {extractor.name} features, got {count}")
    if not chunks:
        return np.zeros((0, extractor.dim), dtype=np.float32)
    return np.concatenate(chunks)
