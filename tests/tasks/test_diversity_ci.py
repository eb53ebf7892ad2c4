"""Diversity on reference-standardised features (against prdc / vendi-score on the same standardised features)
and its bootstrap intervals."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from tasks import diversity
from tasks.base import TaskContext


def _sets(seed=0):
    rng = np.random.default_rng(seed)
    scale = np.array([1000.0, 1.0, 0.01, 5.0, 1.0, 1.0])  # one feature dominates raw Euclidean distances
    ref = rng.standard_normal((60, 6)) * scale + 3.0
    gen = rng.standard_normal((50, 6)) * scale * 1.2 + 3.0 + 0.3 * scale
    return gen, ref


def test_standardise_uses_the_reference_statistics():
    gen, ref = _sets()
    z_ref, z_gen = diversity.standardise(ref, gen)
    np.testing.assert_allclose(z_ref.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z_ref.std(0, ddof=1), 1, atol=1e-12)
    np.testing.assert_allclose(z_gen, (gen - ref.mean(0)) / ref.std(0, ddof=1))
    const = np.c_[ref, np.full(len(ref), 7.0)]
    z, = diversity.standardise(const)
    assert np.all(z[:, -1] == 0)  # a constant reference feature is centred, not divided by 0


def test_task_equals_prdc_and_vendi_score_on_standardised_features():
    import prdc
    from vendi_score import vendi as vs

    gen, ref = _sets(1)
    z_ref, z_gen = diversity.standardise(ref, gen)
    with contextlib.redirect_stdout(io.StringIO()):
        want = prdc.compute_prdc(z_ref, z_gen, 5)
    ctx = TaskContext(feature_space="radiomics", rng=np.random.default_rng(0), gen_features=gen, ref_features=ref)
    res = {r.metric: r for r in diversity.DiversityTask(k=5, n_boot=100).evaluate(ctx)}
    for name in ("precision", "recall", "density", "coverage"):
        assert res[name].value == pytest.approx(want[name], abs=1e-12)
        assert res[name].ci_low <= res[name].value <= res[name].ci_high
        assert res[name].details["features"].startswith("standardised")
    # Vendi: each set centred on its own mean (default), then the vendi-score package's cosine-kernel score
    assert res["vendi"].value == pytest.approx(vs.score_X(z_gen - z_gen.mean(0)), rel=1e-9)
    assert res["vendi_reference"].value == pytest.approx(vs.score_X(z_ref - z_ref.mean(0)), rel=1e-9)
    assert res["vendi"].details["centred"] is True
    assert res["vendi"].ci_low < res["vendi"].value < res["vendi"].ci_high
    raw = {r.metric: r.value for r in diversity.DiversityTask(k=5, n_boot=0, standardise=False).evaluate(ctx)}
    assert raw["vendi"] == pytest.approx(vs.score_X(gen - gen.mean(0)), rel=1e-9)
    package = {r.metric: r.value for r in diversity.DiversityTask(k=5, n_boot=0, vendi_center=False).evaluate(ctx)}
    assert package["vendi"] == pytest.approx(vs.score_X(z_gen), rel=1e-9)  # the package's convention, on request


def test_vendi_of_a_set_far_from_the_reference_keeps_its_diversity():
    """The phenomenon behind the default: shifted 20 reference SDs away, a diverse set keeps its centred Vendi
    (translation invariance) while the uncentred score collapses towards 1; a collapsed set stays near 1 either way."""
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(300, 16))
    diverse = rng.normal(size=(300, 16)) + 20.0
    collapsed = rng.normal(scale=0.05, size=(300, 16)) + rng.normal(size=16) * 0.05 + 20.0
    collapsed[:, 0] += rng.normal(size=300)  # one direction of variation only
    ctx = lambda g: TaskContext(feature_space="x", rng=np.random.default_rng(0), gen_features=g, ref_features=ref)  # noqa: E731
    v = {name: {r.metric: r.value for r in diversity.DiversityTask(n_boot=0, **kw).evaluate(ctx(g))}["vendi"]
         for name, g, kw in (("diverse", diverse, {}), ("collapsed", collapsed, {}),
                             ("diverse_uncentred", diverse, {"vendi_center": False}))}
    assert v["diverse"] == pytest.approx(diversity.vendi(ref, center=True).value, rel=0.15)  # ≈ the reference's
    assert v["diverse_uncentred"] < 1.1 and v["collapsed"] < v["diverse"] / 3  # measured: 1.02; 3.0 vs 15.5


def test_prdc_bootstrap_replicates_by_hand():
    gen, ref = _sets(2)
    pr = diversity.prdc(ref, gen, 5)
    got = diversity.prdc_bootstrap(pr, rng=np.random.default_rng(3), n_boot=1, ci=0.5)
    rng = np.random.default_rng(3)
    fi = rng.integers(0, len(gen), (1, len(gen)))
    ri = rng.integers(0, len(ref), (1, len(ref)))
    counts = pr.per_point["fake_counts"][fi[0]]
    assert got["precision"][0] == pytest.approx((counts > 0).mean())
    assert got["density"][0] == pytest.approx(counts.mean() / 5)
    assert got["recall"][0] == pytest.approx(pr.per_point["real_recalled"][ri[0]].mean())
    assert got["coverage"][0] == pytest.approx(pr.per_point["real_covered"][ri[0]].mean())


@pytest.mark.parametrize("n,d", [(40, 8), (12, 30)])  # covariance and Gram routes
def test_vendi_bootstrap_replicate_equals_vendi_of_the_resample(n, d):
    from vendi_score import vendi as vs

    x = np.random.default_rng(4).standard_normal((n, d))
    lo, hi = diversity.vendi_bootstrap(x, rng=np.random.default_rng(5), n_boot=1, ci=0.5, method="percentile")
    idx = np.random.default_rng(5).integers(0, n, n)
    assert lo == pytest.approx(vs.score_X(x[idx]), rel=1e-9) and lo == pytest.approx(hi)
    lo, hi = diversity.vendi_bootstrap(x, rng=np.random.default_rng(5), n_boot=50)  # centred on the estimate
    v = vs.score_X(x)
    assert lo < v < hi and (v - lo) / (hi - lo) == pytest.approx(0.5, abs=0.3)
