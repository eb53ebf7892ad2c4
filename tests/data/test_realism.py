"""``harness data realism``: FD_radiomics of the phantom to real statistics (here: statistics we make)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from harness.commands.data_realism import default_stats_candidates, load_real_stats, realism, resolve_stats
from harness.data.phantom import PhantomSource
from harness.errors import DataError
from harness.features.radiomics import feature_names, radiomics_features
from tasks.fid_math import frechet_distance

N, SIZE = 24, 64


@pytest.fixture(scope="module")
def own_stats(tmp_path_factory):
    """Statistics of the phantom's own test images: FD of the same images to them is 0."""
    images = next(PhantomSource(size=SIZE).iter_batches("test", N)).images
    f = np.stack([radiomics_features(im) for im in images])
    path = tmp_path_factory.mktemp("stats") / "real-a4c-radiomics-stats.npz"
    np.savez(path, mu=f.mean(0), sigma=np.cov(f, rowvar=False), n=N, names=np.array(feature_names()))
    return path, f


def test_realism_matches_frechet_distance(own_stats):
    path, f = own_stats
    rows = {r.source: r for r in realism(path, n=N, size=SIZE)}
    assert rows["phantom"].fd_radiomics == pytest.approx(0.0, abs=1e-6)
    assert rows["phantom"].mean_term == pytest.approx(0.0, abs=1e-12)
    lab = rows["labelmap"]
    assert lab.fd_radiomics > 0.5 and lab.n == N and lab.ratio_to_floor == pytest.approx(lab.fd_radiomics / 0.43)
    other = realism(path, n=N, size=SIZE, seed=1)[0]  # other patients: a positive distance
    g = np.stack([radiomics_features(im) for im in next(PhantomSource(size=SIZE, seed=1).iter_batches("test", N)).images])
    expected = frechet_distance(g.mean(0), np.cov(g, rowvar=False), f.mean(0), np.cov(f, rowvar=False))
    assert other.fd_radiomics == pytest.approx(expected, rel=1e-9) and other.fd_radiomics > 0


def test_stats_lookup_and_errors(tmp_path, monkeypatch, own_stats):
    monkeypatch.setenv("ECHOBENCH_REAL_STATS", str(own_stats[0]))
    assert default_stats_candidates()[0] == own_stats[0] and resolve_stats(None) == own_stats[0]
    with pytest.raises(DataError, match="no such file"):
        resolve_stats(tmp_path / "missing.npz")
    repo = tmp_path / "wt" / "repo"
    assert tmp_path / "wt" / "shared" / "data" / "real-a4c-radiomics-stats.npz" in default_stats_candidates(repo)
    bad = tmp_path / "bad.npz"
    np.savez(bad, mu=np.zeros(3), sigma=np.eye(3), names=np.array(["a", "b", "c"]))
    with pytest.raises(DataError, match="another feature definition"):
        load_real_stats(bad)


def test_cli_json_and_missing_stats(own_stats, tmp_path):
    env = {**os.environ, "ECHOBENCH_REAL_STATS": str(own_stats[0])}
    cmd = [sys.executable, "-m", "harness", "data", "realism", "--n", "8", "--size", "48", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["source"] for r in rows] == ["phantom", "labelmap"] and all(r["fd_radiomics"] > 0 for r in rows)
    proc = subprocess.run(cmd[:-1] + ["--stats", str(tmp_path / "nope.npz")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "nope.npz" in proc.stderr and "Traceback" not in proc.stderr
