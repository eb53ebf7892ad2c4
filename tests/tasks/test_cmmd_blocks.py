"""CMMD audit (issue 18): the blockwise paths checked against an independent full-matrix computation, not only
against the same code with one big block. Multi-block sums (unequal N and M, sizes not multiples of the block),
every bootstrap replicate, the same-set path (exactly 0, its interval from the full kernel matrix), bad input."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import DataError, EchoBenchError
from tasks.cmmd import cmmd, rbf_kernel_sums
from tasks.fid import _boot_weights, _canonical, _rng
from tests.tasks.test_cmmd import emb, reference_mmd


def full_kernel(x: np.ndarray, y: np.ndarray, sigma: float = 10.0) -> np.ndarray:
    """exp(−‖x−y‖²/(2σ²)) from scipy's pairwise distances (an independent route to the kernel matrix)."""
    from scipy.spatial.distance import cdist

    return np.exp(-cdist(x, y, "sqeuclidean") / (2 * sigma**2))


def replicates_by_hand(g: np.ndarray, r: np.ndarray, n_boot: int, seed: int, scale: float = 1000.0) -> np.ndarray:
    """Every bootstrap replicate: the reference formula on the resampled generated rows (reference fixed)."""
    gc = _canonical(g)
    w = _boot_weights(_rng(seed), len(gc), n_boot)
    return np.array([reference_mmd(np.repeat(gc, wb, axis=0), r, scale=scale) for wb in w])


@pytest.mark.parametrize("block", [1, 5, 16, 33])
def test_multi_block_sums_equal_the_full_kernel_matrix(block):
    g, r = emb(41, d=12, seed=11), emb(29, d=12, shift=0.2, seed=12)
    w = np.random.default_rng(0).integers(0, 3, (4, 41)).astype(float)
    s = rbf_kernel_sums(g, r, w, sigma=0.7, block=block)  # small sigma: kernel entries far from 1
    kgg, krr, kgr = full_kernel(g, g, 0.7), full_kernel(r, r, 0.7), full_kernel(g, r, 0.7)
    np.testing.assert_allclose(s["gg"], np.einsum("vi,ij,vj->v", w, kgg, w), rtol=1e-12)
    assert s["rr"] == pytest.approx(krr.sum(), rel=1e-12)
    np.testing.assert_allclose(s["gr_rows"], kgr.sum(axis=1), rtol=1e-12)
    assert not s["same_sets"]


@pytest.mark.parametrize("block", [1, 6, 50])
def test_blockwise_value_and_every_replicate_equal_the_reference_code(block):
    g, r = emb(37, d=16, shift=0.25, seed=13), emb(45, d=16, seed=14)
    res = cmmd(g, r, n_boot=40, rng=3, block=block, ci_method="percentile", sigma=10.0)
    assert res.value == pytest.approx(reference_mmd(g, r), rel=1e-9)
    reps = replicates_by_hand(g, r, 40, 3)
    lo, hi = np.percentile(reps, [2.5, 97.5])
    assert res.details["boot_mean"] == pytest.approx(reps.mean(), rel=1e-9)
    assert (res.ci_low, res.ci_high) == pytest.approx((lo, hi), rel=1e-9)


@pytest.mark.parametrize("block", [1, 7, 64])
def test_same_set_is_zero_and_its_interval_comes_from_the_full_kernel(block):
    """The same-set shortcut (K(gen, ref) = K(gen, gen)) with several blocks: value exactly 0, and the replicates
    w'Kw/N² + mean K − 2 w'K1/N² from the full matrix."""
    g = emb(50, d=10, seed=15)
    res = cmmd(g, g[::-1].copy(), n_boot=30, rng=4, block=block, ci_method="percentile")
    assert res.value == 0.0 and res.details["same_sets"]
    gc = _canonical(g)
    k = full_kernel(gc, gc)
    w = _boot_weights(_rng(4), 50, 30)
    reps = 1000.0 * (np.einsum("vi,ij,vj->v", w, k, w) / 50**2 + k.mean() - 2 * (w @ k.sum(axis=1)) / 50**2)
    np.testing.assert_allclose(reps, replicates_by_hand(g, g, 30, 4), rtol=1e-9)  # the shortcut is the formula
    assert res.details["boot_mean"] == pytest.approx(reps.mean(), rel=1e-9)
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(np.percentile(reps, [2.5, 97.5])), rel=1e-9)
    assert res.ci_low >= 0  # resampling repeats images: replicates are ≥ 0 here (MMD² of a V-statistic)


def test_scale_is_exactly_linear_with_blocks():
    g, r = emb(30, d=8, seed=16), emb(30, d=8, shift=0.3, seed=17)
    one = cmmd(g, r, n_boot=0, block=4, scale=1.0).value
    for scale in (1000.0, 0.5, 7e4):
        assert cmmd(g, r, n_boot=0, block=4, scale=scale).value == pytest.approx(scale * one, rel=1e-12)
    assert one == pytest.approx(reference_mmd(g, r, scale=1.0), rel=1e-9)


@pytest.mark.parametrize("bad", ["nan_ref", "inf_gen", "d_mismatch", "one_row", "3d"])
def test_bad_features_are_exit_2_errors_naming_the_problem(bad):
    g, r = emb(12, d=6, seed=1), emb(12, d=6, seed=2)
    if bad == "nan_ref":
        r[7, 1] = np.nan
        match = r"reference features.*non-finite.*row 7"
    elif bad == "inf_gen":
        g[2, 0] = np.inf
        match = r"generated features.*non-finite.*row 2"
    elif bad == "d_mismatch":
        r = emb(12, d=5, seed=2)
        match = r"feature dimensions differ: generated features have d=6, reference d=5"
    elif bad == "one_row":
        g = g[:1]
        match = "generated features"
    else:
        g = g.reshape(12, 2, 3)
        match = "generated features"
    with pytest.raises(DataError, match=match) as info:
        cmmd(g, r, n_boot=0)
    assert isinstance(info.value, EchoBenchError) and info.value.exit_code == 2
    assert "\n" not in str(info.value)


def test_python_api_beside_the_fid_family():
    """``tasks.cmmd.cmmd(gen, ref, *, rng=None, n_boot, sigma=10, scale=1000)`` returns the FID family's dataclass;
    rng=None is a fixed seed (reruns identical), float32 input gives the float64 value."""
    import inspect

    from tasks.fid import DistanceResult

    sig = inspect.signature(cmmd)
    assert sig.parameters["sigma"].default == 10.0 and sig.parameters["scale"].default == 1000.0
    assert sig.parameters["rng"].default is None and sig.parameters["rng"].kind is inspect.Parameter.KEYWORD_ONLY
    g, r = emb(40, d=8, seed=21), emb(40, d=8, shift=0.2, seed=22)
    a, b = cmmd(g, r, n_boot=30), cmmd(g, r, n_boot=30)
    assert isinstance(a, DistanceResult) and (a.value, a.ci_low, a.ci_high) == (b.value, b.ci_low, b.ci_high)
    assert a.n == 40 and a.details["n_ref"] == 40 and a.details["d"] == 8
    f32 = cmmd(g.astype(np.float32), r.astype(np.float32), n_boot=0).value
    assert f32 == pytest.approx(reference_mmd(g.astype(np.float32).astype(np.float64),
                                              r.astype(np.float32).astype(np.float64)), rel=1e-9)
