"""CUT and FastCUT adapters: presets, networks, one training step, checkpoints, sampling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from generators.cut import CUTGenerator, FastCUTGenerator
from generators.cyclegan import CycleGANGenerator
from harness.data.phantom import PhantomSource
from harness.errors import DataError, UsageError

MICRO = CUTGenerator.presets["tiny"].replace(
    netG="resnet_6blocks", ngf=4, ndf=4, image_size=32, batch_size=2, n_train=4, n_epochs=1, n_epochs_decay=0,
    num_patches=16, netF_nc=8,
)


@pytest.fixture(scope="module")
def train():
    return PhantomSource.from_spec("train", size=32)[0]


def test_registered_and_presets():
    from harness.registry import generators

    assert generators.get("cut") is CUTGenerator and generators.get("fastcut") is FastCUTGenerator
    cut, fast = CUTGenerator.preset("paper"), FastCUTGenerator.preset("paper")
    assert (cut.nce_layers, cut.num_patches, cut.nce_T, cut.lambda_GAN, cut.lambda_NCE, cut.nce_idt) == (
        "0,4,8,12,16", 256, 0.07, 1.0, 1.0, True)
    assert (cut.batch_size, cut.n_epochs, cut.n_epochs_decay, cut.netG, cut.antialias, cut.pool_size) == (
        32, 2000, 0, "resnet_9blocks", True, 0)
    assert (fast.lambda_NCE, fast.nce_idt, fast.flip_equivariance) == (10.0, False, True)
    with pytest.raises(UsageError, match="presets: paper, tiny"):
        FastCUTGenerator.preset("fast")


def test_describe_preset_counts():
    counts = {k: v["parameters"] for k, v in CUTGenerator.describe_preset("paper")["networks"].items()}
    # F: one Linear(C, 256)-ReLU-Linear(256, 256) per NCE layer; channels 3, 128, 256, 256, 256
    f_expected = sum(c * 256 + 256 + 256 * 256 + 256 for c in (3, 128, 256, 256, 256))
    assert counts == {"G": 11_378_179, "D": 2_764_737, "F": f_expected} and f_expected == 560_384


def test_cut_needs_resnet():
    with pytest.raises(UsageError, match="netG must be one of resnet_9blocks"):
        CUTGenerator.resolve_config(MICRO.replace(netG="unet_32"))
    with pytest.raises(UsageError, match="nce_layers"):
        CUTGenerator.resolve_config(MICRO.replace(nce_layers="0,a"))
    with pytest.raises(UsageError, match="only"):
        CUTGenerator.build_networks(MICRO.replace(nce_layers="0,40"), init=False)


@pytest.mark.parametrize("cls", [CUTGenerator, FastCUTGenerator])
def test_fit_load_sample(cls, train, tmp_path):
    seen = []
    config = MICRO.replace(**{k: getattr(cls.preset("tiny"), k) for k in ("lambda_NCE", "nce_idt", "flip_equivariance")})
    cls().fit(train, tmp_path, config, progress=lambda i, t, losses: seen.append(losses))
    assert len(seen) == 2 and all(np.isfinite(v) for v in seen[-1].values())
    assert ("NCE_Y" in seen[0]) == (cls is CUTGenerator)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "D.safetensors", "F.safetensors", "G.safetensors", "config.json", "training_state.pt"]
    assert json.loads((tmp_path / "config.json").read_text())["model"] == cls.name

    gen = cls()
    gen.load(tmp_path, device="cpu")
    a = np.concatenate([b.images for b in gen.sample(4, seed=0, batch_size=4)])
    b = np.concatenate([b.images for b in gen.sample(4, seed=0, batch_size=3)])
    assert a.shape == (4, 32, 32, 3) and np.abs(a.astype(int) - b).max() <= 1
    other = CycleGANGenerator if cls is CUTGenerator else CUTGenerator
    with pytest.raises(DataError, match=f"{cls.name!r} checkpoint, not {other.name!r}"):
        other().load(tmp_path)


def test_training_step_reduces_nce(train, tmp_path):
    """PatchNCE alone (no GAN) must fall over a few steps: the encoder features of G(x) match x's."""
    config = MICRO.replace(lambda_GAN=0.0, n_epochs=6, nce_idt=False, lr=1e-3)
    losses = []
    CUTGenerator().fit(train, tmp_path, config, progress=lambda i, t, loss: losses.append(loss["NCE"]))
    assert np.mean(losses[-2:]) < 0.9 * np.mean(losses[:2]), losses


def test_flip_equivariance_flips_queries_back():
    """With flip-equivariant features (identity encoder), NCE(x, flip(x), flipped) == NCE(x, x, not flipped)."""
    from generators.networks import PatchSampleF

    gen = CUTGenerator()
    gen.config = MICRO.replace(num_patches=8, nce_layers="0,1")
    gen.nets = {"G": torch.nn.Module(), "F": PatchSampleF([3, 3], 8)}
    gen.nets["G"].encode = lambda x, layers: [x * (i + 1) for i in range(len(layers))]
    x = torch.randn(2, 3, 8, 8)
    torch.manual_seed(1)
    plain = gen.nce_loss(x, x, flipped=False)
    torch.manual_seed(1)
    flipped = gen.nce_loss(x, torch.flip(x, [3]), flipped=True)
    torch.manual_seed(1)
    wrong = gen.nce_loss(x, torch.flip(x, [3]), flipped=False)
    torch.testing.assert_close(plain, flipped)
    assert float(wrong) > float(plain) + 0.1
