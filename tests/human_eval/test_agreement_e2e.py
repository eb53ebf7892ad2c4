"""Metric <-> human agreement end to end: pipeline image sets -> images.csv -> import -> per-image metrics,
correlations, generator ranking and the ``harness human agreement`` command; realism score vs closed form."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.errors import DataError
from harness.features.radiomics import DIM
from harness.runner import RunRequest, run
from harness.store import Store
from human_eval.agreement import generator_agreement, metric_agreement, per_image_long, per_image_metrics, realism_scores
from human_eval.db import import_study, load_study
from human_eval.report import build_report
from human_eval.schema import read_study

N = 12


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          env=os.environ, timeout=300)


def _write_study(folder: Path, real_dir: Path, label_dir: Path, *, relative: bool = True) -> tuple[Path, Path]:
    """images.csv (relative paths into the two image sets) + ratings.csv where real images rate higher."""
    rows = []
    for source, d in (("Real", real_dir), ("labelmap", label_dir)):  # "Real" -> canonical "real"
        for f in sorted(d.glob("*.png"))[:N]:
            p = os.path.relpath(f, folder) if relative else str(f)
            rows.append({"image_id": f"{source.lower()}-{f.stem}", "source": source, "path": p})
    images = pd.DataFrame(rows)
    rng = np.random.default_rng(0)
    ratings = []
    for pid in ("p1", "p2", "p3"):
        for r in rows:
            base = 4 if r["source"] == "Real" else 2
            ratings.append({"participant_id": pid, "image_id": r["image_id"], "source": r["source"],
                            "rating": int(np.clip(base + rng.integers(-1, 2), 1, 5))})
    images_csv, ratings_csv = folder / "images.csv", folder / "ratings.csv"
    images.to_csv(images_csv, index=False)
    pd.DataFrame(ratings).to_csv(ratings_csv, index=False)
    return ratings_csv, images_csv


@pytest.fixture
def study(tmp_path):
    real = run(RunRequest(generator="real", tasks=["fid"], features="radiomics", n=N))
    label = run(RunRequest(generator="labelmap", tasks=["fid"], features="radiomics", n=N))
    folder = tmp_path / "study"
    folder.mkdir()
    ratings_csv, images_csv = _write_study(folder, real.imageset / "images", label.imageset / "images")
    store = Store()
    # stored paths are relative to the images.csv folder: store them resolved, as an importer would
    tables = read_study(ratings_csv, None, images_csv)
    tables.images["path"] = [str((folder / p).resolve()) for p in tables.images["path"]]
    import_study(store, tables, "e2e")
    return {"store": store, "folder": folder, "real": real, "label": label, "images_csv": images_csv,
            "ratings_csv": ratings_csv}


def test_realism_score_matches_closed_form():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(7, 3))
    q = rng.normal(size=(5, 3))
    k = 2
    d_rr = np.sqrt(((ref[:, None] - ref[None]) ** 2).sum(-1))
    radii = np.sort(d_rr, axis=1)[:, k]  # column 0 is the point itself
    d_qr = np.sqrt(((q[:, None] - ref[None]) ** 2).sum(-1))
    expected = (radii[None, :] / d_qr).max(axis=1)
    realism, nn = realism_scores(q, ref, k=k)
    np.testing.assert_allclose(realism, expected, rtol=1e-10)
    np.testing.assert_allclose(nn, d_qr.min(axis=1), rtol=1e-10)
    # leave-one-out for a query that is reference point 3
    realism2, nn2 = realism_scores(ref[3:4], ref, k=k, self_index=np.array([3]))
    others = np.delete(np.arange(7), 3)
    assert realism2[0] == pytest.approx((radii[others] / d_rr[3, others]).max())
    assert nn2[0] == pytest.approx(d_rr[3, others].min())
    # a point at the centre of a ball of radius r has score inf; one at distance 2r of the only ball, 0.5
    r2, _ = realism_scores(np.array([[2.0, 0.0]]), np.array([[0.0, 0.0], [1.0, 0.0]]), k=1)
    assert r2[0] == pytest.approx(1.0)  # max(1/2, 1/1)
    with pytest.raises(DataError, match="k \\+ 1"):
        realism_scores(q, ref[:2], k=2)


def test_agreement_end_to_end(study):
    store = study["store"]
    tables = load_study(store, "e2e")
    assert set(tables.ratings["source"]) == {"real", "labelmap"}
    per = per_image_metrics(tables.images, k=3)
    assert len(per) == 2 * N and set(per["image_id"]) == set(tables.images["image_id"])
    assert per[["chroma", "realism_score", "nn_distance_to_reference"]].notna().all().all()
    assert np.isfinite(per["realism_score"]).all()
    # labelmap images are farther from the real images than the real ones are from each other
    by = per.groupby("source")
    assert by["nn_distance_to_reference"].median()["labelmap"] > by["nn_distance_to_reference"].median()["real"]
    assert by["realism_score"].median()["real"] > by["realism_score"].median()["labelmap"]
    assert set(per_image_long(per)["metric"]) == {"chroma", "realism_score", "nn_distance_to_reference"}

    ma = metric_agreement(tables, per).set_index("metric")
    for m in ("realism_score", "nn_distance_to_reference"):
        assert np.isfinite(ma.loc[m, "spearman_rho"]) and np.isfinite(ma.loc[m, "kendall_tau"])
        assert ma.loc[m, "n_images"] == 2 * N
    assert ma.loc["realism_score", "spearman_rho"] > 0 > ma.loc["nn_distance_to_reference", "spearman_rho"]

    summary, pairs = generator_agreement(store, tables)
    fd = summary.set_index("metric").loc["FD_radiomics"]
    assert fd["best_by_metric"] == "real" and fd["best_by_humans"] == "real"
    assert fd["kendall_tau"] == pytest.approx(1.0) and fd["n_generators"] == 2
    assert pairs[pairs["metric"] == "FD_radiomics"]["agree"].all()

    path = build_report(tables, study["folder"] / "report", figures=False, n_perm=99, n_boot=50)
    text = path.read_text()
    assert "Agreement: per-image metric vs mean rating" in text and "realism_score" in text


def test_relative_paths_resolve_against_images_csv_folder(study):
    tables = read_study(study["ratings_csv"], None, study["images_csv"])
    assert not Path(tables.images["path"].iloc[0]).is_absolute()
    per = per_image_metrics(tables.images, base_dir=study["folder"], reference_features=np.random.default_rng(0)
                            .normal(size=(5, DIM)), cache=False)
    assert len(per) == 2 * N and per["realism_score"].notna().all()


def test_cli_agreement_table_and_missing_file(study, tmp_path):
    out = tmp_path / "agr"
    proc = _cli("human", "agreement", "--study", "e2e", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "FD_radiomics" in proc.stdout and "realism_score" in proc.stdout
    assert {"per_image_metrics.csv", "metric_agreement.csv", "generator_agreement.csv",
            "agreement_scatter.png"} <= {p.name for p in out.iterdir()}
    # the per-image values are kept with the study for the leaderboard's scatter
    from leaderboard import data as lb

    saved = lb.load_study(lb.connect(str(study["store"].url)), "e2e").per_image
    assert set(saved["metric"]) >= {"realism_score", "chroma"} and len(saved) > 0

    # a study whose images.csv names a file that is not there: exit 2 naming it
    folder = study["folder"]
    images = pd.read_csv(study["images_csv"])
    images.loc[3, "path"] = "nowhere/missing_000.png"
    images.to_csv(study["images_csv"], index=False)
    tables = read_study(study["ratings_csv"], None, study["images_csv"])
    tables.images["path"] = [str((folder / p).resolve()) for p in tables.images["path"]]
    import_study(study["store"], tables, "broken")
    proc = _cli("human", "agreement", "--study", "broken")
    assert proc.returncode == 2, proc.stderr
    assert "missing_000.png" in proc.stderr and images.loc[3, "image_id"] in proc.stderr


def test_cli_reference_folder_json(study):
    import json

    ref_dir = study["real"].imageset / "images"
    proc = _cli("human", "agreement", "--study", "e2e", "--reference", f"folder:{ref_dir}", "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    per = pd.DataFrame(payload["per_image"])
    assert len(per) == 2 * N
    # the real images are themselves in the reference folder: distance 0 (a memorised copy), realism inf
    assert (per.loc[per["source"] == "real", "nn_distance_to_reference"] == 0).all()
    assert (per.loc[per["source"] == "labelmap", "nn_distance_to_reference"] > 0).all()
    assert {r["metric"] for r in payload["metric_agreement"]} >= {"realism_score", "nn_distance_to_reference"}
    bad = _cli("human", "agreement", "--study", "e2e", "--reference", "phantom:test")
    assert bad.returncode == 2 and "folder:DIR" in bad.stderr


def test_generator_agreement_paper_headline_from_store():
    """Stored FIDs of the paper (generator 'sd-lora' maps to source 'sd') vs the example study's ratings:
    FID ranks CycleGAN first, clinicians SD; tau = -1/3 over the three synthetic sources."""
    from human_eval.examples import make_example_study
    from human_eval.schema import study_from_frames

    store = Store()
    for gen, fid in (("cyclegan", 999.0), ("cyclegan", 75.13), ("cut", 146.99), ("sd-lora", 168.59)):
        rid = store.start_run(generator=gen, data_source="echonet", n=10, seed=0)  # newest result per source wins
        store.finish_run(rid, [dict(task="fid", metric="FID", value=fid, feature_space="inception",
                                    higher_is_better=False),
                               dict(task="diversity", metric="precision", value=0.5, feature_space="radiomics",
                                    higher_is_better=True)])
    tables = study_from_frames(*make_example_study(0))
    summary, pairs = generator_agreement(store, tables, exclude=("real",))
    s = summary.set_index("metric").loc["FID"]
    assert s["best_by_metric"] == "cyclegan" and s["best_by_humans"] == "sd"
    assert s["kendall_tau"] == pytest.approx(-1 / 3) and s["sources"] == "cut,cyclegan,sd"
    assert pairs.loc[pairs["metric"] == "FID", "agree"].sum() == 1
    assert "precision[radiomics]" in set(summary["metric"])  # ties everywhere: tau undefined, not an error
