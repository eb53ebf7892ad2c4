"""CycleGAN adapter and the shared translation plumbing (config, checkpoints, resume, sampling)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from generators.cyclegan import CycleGANGenerator
from generators.translation import decode_images, encode_images, encode_label_maps
from harness.data.phantom import LABELS, PhantomSource
from harness.errors import DataError, UsageError

MICRO = CycleGANGenerator.presets["tiny"].replace(
    netG="unet_32", ngf=4, ndf=4, image_size=32, batch_size=2, n_train=4, n_epochs=2, n_epochs_decay=1, save_every=1
)


@pytest.fixture(scope="module")
def train():
    return PhantomSource.from_spec("train", size=32)[0]


@pytest.fixture(scope="module")
def trained(train, tmp_path_factory):
    out = tmp_path_factory.mktemp("cyclegan")
    CycleGANGenerator().fit(train, out, MICRO)
    return out


def weights(path, name="G_A"):
    from safetensors.torch import load_file

    return load_file(str(path / f"{name}.safetensors"))


def test_registered_and_presets():
    from harness.registry import generators

    assert generators.get("cyclegan") is CycleGANGenerator
    paper = CycleGANGenerator.preset("paper")
    assert (paper.netG, paper.image_size, paper.gan_mode, paper.lambda_cyc, paper.lambda_identity, paper.pool_size) == (
        "unet_256", 256, "lsgan", 10.0, 0.5, 50)
    assert (paper.lr, paper.beta1, paper.n_epochs_decay, paper.save_every) == (2e-4, 0.5, 0, 5)
    with pytest.raises(UsageError, match="presets: paper, tiny"):
        CycleGANGenerator.preset("huge")


def test_describe_preset_counts_paper_networks():
    info = CycleGANGenerator.describe_preset("paper")
    counts = {k: v["parameters"] for k, v in info["networks"].items()}
    assert counts == {"G_A": 54_409_603, "G_B": 54_409_603, "D_A": 2_764_737, "D_B": 2_764_737}


def test_config_validation():
    with pytest.raises(UsageError, match="valid sizes: 256, 512"):
        CycleGANGenerator.resolve_config(CycleGANGenerator.preset("paper").replace(image_size=64))
    with pytest.raises(UsageError, match="unknown option"):
        MICRO.replace(lambda_cycle=3)
    assert MICRO.replace(ngf="16", nce_idt="false").ngf == 16
    assert MICRO.lr_at(1) == MICRO.lr_at(2) == MICRO.lr and MICRO.lr_at(3) == pytest.approx(MICRO.lr / 2)


def test_encodings_round_trip():
    lm = np.array([[[0, 11], [5, 3]]], dtype=np.uint8)
    x = encode_label_maps(lm, len(LABELS))
    assert x.shape == (1, 3, 2, 2) and float(x.min()) == -1 and float(x.max()) == 1
    torch.testing.assert_close(x[0, 1], torch.tensor([[-1.0, 1.0], [5 * 2 / 11 - 1, 3 * 2 / 11 - 1]]))
    img = np.random.default_rng(0).integers(0, 256, (2, 4, 4), dtype=np.uint8)
    back = decode_images(encode_images(img))
    assert back.shape == (2, 4, 4, 3) and np.array_equal(back[..., 1], img)
    with pytest.raises(DataError):
        encode_label_maps(np.full((1, 2, 2), 12, np.uint8), 12)


def test_fit_writes_checkpoint(trained):
    names = sorted(p.name for p in trained.iterdir())
    assert names == ["D_A.safetensors", "D_B.safetensors", "G_A.safetensors", "G_B.safetensors", "config.json",
                     "training_state.pt"]
    meta = json.loads((trained / "config.json").read_text())
    assert meta["model"] == "cyclegan" and meta["epoch"] == 3 and meta["iteration"] == 6
    assert meta["config"]["netG"] == "unet_32" and meta["label_encoding"]["num_labels"] == len(LABELS)


def test_fit_is_seeded(train, trained, tmp_path):
    CycleGANGenerator().fit(train, tmp_path, MICRO)
    a, b = weights(trained), weights(tmp_path)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_continues_exactly(train, trained, tmp_path):
    class Stop(Exception):
        pass

    def stop_in_epoch_3(iteration, total, losses):
        assert set(losses) >= {"G_A", "D_A", "cycle_A", "idt_A", "epoch"} and 0 < iteration <= total
        if losses["epoch"] == 3:
            raise Stop

    with pytest.raises(Stop):
        CycleGANGenerator().fit(train, tmp_path, MICRO, progress=stop_in_epoch_3)
    assert json.loads((tmp_path / "config.json").read_text())["epoch"] == 2
    with pytest.raises(UsageError, match="already holds a checkpoint"):
        CycleGANGenerator().fit(train, tmp_path, MICRO)
    with pytest.raises(UsageError, match="different config.*lr"):
        CycleGANGenerator().fit(train, tmp_path, MICRO.replace(lr=1e-3), resume=True)
    CycleGANGenerator().fit(train, tmp_path, MICRO, resume=True)
    for name in ("G_A", "D_B"):
        a, b = weights(trained, name), weights(tmp_path, name)
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_sample_deterministic_batch_independent(trained):
    gen = CycleGANGenerator()
    gen.load(trained, device="cpu")
    a = list(gen.sample(5, seed=3, batch_size=5))
    b = list(gen.sample(5, seed=3, batch_size=2))
    c = list(gen.sample(5, seed=3, batch_size=2, start=3))
    imgs_a, imgs_b = a[0].images, np.concatenate([x.images for x in b])
    assert imgs_a.shape == (5, 32, 32, 3) and imgs_a.dtype == np.uint8
    assert np.abs(imgs_a.astype(int) - imgs_b).max() <= 1  # float noise across batch shapes only
    assert np.abs(np.concatenate([x.images for x in c]).astype(int) - imgs_a[3:]).max() <= 1
    assert np.array_equal(a[0].label_maps, np.concatenate([x.label_maps for x in b]))
    assert a[0].conditions is not None and len(a[0].conditions) == 5
    other = next(gen.sample(5, seed=4, batch_size=5))
    assert not np.array_equal(other.label_maps, a[0].label_maps)
    lvh = next(gen.sample(4, seed=3, batch_size=4, conditions=["lvh"]))
    assert lvh.conditions == ["lvh"] * 4
    with pytest.raises(UsageError):
        next(gen.sample(2, seed=0, conditions=["hcm"]))


def test_sample_needs_load():
    with pytest.raises(UsageError, match="load"):
        next(CycleGANGenerator().sample(2, seed=0))


def test_load_errors(trained, tmp_path):
    with pytest.raises(DataError, match="config.json is missing"):
        CycleGANGenerator().load(tmp_path)
    meta = json.loads((trained / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(dict(meta, model="cut")))
    with pytest.raises(DataError, match="'cut' checkpoint"):
        CycleGANGenerator().load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="missing G_A.safetensors"):
        CycleGANGenerator().load(tmp_path)
    with pytest.raises(UsageError):
        CycleGANGenerator().load(None)


def test_describe_and_fingerprint(trained):
    gen = CycleGANGenerator()
    gen.load(trained, device="cpu")
    assert gen.describe()["networks"]["G_A"] == sum(p.numel() for p in gen.nets["G_A"].parameters())
    assert len(gen.fingerprint()["weights_sha256"]) == 64
