"""harness.validate: the plan-stage checks of devices, output paths and image sizes (issue 21)."""

from __future__ import annotations

import pytest

from harness.errors import DataError, UsageError
from harness.validate import check_image_size, check_output_dir, check_output_file, validate_device


@pytest.mark.parametrize("dev", ["auto", "cpu", "CPU", " cpu "])
def test_cpu_and_auto_need_no_torch(dev):
    assert validate_device(dev) in ("auto", "cpu")


@pytest.mark.parametrize("dev", ["bogus", "gpu", "cuda:x", "cuda:-1", "cuda:0:1", "", "cpu:0:0"])
def test_malformed_devices(dev):
    with pytest.raises(UsageError, match="is not a device"):
        validate_device(dev)


def test_gpu_devices_against_what_is_present(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match="no CUDA GPU is visible"):
        validate_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert validate_device("cuda") == "cuda" and validate_device("CUDA:1") == "cuda:1"
    with pytest.raises(UsageError, match="has 2 GPU.*cuda:0..cuda:1"):
        validate_device("cuda:7")


def test_output_paths(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_text("x")
    assert check_output_file(tmp_path / "new" / "r.csv") == tmp_path / "new" / "r.csv"
    with pytest.raises(UsageError, match="is a folder"):
        check_output_file(tmp_path / "d")
    with pytest.raises(UsageError, match="is a file, so"):
        check_output_file(tmp_path / "f.txt" / "r.csv")
    assert check_output_dir(tmp_path / "d") == tmp_path / "d"
    with pytest.raises(UsageError, match="is not empty"):
        check_output_dir(tmp_path / "d", must_be_empty=True)
    with pytest.raises(UsageError, match="is a file; give a folder"):
        check_output_dir(tmp_path / "f.txt")
    with pytest.raises(UsageError, match="is a file, so"):
        check_output_dir(tmp_path / "f.txt" / "sub")
    assert not (tmp_path / "new").exists()  # nothing is created by a check


def test_image_size():
    check_image_size((8, 8, 3), "x")
    for shape in ((1, 1), (7, 300, 3), (300, 2), (5,)):
        with pytest.raises(DataError, match="at least 8×8"):
            check_image_size(shape, "image 3")
