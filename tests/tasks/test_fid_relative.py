"""Relative FD (FD / real-vs-real FD): the formula against clean-fid on the same halves, the noise floor on
Gaussians, and the phantom check: `real` vs its reference covers 1, `labelmap` is far above."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from harness.errors import DataError
from tasks import fid
from tasks.base import TaskContext


def _cleanfid(a, b):
    from cleanfid.fid import frechet_distance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)))


def test_value_is_the_ratio_of_two_cleanfid_distances():
    rng = np.random.default_rng(0)
    gen, ref = rng.standard_normal((150, 6)) + 0.4, rng.standard_normal((200, 6))
    res = fid.relative_fd(gen, ref, rng=3, n_boot=0)
    # the same split and subsample, by hand
    split_rng, sub_rng, _ = np.random.default_rng(3).spawn(3)
    g, r = fid._canonical(gen), fid._canonical(ref)
    perm = split_rng.permutation(200)
    a, b = r[np.sort(perm[:100])], r[np.sort(perm[100:])]
    g_m = g[np.sort(sub_rng.choice(150, 100, replace=False))]
    assert res.details["m"] == 100 and res.details["half_a"] == res.details["half_b"] == 100
    assert res.details["fd_gen"] == pytest.approx(_cleanfid(g_m, b), rel=1e-8)
    assert res.details["fd_real_real"] == pytest.approx(_cleanfid(a, b), rel=1e-8)
    assert res.value == pytest.approx(_cleanfid(g_m, b) / _cleanfid(a, b), rel=1e-8)


def test_gaussian_noise_floor_and_shift():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((600, 8))
    same = fid.relative_fd(rng.standard_normal((300, 8)), ref, rng=0, n_boot=200)
    far = fid.relative_fd(rng.standard_normal((300, 8)) + 0.5, ref, rng=0, n_boot=200)
    assert same.ci_low < 1 < same.ci_high
    assert far.ci_low > 5 and far.value > 10 * same.value
    with pytest.raises(DataError, match="halves of ≥ 2"):
        fid.relative_fd(ref[:10], ref[:3])
    with pytest.raises(DataError, match="FD 0"):
        fid.relative_fd(ref[:10], np.ones((10, 8)))


@pytest.fixture(scope="module")
def phantom_features():
    """Radiomics features of 64-px phantom images: reference split (400), held-out real (200), label maps (120)."""
    from generators.labelmap import LabelMapGenerator
    from harness.data.phantom import PhantomSource
    from harness.registry import features

    src = PhantomSource(size=64)
    ext = features.get("radiomics")()

    def feats(batches):
        return ext.extract_batch([im for b in batches for im in b.images])

    ref = feats(src.iter_batches("reference", 400))
    real = feats(src.iter_batches("test", 200))
    lab = feats(LabelMapGenerator(data=src).sample(120, seed=0))
    return ref, real, lab


@pytest.mark.slow
def test_phantom_real_covers_one_labelmap_far_above(phantom_features):
    ref, real, lab = phantom_features
    ext_space = "radiomics"
    out = {}
    for name, gen in (("real", real), ("labelmap", lab)):
        ctx = TaskContext(feature_space=ext_space, rng=np.random.default_rng(0), gen_features=gen, ref_features=ref)
        res = {r.metric: r for r in fid.FIDTask(metrics="fid,fid_rel", n_boot=100).evaluate(ctx)}
        out[name] = res["FD_radiomics_rel"]
        assert set(res) == {"FD_radiomics", "FD_radiomics_rel"}
    assert out["real"].ci_low < 1 < out["real"].ci_high, out["real"]
    assert out["labelmap"].ci_low > 5 * out["real"].ci_high, out["labelmap"]


def test_task_can_turn_it_off_and_other_numbers_do_not_change():
    rng = np.random.default_rng(2)
    gen, ref = rng.standard_normal((60, 4)), rng.standard_normal((80, 4))

    def run(**kw):
        ctx = TaskContext(feature_space="dinov2", rng=np.random.default_rng(5), gen_features=gen, ref_features=ref)
        return {r.metric: r for r in fid.FIDTask(n_boot=20, kid_subsets=5, **kw).evaluate(ctx)}

    on, off = run(), run(metrics="fid,fid_inf,kid")
    assert set(on) - set(off) == {"FD_dinov2_rel"}
    assert on["FD_dinov2"].ci_low == off["FD_dinov2"].ci_low and on["KD_dinov2"].value == off["KD_dinov2"].value
