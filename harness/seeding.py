"""Named random streams: a generator that depends only on (seed, name), so that adding, removing or
reordering the other consumers of a seed (tasks in a run, sources in a study) never changes this one."""

from __future__ import annotations

import hashlib

import numpy as np


def named_rng(seed: int, name: str) -> np.random.Generator:
    """The random stream for ``name`` under ``seed``."""
    return np.random.default_rng([int(seed), int.from_bytes(hashlib.sha256(str(name).encode()).digest()[:8], "little")])
