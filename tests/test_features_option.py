"""Issue 18 audit: ``--features`` with several spaces and ``--weights`` end to end.

- one unknown space among several is exit 2 with one line naming it (and nothing is written);
- a DINOv2 folder written by ``save_pretrained`` is used through ``--weights`` by ``harness run``;
- the features of a run are cached under a key holding the weights hash: a rerun with the same folder extracts
  nothing, a folder with other weights extracts again and gives other numbers.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from harness.cli import run_cli
from harness.runner import RunRequest, run
from harness.store import Store


@pytest.mark.parametrize("spaces,unknown", [("radiomics,nope", "nope"), ("random-clip,radiomicz,radiomics", "radiomicz"),
                                            ("nope2,radiomics", "nope2")])
def test_one_unknown_space_among_several_is_exit_2_naming_it(spaces, unknown, tmp_path, capsys):
    capsys.readouterr()
    rc = run_cli(["run", "-g", "real", "-t", "fid", "-f", spaces, "--n", "4", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"'{unknown}'" in lines[0], err
    assert re.search(r"unknown feature extractor '([^']*)'", lines[0]).group(1) == unknown  # only it is blamed
    assert Store().runs() == [] and not (tmp_path / "runs").exists()


def test_weights_with_several_spaces_is_exit_2(tmp_path, capsys):
    rc = run_cli(["run", "-g", "real", "-t", "fid", "-f", "radiomics,dinov2", "--weights", str(tmp_path), "--n", "4"])
    assert rc == 2 and "--weights is ambiguous with several --features" in capsys.readouterr().err
    assert Store().runs() == []


def _tiny_dinov2(path, seed: int):
    import torch
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, patch_size=14)
    Dinov2Model(cfg).eval().save_pretrained(path)


def test_save_pretrained_folder_through_weights_and_features_keyed_by_its_hash(tmp_path, monkeypatch):
    from harness.features import cache as cache_mod
    from harness.features import dinov2 as D
    from harness.features.weights import model_dir_hash

    monkeypatch.setenv("ECHOBENCH_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    # the tiny test folder stands in for ViT-L/14: the architecture check is told to expect it
    monkeypatch.setattr(D.DINOv2Extractor, "expected", {"hidden_size": 32, "num_hidden_layers": 2, "patch_size": 14})
    monkeypatch.setattr(D.DINOv2Extractor, "dim", 32)
    _tiny_dinov2(tmp_path / "a", seed=1)
    shutil.copytree(tmp_path / "a", tmp_path / "same")  # the same files in another folder: the same hash
    _tiny_dinov2(tmp_path / "b", seed=2)
    assert model_dir_hash(tmp_path / "a") == model_dir_hash(tmp_path / "same") != model_dir_hash(tmp_path / "b")

    calls: list[int] = []
    original = cache_mod.extract_features
    monkeypatch.setattr(cache_mod, "extract_features", lambda *a, **k: calls.append(1) or original(*a, **k))

    def fd(weights: str) -> float:
        out = run(RunRequest(generator="labelmap", tasks=["fid"], features="dinov2", weights=weights, n=12, n_ref=12,
                             device="cpu", task_options={"fid": {"metrics": "fid", "n_boot": 10}}))
        (res,) = [r for _, r in out.results]
        assert res.metric == "FD_dinov2" and res.feature_space == "dinov2" and not res.substitute
        return res.value

    a = fd(str(tmp_path / "a"))
    assert len(calls) == 2  # generated and reference features extracted
    assert fd(str(tmp_path / "same")) == a and len(calls) == 2  # same weights hash: both read from the cache
    b = fd(str(tmp_path / "b"))
    assert len(calls) == 4 and b != a  # other weights: extracted again, other numbers
    files = sorted(p.name for p in cache_mod.FeatureCache().root.iterdir() if "features" in p.name)
    for folder in ("a", "b"):
        assert sum(f"dinov2-{model_dir_hash(tmp_path / folder)}-p" in f for f in files) == 2, files


def test_random_standins_fingerprint_is_their_config_hash(monkeypatch):
    """Stand-ins have no weights file: their cache key is the hash of the config they are built from."""
    from transformers import CLIPVisionConfig

    from harness.registry import features

    rd, rc = features.get("random-dinov2")(), features.get("random-clip")()
    assert rd.fingerprint() != rc.fingerprint() and rd.fingerprint().startswith("random-dinov2-random-")
    before = rc.fingerprint()
    cls = features.get("random-clip")
    monkeypatch.setattr(cls, "random_config", classmethod(lambda c: CLIPVisionConfig(
        hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128, image_size=336,
        patch_size=14, projection_dim=64)))
    assert cls().fingerprint() != before  # another architecture: another key, never a stale cache hit


def test_done_when_fid_and_cmmd_in_two_spaces_all_labelled(capsys, monkeypatch):
    """Issue 18's "done when" command (smaller N): FD/FD∞/KD/FD_rel in both spaces and the MMD rows, each row
    carrying its space and the substitute flag; each (set, space) extracted once although two tasks use it."""
    from harness.features import cache as cache_mod

    spaces: list[str] = []
    original = cache_mod.extract_features
    monkeypatch.setattr(cache_mod, "extract_features",
                        lambda ex, *a, **k: spaces.append(ex.feature_space) or original(ex, *a, **k))
    capsys.readouterr()
    rc = run_cli(["run", "--generator", "labelmap", "--task", "fid", "--task", "cmmd", "--features", "radiomics,random-clip",
                  "--json", "--n", "24", "--n-ref", "24", "--task-option", "fid.n_boot=20", "--task-option",
                  "cmmd.n_boot=20", "--task-option", "fid.kid_subsets=10"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    rows = [json.loads(ln) for ln in cap.out.splitlines() if ln.strip()]
    got = {(r["task"], r["metric"], r["feature_space"], r["substitute_features"]) for r in rows}
    want = {("cmmd", "MMD_radiomics", "radiomics", False), ("cmmd", "MMD_random-clip", "random-clip", True)}
    for space, sub in (("radiomics", False), ("random-clip", True)):
        want |= {("fid", f"{m}_{space}{suffix}", space, sub) for m, suffix in (("FD", ""), ("FD", "_inf"), ("KD", ""),
                                                                               ("FD", "_rel"))}
    assert got == want and len(rows) == len(want)
    assert not any(r["metric"] in ("FID", "KID", "CMMD") for r in rows)  # never the published names here
    assert all(r["value"] is not None and r["n"] == 24 for r in rows)
    assert sorted(spaces) == ["radiomics", "radiomics", "random-clip", "random-clip"]  # generated + reference, once each
