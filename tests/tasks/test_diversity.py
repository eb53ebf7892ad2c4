"""Diversity: prdc / Vendi / MS-SSIM against their reference packages, closed forms, bad input."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from harness.errors import DataError
from tasks import diversity
from tasks.base import TaskContext


def _ref_prdc(real, fake, k):
    import prdc

    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        return prdc.compute_prdc(real, fake, k)


@pytest.mark.parametrize("block", [7, 4096])
def test_prdc_equals_reference_package(block):
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((150, 12)), rng.standard_normal((120, 12)) * 1.2 + 0.3
    ours = diversity.prdc(real, fake, 5, block=block)
    ref = _ref_prdc(real, fake, 5)
    for name in ("precision", "recall", "density", "coverage"):
        assert getattr(ours, name) == pytest.approx(float(ref[name]), abs=1e-12), name


def test_prdc_identical_sets_and_disjoint_sets():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 4))
    same = diversity.prdc(x, x.copy(), 3)
    assert same.precision == 1.0 and same.recall == 1.0 and same.coverage == 1.0
    far = diversity.prdc(x, x + 100.0, 3)
    assert far.precision == 0.0 and far.recall == 0.0 and far.density == 0.0 and far.coverage == 0.0


def test_prdc_k_too_large_is_a_clear_error():
    rng = np.random.default_rng(2)
    with pytest.raises(DataError, match=r"k=5.*at least k \+ 1 = 6.*5 real"):
        diversity.prdc(rng.standard_normal((5, 3)), rng.standard_normal((20, 3)), 5)
    with pytest.raises(DataError, match="3-d"):
        diversity.prdc(rng.standard_normal((20, 3)), rng.standard_normal((20, 4)), 2)


def test_vendi_equals_reference_and_dual_spectrum():
    from vendi_score import vendi as ref

    rng = np.random.default_rng(3)
    for n, d in ((40, 10), (10, 40)):
        x = rng.standard_normal((n, d)) + 0.5
        gram = diversity.vendi(x, method="gram")
        cov = diversity.vendi(x, method="covariance")
        assert gram.value == pytest.approx(float(ref.score_X(x)), rel=1e-10)
        assert cov.value == pytest.approx(gram.value, rel=1e-10)  # same non-zero spectrum
        assert diversity.vendi(x).method == ("gram" if n <= d else "covariance")


def test_vendi_closed_forms_and_zero_rows():
    assert diversity.vendi(np.tile([[1.0, 2.0, 3.0]], (8, 1))).value == pytest.approx(1.0)  # all identical
    assert diversity.vendi(np.eye(6) * 3.0).value == pytest.approx(6.0)  # orthogonal: n
    with pytest.raises(DataError, match="zero length"):
        diversity.vendi(np.array([[1.0, 0.0], [0.0, 0.0]]))


@pytest.mark.parametrize("side,win", [(192, 11), (64, 3)])
def test_ms_ssim_equals_pytorch_msssim(side, win):
    from pytorch_msssim import ms_ssim as ref

    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, side, side, generator=g) * 255
    y = (x + torch.randn(3, 1, side, side, generator=g) * 25).clamp(0, 255)
    ours = diversity.ms_ssim(x, y, win=win)
    theirs = ref(x, y, data_range=255, size_average=False, win_size=win)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_ms_ssim_fewer_scales_for_small_images():
    assert diversity.n_scales(256, 256) == 5 and diversity.n_scales(64, 64) == 3 and diversity.n_scales(8, 8) == 0
    x = torch.rand(2, 1, 48, 48) * 255
    assert torch.allclose(diversity.ms_ssim(x, x.clone()), torch.ones(2), atol=1e-5)  # identical → 1


def test_intra_ms_ssim_seeded_and_mixed_sizes():
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 255, (64, 64), dtype=np.uint8) for _ in range(9)] + [np.zeros((80, 70, 3), np.uint8)]
    a = diversity.intra_ms_ssim(images, rng=np.random.default_rng(7), n_pairs=20)
    b = diversity.intra_ms_ssim(images, rng=np.random.default_rng(7), n_pairs=20)
    assert a.value == b.value and a.n_pairs == 20 and a.details["resized"] == 1 and a.details["size"] == [64, 64]
    same = diversity.intra_ms_ssim([images[0]] * 4, rng=np.random.default_rng(0), n_pairs=5)
    assert same.value == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(DataError, match="at least 2"):
        diversity.intra_ms_ssim(images[:1], rng=np.random.default_rng(0))


def test_diversity_task_reports_both_sets():
    rng = np.random.default_rng(5)
    imgs = [rng.integers(0, 255, (40, 40), dtype=np.uint8) for _ in range(12)]
    ctx = TaskContext(feature_space="radiomics", rng=np.random.default_rng(0),
                      gen_features=rng.standard_normal((12, 6)), ref_features=rng.standard_normal((14, 6)),
                      gen_images=lambda: imgs, ref_images=lambda: imgs[::-1])
    res = {r.metric: r for r in diversity.DiversityTask(msssim_pairs=10).evaluate(ctx)}
    assert set(res) == {"precision", "recall", "density", "coverage", "vendi", "vendi_reference", "ms_ssim_intra",
                        "ms_ssim_intra_reference"}
    assert res["precision"].feature_space == "radiomics" and res["ms_ssim_intra"].feature_space == "pixels"
    assert res["vendi"].details["other_set_value"] == res["vendi_reference"].value


def test_diversity_task_numbers_are_prdc_with_reference_as_real():
    rng = np.random.default_rng(6)
    gen, ref = rng.standard_normal((40, 6)) * 1.3 + 0.2, rng.standard_normal((50, 6))
    ctx = TaskContext(feature_space="radiomics", rng=np.random.default_rng(0), gen_features=gen, ref_features=ref)
    res = {r.metric: r.value for r in diversity.DiversityTask(k=5, standardise=False, n_boot=0).evaluate(ctx)}
    ref_vals = _ref_prdc(ref, gen, 5)  # prdc's real = the reference set, fake = the generated set
    for name in ("precision", "recall", "density", "coverage"):
        assert res[name] == pytest.approx(ref_vals[name], abs=1e-12)
    assert res["precision"] != pytest.approx(_ref_prdc(gen, ref, 5)["precision"])  # the roles matter here


def test_both_sets_are_measured_at_the_reference_size_and_scales():
    rng = np.random.default_rng(7)
    gen = [rng.integers(0, 255, (224, 224), dtype=np.uint8) for _ in range(6)]
    ref = [rng.integers(0, 255, (112, 112), dtype=np.uint8) for _ in range(6)]
    ctx = TaskContext(feature_space="radiomics", rng=np.random.default_rng(0), gen_features=rng.standard_normal((6, 3)),
                      ref_features=rng.standard_normal((6, 3)), gen_images=lambda: gen, ref_images=lambda: ref)
    res = {r.metric: r for r in diversity.DiversityTask(msssim_pairs=5).evaluate(ctx)}
    g, r = res["ms_ssim_intra"].details, res["ms_ssim_intra_reference"].details
    assert g["size"] == r["size"] == [112, 112] and g["levels"] == r["levels"] and g["resized"] == 6
    with pytest.raises(DataError, match="dtype float64"):
        diversity.intra_ms_ssim([im / 255.0 for im in gen], rng=np.random.default_rng(0), n_pairs=2)
