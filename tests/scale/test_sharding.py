"""One process vs two (gloo on CPU): the same images, features and metrics (issue #13)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.runner import RunRequest, run
from harness.store import Store
from tests.scale.helpers import cached_features, env_for, harness, leftovers, manifests, metrics


def _compare(tmp_path, one_home, one_cache, one_outcome, two):
    assert two.returncode == 0, two.stderr[-3000:]
    m1, m2 = manifests(one_home), manifests(tmp_path / "two" / "runs")
    # generated set and reference set: same indices and sha256s (compared by generator, not run key)
    assert sorted(m1.values()) == sorted(m2.values()) and len(m1) == 2
    assert sorted(k.split("/")[0] for k in m1) == sorted(k.split("/")[0] for k in m2)
    assert all([i for i, _ in v] == list(range(len(v))) for v in m2.values())  # none missing, none duplicated
    assert not leftovers(tmp_path / "two" / "runs")
    f1, f2 = cached_features(one_cache), cached_features(tmp_path / "two" / "cache")
    assert f1.keys() == f2.keys() and len(f1) == 2
    for name in f1:
        np.testing.assert_allclose(f2[name], f1[name], rtol=1e-5, atol=1e-6)
    one = {r.metric: (r.value, r.ci_low, r.ci_high) for _, r in one_outcome.results}
    got = metrics(two.stdout)
    assert got.keys() == one.keys()
    for k, value in one.items():  # None where no interval is reported (FID∞ at N ≤ d): None on both sides
        assert [g is None for g in got[k]] == [v is None for v in value], k
        assert [g for g in got[k] if g is not None] == pytest.approx([v for v in value if v is not None], rel=1e-6)
    runs = Store(env_for(tmp_path / "two")["ECHOBENCH_DB"]).runs()
    assert len(runs) == 1 and runs[0].status == "ok"  # one run row, written once, by rank 0


def test_two_processes_give_the_images_features_and_metrics_of_one(tmp_path):
    args = ["run", "--generator", "labelmap", "--task", "fid", "--features", "radiomics", "--n", "24",
            "--batch-size", "5", "--seed", "3", "--json"]
    one = run(RunRequest(generator="labelmap", tasks=["fid"], features="radiomics", n=24, batch_size=5, seed=3))
    two = harness(*args, "--num-processes", "2", env=env_for(tmp_path / "two"))
    _compare(tmp_path, tmp_path / "runs", tmp_path / "cache", one, two)
    assert "rank" not in two.stdout  # only rank 0 prints results


@pytest.mark.slow
def test_two_processes_match_one_for_a_trained_cyclegan(tmp_path):
    from generators.cyclegan import CycleGANGenerator
    from harness.data.phantom import PhantomSource

    micro = CycleGANGenerator.presets["tiny"].replace(
        netG="unet_32", ngf=4, ndf=4, image_size=32, batch_size=2, n_train=4, n_epochs=1, n_epochs_decay=0,
        save_every=1)
    ckpt = tmp_path / "ckpt"
    CycleGANGenerator().fit(PhantomSource.from_spec("train", size=32)[0], ckpt, micro)
    one = run(RunRequest(generator="cyclegan", tasks=["fid"], features="radiomics", n=16, batch_size=4, checkpoint=ckpt))
    two = harness("run", "--generator", "cyclegan", "--checkpoint", str(ckpt), "--task", "fid", "--features",
                  "radiomics", "--n", "16", "--batch-size", "4", "--json", "--num-processes", "2",
                  env=env_for(tmp_path / "two"))
    _compare(tmp_path, tmp_path / "runs", tmp_path / "cache", one, two)
