"""Memorisation: exact nearest neighbours vs sklearn, copies found, authenticity rule, bad input, task."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import DataError, UsageError
from tasks import memorization as mem
from tasks.base import TaskContext


def test_nearest_neighbours_equal_sklearn():
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(0)
    q, b = rng.standard_normal((70, 5)), rng.standard_normal((90, 5))
    d, i = mem.nearest_neighbours(q, b, block=16)
    rd, ri = NearestNeighbors(n_neighbors=1).fit(b).kneighbors(q)
    np.testing.assert_allclose(d, rd[:, 0], atol=1e-9)
    assert (i == ri[:, 0]).all()
    ds, is_ = mem.nearest_neighbours(b, b, exclude_self=True, block=16)
    rd2, ri2 = NearestNeighbors(n_neighbors=2).fit(b).kneighbors(b)
    np.testing.assert_allclose(ds, rd2[:, 1], atol=1e-9)


def test_copies_found_and_authenticity_rule():
    rng = np.random.default_rng(1)
    train, ref = rng.standard_normal((200, 8)), rng.standard_normal((100, 8))
    gen = rng.standard_normal((100, 8))
    gen[:5] = train[[3, 10, 50, 77, 150]]  # exact copies
    gen[5] = train[20] + 1e-3  # a near-copy
    res = mem.memorization(gen, train, ref)
    assert np.flatnonzero(res.flagged).tolist() == [0, 1, 2, 3, 4, 5]
    assert res.nearest[:5].tolist() == [3, 10, 50, 77, 150] and res.details["exact_copies"] == 5
    assert res.value == pytest.approx(0.06) and res.ci_low < 0.06 < res.ci_high
    # authenticity by brute force on the standardised features
    mu, sd = train.mean(0), train.std(0)
    z = lambda x: (x - mu) / sd
    dtt = np.linalg.norm(z(train)[:, None] - z(train)[None], axis=2)
    np.fill_diagonal(dtt, np.inf)
    dgt = np.linalg.norm(z(gen)[:, None] - z(train)[None], axis=2)
    j = dgt.argmin(1)
    assert res.authenticity == pytest.approx(float((dgt.min(1) > dtt.min(1)[j]).mean()))


def test_reference_overlapping_training_does_not_collapse_the_threshold(caplog):
    rng = np.random.default_rng(2)
    train, ref = rng.standard_normal((300, 8)), rng.standard_normal((100, 8))
    gen = rng.standard_normal((100, 8))
    gen[:5] = train[[3, 10, 50, 77, 150]]
    gen[5] = train[20] + 1e-3
    clean = mem.memorization(gen, train, ref)
    ref[:10] = train[200:210]  # 10 % of the "held-out" set is training data
    leaky = mem.memorization(gen, train, ref)
    assert leaky.details["reference_in_training"] == 10 and not leaky.details["degenerate_threshold"]
    assert leaky.threshold > 0.5 * clean.threshold
    assert np.flatnonzero(leaky.flagged).tolist() == [0, 1, 2, 3, 4, 5]
    assert "also in the training set" in caplog.text
    ref[:95] = train[100:195]
    with pytest.raises(DataError, match="not in the training set"):
        mem.memorization(gen, train, ref)


def test_bad_input():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 4))
    with pytest.raises(DataError, match="at least 20"):
        mem.memorization(x, x, x[:10])
    with pytest.raises(DataError, match="dimensions differ"):
        mem.memorization(x, x[:, :3], x)
    with pytest.raises(UsageError):
        mem.memorization(x, x, x, quantile=0.0)


def test_task_needs_training_set_and_writes_gallery(tmp_path):
    rng = np.random.default_rng(3)
    train_imgs = [rng.integers(0, 255, (24, 24), dtype=np.uint8) for _ in range(40)]
    gen_imgs = [train_imgs[7]] + [rng.integers(0, 255, (24, 24), dtype=np.uint8) for _ in range(29)]
    f = lambda ims: np.stack([im.reshape(-1)[:16].astype(float) for im in ims])
    ctx = TaskContext(feature_space="radiomics", rng=np.random.default_rng(0), gen_features=f(gen_imgs),
                      ref_features=f([rng.integers(0, 255, (24, 24), dtype=np.uint8) for _ in range(30)]),
                      gen_images=lambda: gen_imgs, artifacts_dir=tmp_path)
    with pytest.raises(UsageError, match="--train-data"):
        mem.MemorizationTask().evaluate(ctx)
    ctx.train_features, ctx.train_images = f(train_imgs), lambda: train_imgs
    res = {r.metric: r for r in mem.MemorizationTask(top_k=4).evaluate(ctx)}
    assert res["near_copy_fraction"].details["flagged_indices"] == [0]
    assert set(res) == {"near_copy_fraction", "authenticity", "train_nn_distance_ratio"}
    assert ctx.artifacts["memorization_gallery"].exists() and ctx.artifacts["memorization_per_image"].exists()
