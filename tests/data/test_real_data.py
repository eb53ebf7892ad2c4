"""Real data end to end: every data source (phantom, plain folder, folder with split sub-folders, EchoNet-Dynamic,
CAMUS in both releases) through `harness run` from the CLI, with default and explicit reference sets and the default
training set; folder/CAMUS splits; scoring a set against itself; the bad inputs of the real-data sources.

Fixtures are written here (PNG, AVI with OpenCV, NIfTI/MetaImage with SimpleITK): nothing is downloaded.
"""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest

from harness.cli import main
from harness.data.base import DataSpec
from harness.data.camus import patient_split
from harness.data.folder import hash_split
from harness.errors import DataError, UsageError
from harness.io import list_images

SIDE = 32


def cli(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """Run ``harness ARGS`` in-process through the real entry point (its exit-code mapping included)."""
    monkeypatch.setattr(sys, "argv", ["harness", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def results(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def stored_runs():
    from harness.store import Store

    return Store().runs()


def stored_results():
    from sqlalchemy import select

    from harness.store import Result, Store

    with Store().session() as s:
        return list(s.scalars(select(Result)))


# fixtures ----------------------------------------------------------------------------------------------------
def _phantom_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from harness.data.phantom import PhantomSource

    batch = next(PhantomSource(size=SIDE, seed=seed).iter_batches("test", n, batch_size=n))
    return np.asarray(batch.images), batch.label_maps


@pytest.fixture(scope="module")
def folder_sub(tmp_path_factory):
    """A folder with train/ val/ test/ sub-folders (images/ + labelmaps/ inside each)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("folder_sub")
    images, labels = _phantom_images(54, seed=3)
    for k, split in enumerate(("train", "val", "test")):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labelmaps").mkdir()
        for i in range(18):
            Image.fromarray(images[18 * k + i]).save(root / split / "images" / f"{split}{i:03d}.png")
            Image.fromarray(labels[18 * k + i]).save(root / split / "labelmaps" / f"{split}{i:03d}.png")
    return root


def _write_avi(path, n_frames: int, seed: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (SIDE, SIDE))
    rng = np.random.default_rng(seed)
    for _ in range(n_frames):
        writer.write(rng.integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8))
    writer.release()


@pytest.fixture(scope="module")
def echonet(tmp_path_factory):
    """3 videos per split, every one of their 6 frames traced: 18 frames per split."""
    root = tmp_path_factory.mktemp("echonet")
    (root / "Videos").mkdir()
    rows, traces = [], ["FileName,X1,Y1,X2,Y2,Frame"]
    for i, split in enumerate(["TRAIN"] * 3 + ["VAL"] * 3 + ["TEST"] * 3):
        name = f"0X{i:04d}"
        _write_avi(root / "Videos" / f"{name}.avi", 6, i)
        rows.append(f"{name},60,30,70,{SIDE},{SIDE},25,6,{split}")
        for f in range(6):
            traces.append(f"{name}.avi,16,4,16,28,{f}")
            traces += [f"{name}.avi,{16 - 6},{y},{16 + 6},{y},{f}" for y in range(6, 28, 4)]
    (root / "FileList.csv").write_text("FileName,EF,ESV,EDV,FrameHeight,FrameWidth,FPS,NumberOfFrames,Split\n" + "\n".join(rows) + "\n")
    (root / "VolumeTracings.csv").write_text("\n".join(traces) + "\n")
    return root


def _camus_patients() -> dict[str, list[str]]:
    """9 patient names per documented split (the hash split), so either layout has 18 frames per split."""
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for k in range(1, 1000):
        name = f"patient{k:04d}"
        if len(out[patient_split(name)]) < 9:
            out[patient_split(name)].append(name)
    return out


def _write_camus(root, layout: str, *, gt_values=(0, 1, 2, 3), frames_3d: int | None = None) -> None:
    import SimpleITK as sitk

    patients = _camus_patients()
    base = root / ("database_nifti" if layout == "nifti" else "training")
    suffix = ".nii.gz" if layout == "nifti" else ".mhd"
    rng = np.random.default_rng(0)
    for names in patients.values():
        for name in names:
            (base / name).mkdir(parents=True)
            for phase in ("ED", "ES"):
                img = rng.integers(0, 255, (SIDE, SIDE), dtype=np.uint8)
                gt = np.zeros((SIDE, SIDE), np.uint8)
                for v, (r0, r1) in zip(gt_values[1:], ((4, 12), (12, 20), (20, 28))):
                    gt[r0:r1, 8:24] = v
                if frames_3d:
                    img = np.repeat(img[None], frames_3d, axis=0)
                sitk.WriteImage(sitk.GetImageFromArray(img), str(base / name / f"{name}_4CH_{phase}{suffix}"))
                sitk.WriteImage(sitk.GetImageFromArray(gt), str(base / name / f"{name}_4CH_{phase}_gt{suffix}"))
    if layout == "nifti":
        (root / "database_split").mkdir()
        for split, file in (("train", "training"), ("val", "validation"), ("test", "testing")):
            (root / "database_split" / f"subgroup_{file}.txt").write_text("\n".join(patients[split]) + "\n")


@pytest.fixture(scope="module")
def camus_nifti(tmp_path_factory):
    root = tmp_path_factory.mktemp("camus_nifti")
    _write_camus(root, "nifti")
    return root


@pytest.fixture(scope="module")
def camus_mhd(tmp_path_factory):
    root = tmp_path_factory.mktemp("camus_mhd")
    _write_camus(root, "mhd")
    return root


@pytest.fixture(scope="module")
def folder_plain(tmp_path_factory):
    """The issue's scenario: `harness data export phantom --n 40 --out ph40` (images/ + labelmaps/, no splits)."""
    from harness.data.export import export_data
    from harness.data.phantom import PhantomSource

    out = tmp_path_factory.mktemp("ph") / "ph40"
    export_data(PhantomSource(size=SIDE), "test", 40, out)
    return out


SOURCES = {
    "phantom": lambda r: "phantom",
    "folder": lambda r: f"folder:{r['folder_plain']}",
    "folder-splits": lambda r: f"folder:{r['folder_sub']}",
    "echonet": lambda r: f"echonet:{r['echonet']}",
    "camus-nifti": lambda r: f"camus:{r['camus_nifti']}",
    "camus-challenge": lambda r: f"camus:{r['camus_mhd']}",
}
EXPECTED_REFERENCE = {"phantom": "phantom:reference", "folder": "folder:{}@test", "folder-splits": "folder:{}@test",
                      "echonet": "echonet:{}@test", "camus-nifti": "camus:{}@test", "camus-challenge": "camus:{}@test"}


@pytest.fixture(scope="module")
def roots(folder_plain, folder_sub, echonet, camus_nifti, camus_mhd):
    return {"folder_plain": folder_plain, "folder_sub": folder_sub, "echonet": echonet, "camus_nifti": camus_nifti,
            "camus_mhd": camus_mhd}


# every source, from the CLI -----------------------------------------------------------------------------------
@pytest.mark.parametrize("source", list(SOURCES))
def test_every_source_scores_with_default_reference_and_training_set(source, roots, capsys, monkeypatch):
    spec = SOURCES[source](roots)
    n = 16
    rc, out, err = cli(capsys, monkeypatch, "run", "--generator", "real", "--data", spec, "--task", "fid",
                       "--task", "memorization", "--features", "radiomics", "--n", str(n), "--json",
                       "--task-option", "fid.n_boot=20", "--task-option", "memorization.quantile=0.25")
    assert rc == 0, err
    rows = results(out)
    fd = next(r for r in rows if r["metric"] == "FD_radiomics")
    assert np.isfinite(fd["value"]) and fd["feature_space"] == "radiomics"
    (run,) = stored_runs()
    data = DataSpec.parse(spec)
    root = str(data.source.root) if hasattr(data.source, "root") else ""
    assert run.reference == EXPECTED_REFERENCE[source].format(root)  # the default reference keeps the folder
    assert run.config["training_set"]["spec"] == data.source.spec_for(data.source.train_split)
    ref_n = run.config["reference"]["n"]
    stored = next(r for r in stored_results() if r.metric == "FD_radiomics")
    assert stored.details["n_ref"] == ref_n and stored.details["substitute_features"] is False
    # real samples a split disjoint from the reference: the noise floor is not a set against itself
    assert data.source.heldout_split != data.source.reference_split


@pytest.mark.parametrize("source", ["folder-splits", "echonet", "camus-nifti"])
def test_explicit_reference_and_split_selection(source, roots, capsys, monkeypatch):
    spec = SOURCES[source](roots)
    rc, out, err = cli(capsys, monkeypatch, "run", "--generator", "real", "--data", f"{spec}@train", "--reference",
                       f"{spec}@val", "--task", "fid", "--features", "radiomics", "--n", "8", "--json",
                       "--task-option", "fid.n_boot=20")
    assert rc == 0, err
    (run,) = stored_runs()
    assert run.reference.endswith("@val")
    assert run.config["generator"]["name"] == "real"


def test_the_issue_scenario_plain_folder_no_flags(folder_plain, capsys, monkeypatch):
    """`harness run --generator real --data folder:ph40 --task fid --features radiomics` with no other flag."""
    rc, out, err = cli(capsys, monkeypatch, "run", "--generator", "real", "--data", f"folder:{folder_plain}",
                       "--task", "fid", "--features", "radiomics", "--json", "--task-option", "fid.n_boot=20")
    assert rc == 0, err
    fd = next(r for r in results(out) if r["metric"] == "FD_radiomics")
    n_train = sum(hash_split(p.name) == "train" for p in list_images(folder_plain / "images"))
    assert fd["n"] == n_train  # real sampled the whole train split; the reference is the test split


# splits ---------------------------------------------------------------------------------------------------------
def test_folder_hash_split_is_deterministic_disjoint_and_all_reads_all(folder_plain):
    # pinned assignments: the split is sha256(file name) based, the same on every machine
    import hashlib

    names = [f"{i:06d}.png" for i in range(200)]
    documented = ["test" if int(hashlib.sha256(n.encode()).hexdigest()[:8], 16) / 16**8 < 0.2 else "train" for n in names]
    assert [hash_split(n) for n in names] == documented
    assert documented[:8] == ["train", "test", "train", "train", "train", "test", "train", "train"]
    assert 0.12 < documented.count("test") / len(names) < 0.28
    src = DataSpec.parse(f"folder:{folder_plain}").source
    train = {p.name for p in src.parts["train"].files}
    test = {p.name for p in src.parts["test"].files}
    assert train and test and not train & test
    assert src.count("all") == 40 == len(train) + len(test)
    assert DataSpec.parse(f"folder:{folder_plain}@all").split == "all"
    batch = next(src.iter_batches("test", 2, batch_size=2))
    assert batch.label_maps is not None  # labelmaps/ beside images/ keep working per split


def test_folder_subfolders_are_the_splits(folder_sub):
    src = DataSpec.parse(f"folder:{folder_sub}").source
    assert src.splits == ("all", "train", "val", "test") and src.heldout_split == "val"
    assert [src.count(s) for s in src.splits] == [54, 18, 18, 18]
    assert next(src.iter_batches("all", 20, start=10, batch_size=20)).ids[10] == "val/images/val002.png"


def test_camus_splits_from_files_and_labels_mapped(camus_nifti, camus_mhd):
    from harness.data.labels import LABELS

    for root in (camus_nifti, camus_mhd):
        src = DataSpec.parse(f"camus:{root}").source
        assert [src.count(s) for s in ("train", "val", "test")] == [18, 18, 18]
        batch = next(src.iter_batches("test", 2, batch_size=2))
        assert batch.images.shape == (2, 256, 256) and batch.images.dtype == np.uint8
        assert set(np.unique(batch.label_maps)) == {0, LABELS["lv"], LABELS["myocardium"], LABELS["la"]}
    assert "database_split" in DataSpec.parse(f"camus:{camus_nifti}").source.split_source
    assert "hash" in DataSpec.parse(f"camus:{camus_mhd}").source.split_source


def test_echonet_defaults_real_val_reference_test(echonet):
    spec = DataSpec.parse(f"echonet:{echonet}")
    assert spec.split is None and spec.source.heldout_split == "val" and spec.source.reference_split == "test"
    assert str(spec.with_split("test")) == f"echonet:{echonet}@test"
    assert DataSpec.parse(f"echonet:{echonet}@TRAIN").split == "train"


# scoring a set against itself ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda r: ["--data", "phantom:reference"],
                                  lambda r: ["--data", f"folder:{r['folder_sub']}@test"],
                                  lambda r: ["--data", f"echonet:{r['echonet']}@val", "--reference", f"echonet:{r['echonet']}@val"]])
def test_scoring_a_set_against_itself_is_exit_2_with_the_flag(make, roots, capsys, monkeypatch):
    rc, _, err = cli(capsys, monkeypatch, "run", "--generator", "real", *make(roots), "--task", "fid",
                     "--features", "radiomics", "--n", "8")
    assert rc == 2 and "--reference" in err and "Traceback" not in err
    assert stored_runs() == []  # refused in the plan: no run row, nothing written


# bad input ------------------------------------------------------------------------------------------------------
def test_unknown_and_empty_split(folder_sub, tmp_path, capsys, monkeypatch):
    rc, _, err = cli(capsys, monkeypatch, "run", "--generator", "real", "--data", f"folder:{folder_sub}@validation",
                     "--task", "fid", "--features", "radiomics", "--n", "4")
    assert rc == 2 and "validation" in err and "train, val, test" in err
    empty = tmp_path / "empty_test"
    for split in ("train", "test"):
        (empty / split).mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(empty / "train" / f"{i}.png"), np.full((8, 8), 40 * i, np.uint8))
    rc, _, err = cli(capsys, monkeypatch, "run", "--generator", "real", "--data", f"folder:{empty}", "--task", "fid",
                     "--features", "radiomics", "--n", "3")
    assert rc == 2 and "empty" in err and "test" in err
    assert stored_runs() == []


def test_folder_labelmaps_must_match_images(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "labelmaps").mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / f"im{i}.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "labelmaps" / "im0.png")
    with pytest.raises(DataError, match="no label map for image im1.png"):
        DataSpec.parse(f"folder:{tmp_path}")


def test_camus_missing_ground_truth_names_the_file(tmp_path):
    _write_camus(tmp_path, "nifti")
    victim = next((tmp_path / "database_nifti").glob("patient*/patient*_4CH_ES_gt.nii.gz"))
    victim.unlink()
    with pytest.raises(DataError, match=victim.name.replace(".", r"\.")):
        DataSpec.parse(f"camus:{tmp_path}")


def test_camus_bad_volumes_and_label_values(tmp_path):
    _write_camus(tmp_path / "multi", "nifti", frames_3d=2)
    src = DataSpec.parse(f"camus:{tmp_path / 'multi'}").source
    with pytest.raises(DataError, match=r"2-D image .*shape \(2, 32, 32\)"):
        next(src.iter_batches("test", 1))
    _write_camus(tmp_path / "single", "mhd", frames_3d=1)  # 3-D with one frame is fine
    assert next(DataSpec.parse(f"camus:{tmp_path / 'single'}").source.iter_batches("test", 1)).images.shape == (1, 256, 256)
    _write_camus(tmp_path / "labels", "nifti", gt_values=(0, 1, 2, 7))
    src = DataSpec.parse(f"camus:{tmp_path / 'labels'}").source
    with pytest.raises(DataError, match=r"_gt\.nii\.gz: label value\(s\) \[7\] are not in the camus label table"):
        next(src.iter_batches("train", 1))
    with pytest.raises(UsageError, match="view"):
        DataSpec.parse(f"camus:{tmp_path / 'labels'}", view="3CH")


# the training set recorded in a checkpoint ----------------------------------------------------------------------
@pytest.mark.slow
def test_train_on_camus_then_default_training_set_from_checkpoint(camus_nifti, tmp_path, capsys, monkeypatch):
    ck = tmp_path / "ck"
    rc, _, err = cli(capsys, monkeypatch, "train", "--generator", "cyclegan", "--preset", "tiny", "--data",
                     f"camus:{camus_nifti}", "--out", str(ck), "-o", "n_train=8", "-o", "n_epochs=1")
    assert rc == 0, err
    meta = json.loads((ck / "config.json").read_text())
    assert meta["train_data"] == f"camus:{camus_nifti}@train" and meta["label_source"] == "phantom"
    rc, out, err = cli(capsys, monkeypatch, "run", "--generator", "cyclegan", "--checkpoint", str(ck), "--task", "fid",
                       "--task", "memorization", "--features", "radiomics", "--n", "12", "--json",
                       "--task-option", "fid.n_boot=20", "--task-option", "memorization.quantile=0.25")
    assert rc == 0, err
    (run,) = stored_runs()
    assert run.config["training_set"]["spec"] == f"camus:{camus_nifti}@train"
    assert run.reference == f"camus:{camus_nifti}@test"  # --data defaults to the data the checkpoint was trained on
    assert {r["task"] for r in results(out)} == {"fid", "memorization"}
