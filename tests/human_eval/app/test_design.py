"""Balanced Latin square (Williams) and the seeded draws, checked against their defining properties."""

from __future__ import annotations

from collections import Counter

import pytest

from harness.errors import UsageError
from human_eval.app.design import balanced_latin_square, draw_images, participant_plan


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_williams_square_is_latin_and_carryover_balanced(k):
    rows = balanced_latin_square(k)
    assert len(rows) == (k if k % 2 == 0 else 2 * k)
    for row in rows:
        assert sorted(row) == list(range(k))  # every source once per participant
    for pos in range(k):  # every source equally often in every position
        assert Counter(r[pos] for r in rows) == {s: len(rows) // k for s in range(k)}
    pairs = Counter((r[i], r[i + 1]) for r in rows for i in range(k - 1))
    expected = 1 if k % 2 == 0 else 2  # every ordered pair of distinct sources adjacent equally often
    assert pairs == {(a, b): expected for a in range(k) for b in range(k) if a != b}


def test_known_square_for_four_sources():
    assert balanced_latin_square(4) == [[0, 1, 3, 2], [1, 2, 0, 3], [2, 3, 1, 0], [3, 0, 2, 1]]


def test_draws_without_replacement_and_even_coverage():
    pool, m = 40, 10
    draws = [draw_images(pool, m, i, seed=5, source_index=0) for i in range(8)]
    for d in draws:
        assert len(set(d)) == m  # no participant sees an image twice
    first4 = [x for d in draws[:4] for x in d]
    assert sorted(first4) == list(range(pool))  # 4 participants x 10 use the whole pool once
    assert Counter(x for d in draws for x in d) == {x: 2 for x in range(pool)}
    assert draws == [draw_images(pool, m, i, seed=5, source_index=0) for i in range(8)]  # seeded
    assert draws != [draw_images(pool, m, i, seed=6, source_index=0) for i in range(8)]


def test_straddling_draw_has_no_repeats():
    for i in range(20):
        d = draw_images(15, 10, i, seed=1, source_index=2)
        assert len(set(d)) == 10 and all(0 <= x < 15 for x in d)


def test_participant_plan_interleaves_sources_in_square_order():
    pools = {s: [f"{s}{j}" for j in range(10)] for s in ("sd", "real", "cut", "cyclegan")}
    plan, order = participant_plan(pools, 3, 1, seed=0)
    assert order == ["cyclegan", "real", "cut", "sd"]  # row 1 of the square over sorted sources
    assert [x.rstrip("0123456789") for x in plan] == order * 3
    assert len(set(plan)) == 12


def test_pool_smaller_than_the_draw_is_an_error():
    with pytest.raises(UsageError, match="pool has only 5"):
        draw_images(5, 10, 0, seed=0, source_index=0)
