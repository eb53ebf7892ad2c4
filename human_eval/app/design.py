"""The study design of the rating app: counterbalanced source order and seeded image draws.

Within-subjects, one factor (image source). Each participant rates ``per_participant`` images of every source
(the paper: 4 sources × 10). Two pure functions build a participant's plan:

* :func:`balanced_latin_square` — Williams' design: every source appears once in every position and, over the
  rows, every source follows every other source equally often (once for an even number of sources; for an odd
  number the square and its mirror image are used, 2·k rows, twice).
* :func:`draw_images` — images drawn *without replacement* from each source's pool: participant ``i`` takes the
  next ``m`` images of a seeded permutation of the pool; when a permutation is used up a fresh one (next seed)
  begins, so every pool image is shown as evenly often as the design allows.

A participant's order is ``m`` rounds; each round shows one image of every source in the order of the
participant's Latin-square row (row ``i mod rows``). Everything depends only on (study seed, participant
ordinal), so participants can be added at any time and the plan is reproducible.

References
----------
Williams, E. J. (1949). Experimental designs balanced for the estimation of residual effects of treatments.
Australian Journal of Scientific Research, A 2, 149-168.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.errors import UsageError

__all__ = ["balanced_latin_square", "draw_images", "participant_plan"]


def balanced_latin_square(k: int) -> list[list[int]]:
    """Williams' balanced Latin square over ``k`` treatments (0..k-1).

    Returns ``k`` rows for even ``k`` and ``2k`` rows (square + mirrored square) for odd ``k``.
    """
    if k < 1:
        raise UsageError(f"a Latin square needs at least one source (got {k})")
    first, lo, hi = [0], 1, k - 1
    while len(first) < k:  # 0, 1, k-1, 2, k-2, ...
        first.append(lo)
        lo += 1
        if len(first) < k:
            first.append(hi)
            hi -= 1
    rows = [[(x + r) % k for x in first] for r in range(k)]
    if k % 2 == 1 and k > 1:
        rows += [row[::-1] for row in rows]
    return rows


def _permutation(n: int, seed: int, source_index: int, cycle: int) -> np.ndarray:
    rng = np.random.default_rng([seed, source_index, cycle])
    return rng.permutation(n)


def draw_images(pool_size: int, per_participant: int, participant: int, *, seed: int, source_index: int) -> list[int]:
    """Indices into a pool for participant number ``participant`` (0-based), without replacement.

    Participant ``i`` takes positions ``i*m .. i*m+m-1`` of the endless sequence of seeded permutations of the
    pool (``m = per_participant``); one participant never sees an image twice because ``m <= pool_size``.
    """
    if per_participant > pool_size:
        raise UsageError(f"each participant needs {per_participant} images per source but the pool has only "
                         f"{pool_size}; enlarge the pool or lower the images per participant")
    out: list[int] = []
    start = participant * per_participant
    for pos in range(start, start + per_participant):
        cycle, offset = divmod(pos, pool_size)
        out.append(int(_permutation(pool_size, seed, source_index, cycle)[offset]))
    if len(set(out)) != len(out):  # a participant straddling two permutations: replace repeats
        seen: set[int] = set()
        nxt = _permutation(pool_size, seed, source_index, (start + per_participant) // pool_size + 1)
        spare = [int(x) for x in nxt if int(x) not in out]
        for j, x in enumerate(out):
            if x in seen:
                out[j] = spare.pop(0)
            seen.add(out[j])
    return out


def participant_plan(pools: dict[str, Sequence[str]], per_participant: int, participant: int, *,
                     seed: int) -> tuple[list[str], list[str]]:
    """The ordered image ids for one participant and the source order (their Latin-square row).

    ``pools`` maps each source to its pool of image ids (order matters: the seeded draws index into it);
    sources are taken in sorted order so the plan does not depend on dict order.
    """
    sources = sorted(pools)
    square = balanced_latin_square(len(sources))
    order = [sources[j] for j in square[participant % len(square)]]
    drawn = {s: [pools[s][i] for i in draw_images(len(pools[s]), per_participant, participant, seed=seed,
                                                  source_index=sources.index(s))]
             for s in sources}
    plan = [drawn[s][r] for r in range(per_participant) for s in order]
    return plan, order
