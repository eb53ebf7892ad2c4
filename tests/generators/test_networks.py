"""Shared GAN networks: parameter counts against the reference definitions, shapes, losses, pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from generators import networks as N
from harness.errors import UsageError


# Parameter counts derived layer by layer from the reference definitions (pytorch-CycleGAN-and-pix2pix
# models/networks.py; CUT models/networks.py), written independently of generators/networks.py.
def conv(cin, cout, k, bias):
    return cin * cout * k * k + (cout if bias else 0)


def ref_resnet(ngf, n_blocks, nc=3, norm="instance"):
    b = norm == "instance"  # use_bias = (norm is InstanceNorm2d)
    aff = (lambda c: 2 * c) if norm == "batch" else (lambda c: 0)
    n = conv(nc, ngf, 7, b) + aff(ngf)
    n += conv(ngf, 2 * ngf, 3, b) + aff(2 * ngf) + conv(2 * ngf, 4 * ngf, 3, b) + aff(4 * ngf)
    n += n_blocks * 2 * (conv(4 * ngf, 4 * ngf, 3, b) + aff(4 * ngf))
    n += conv(4 * ngf, 2 * ngf, 3, b) + aff(2 * ngf) + conv(2 * ngf, ngf, 3, b) + aff(ngf)  # (transposed) convs
    return n + conv(ngf, nc, 7, True)


def ref_unet(ngf, num_downs, nc=3, norm="instance"):
    b = norm == "instance"
    aff = (lambda c: 2 * c) if norm == "batch" else (lambda c: 0)
    n = conv(nc, ngf, 4, b) + conv(2 * ngf, nc, 4, True)  # outermost: down conv, up convT (always bias), no norm
    for outer, inner in [(ngf, 2 * ngf), (2 * ngf, 4 * ngf), (4 * ngf, 8 * ngf)] + [(8 * ngf, 8 * ngf)] * (num_downs - 5):
        n += conv(outer, inner, 4, b) + aff(inner) + conv(2 * inner, outer, 4, b) + aff(outer)
    return n + conv(8 * ngf, 8 * ngf, 4, b) + conv(8 * ngf, 8 * ngf, 4, b) + aff(8 * ngf)  # innermost: no down norm


def ref_patchgan(ndf, n_layers, nc=3, norm="instance"):
    b = norm == "instance"
    aff = (lambda c: 2 * c) if norm == "batch" else (lambda c: 0)
    n, mult = conv(nc, ndf, 4, True), 1
    for i in range(1, n_layers + 1):
        prev, mult = mult, min(2**i, 8)
        n += conv(ndf * prev, ndf * mult, 4, b) + aff(ndf * mult)
    return n + conv(ndf * mult, 1, 4, True)


def params(net):
    return sum(p.numel() for p in net.parameters())


def meta_g(name, ngf=64, **kw):
    with torch.device("meta"):
        return N.define_g(name, 3, 3, ngf, init=False, **kw)


def test_known_parameter_counts():
    # published / reference-printed figures for the default (instance norm) options
    assert params(meta_g("resnet_9blocks")) == ref_resnet(64, 9) == 11_378_179
    assert params(meta_g("resnet_9blocks", antialias=True)) == 11_378_179  # CUT's anti-aliased variant
    assert params(meta_g("resnet_6blocks")) == ref_resnet(64, 6) == 7_837_699
    # unet_256 with instance norm (CycleGAN default); 54,413,955 with batch norm (pix2pix default)
    assert params(meta_g("unet_256")) == ref_unet(64, 8) == 54_409_603
    assert params(meta_g("unet_256", norm="batch")) == ref_unet(64, 8, norm="batch") == 54_413_955
    assert params(meta_g("unet_128")) == ref_unet(64, 7) == 41_825_667
    with torch.device("meta"):
        assert params(N.NLayerDiscriminator(3, 64, 3)) == ref_patchgan(64, 3) == 2_764_737
        assert params(N.NLayerDiscriminator(3, 64, 3, antialias=True)) == 2_764_737
        assert params(N.NLayerDiscriminator(3, 64, 3, norm="batch")) == ref_patchgan(64, 3, norm="batch")


@pytest.mark.parametrize("ngf,blocks", [(8, 6), (16, 9), (4, 3)])
def test_resnet_counts_follow_reference_formula(ngf, blocks):
    net = N.ResnetGenerator(3, 3, ngf, n_blocks=blocks)
    assert params(net) == ref_resnet(ngf, blocks)
    assert params(N.ResnetGenerator(3, 3, ngf, norm="batch", n_blocks=blocks)) == ref_resnet(ngf, blocks, norm="batch")


@pytest.mark.parametrize("ngf,downs", [(8, 5), (8, 6), (4, 8)])
def test_unet_counts_and_shapes(ngf, downs):
    net = N.UnetGenerator(3, 3, downs, ngf)
    assert params(net) == ref_unet(ngf, downs)
    x = torch.randn(2, 3, 2**downs, 2**downs)
    y = net(x)
    assert y.shape == x.shape and y.abs().max() <= 1


def test_generators_keep_shape_and_encode_layers():
    x = torch.randn(2, 3, 32, 32)
    for antialias in (False, True):
        g = N.ResnetGenerator(3, 3, 4, n_blocks=6, antialias=antialias)
        assert g(x).shape == x.shape
    g = N.ResnetGenerator(3, 3, 4, n_blocks=9, antialias=True)
    feats = g.encode(x, [0, 4, 8, 12, 16])
    # CUT default layers: padded input, the two downsampling convs, residual blocks 1 and 5
    assert [tuple(f.shape[1:]) for f in feats] == [(3, 38, 38), (8, 32, 32), (16, 16, 16), (16, 8, 8), (16, 8, 8)]
    full = g.model[:13](x)
    torch.testing.assert_close(feats[3], full)


def test_patchgan_receptive_field_is_70():
    d = N.NLayerDiscriminator(1, 4, 3, norm="none")
    x = torch.zeros(1, 1, 140, 140, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1))
    assert int(rows.max() - rows.min() + 1) == 70


def test_init_weights_normal_002():
    torch.manual_seed(0)
    g = N.define_g("resnet_6blocks", 3, 3, 32)
    w = torch.cat([m.weight.detach().flatten() for m in g.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(float(w.std()) - 0.02) < 1e-3 and abs(float(w.mean())) < 1e-3
    assert all(float(m.bias.abs().max()) == 0 for m in g.modules() if isinstance(m, torch.nn.Conv2d) and m.bias is not None)


def test_gan_loss_lsgan_is_mse():
    pred = torch.randn(2, 1, 5, 5)
    loss = N.GANLoss("lsgan")
    assert torch.isclose(loss(pred, True), ((pred - 1) ** 2).mean())
    assert torch.isclose(loss(pred, False), (pred**2).mean())
    assert torch.isclose(N.GANLoss("vanilla")(pred, True), F.binary_cross_entropy(torch.sigmoid(pred), torch.ones_like(pred)))


def test_image_pool():
    pool = N.ImagePool(3, np.random.default_rng(0))
    first = torch.arange(2.0).view(2, 1, 1, 1)
    assert torch.equal(pool.query(first), first)
    out = pool.query(torch.full((50, 1, 1, 1), 9.0))
    assert len(pool.images) == 3
    # first image fills the pool; afterwards about half are swapped for an older one
    values = out.flatten().tolist()
    assert values[0] == 9.0 and 0 < sum(v != 9.0 for v in values) < 49
    assert N.ImagePool(0, np.random.default_rng(0)).query(first) is first


def reference_patch_nce(feat_q, feat_k, batch, tau):
    """Loop form of the PatchNCE loss (CUT's PatchNCELoss): per query patch, -log softmax over
    [positive key, all other keys of the same image] (the own-position logit replaced by -10)."""
    n, _dim = feat_q.shape
    per = n // batch
    losses = []
    for b in range(batch):
        q, k = feat_q[b * per:(b + 1) * per], feat_k[b * per:(b + 1) * per]
        sim = q @ k.T
        for i in range(per):
            negs = sim[i].clone()
            negs[i] = -10.0
            logits = torch.cat([sim[i, i:i + 1], negs]) / tau
            losses.append(-torch.log_softmax(logits, 0)[0])
    return torch.stack(losses)


def test_patch_nce_loss_matches_loop_form():
    torch.manual_seed(0)
    q = F.normalize(torch.randn(2 * 7, 5), dim=1)
    k = F.normalize(torch.randn(2 * 7, 5), dim=1)
    torch.testing.assert_close(N.patch_nce_loss(q, k, 2, 0.07), reference_patch_nce(q, k, 2, 0.07))
    # identical queries and keys (low temperature): the positive wins, loss near 0
    assert float(N.patch_nce_loss(q, q, 2, 0.01).mean()) < float(N.patch_nce_loss(q, k, 2, 0.01).mean())


def test_patch_sample_f_shapes_and_shared_ids():
    f = N.PatchSampleF([3, 8], nc=16)
    assert params(f) == (3 * 16 + 16 + 16 * 16 + 16) + (8 * 16 + 16 + 16 * 16 + 16)
    feats = [torch.randn(2, 3, 6, 6), torch.randn(2, 8, 4, 4)]
    out, ids = f(feats, 10)
    assert [tuple(o.shape) for o in out] == [(20, 16), (20, 16)]
    torch.testing.assert_close(out[0].norm(dim=1), torch.ones(20), atol=1e-3, rtol=0)
    out2, ids2 = f(feats, 10, ids)
    assert all(torch.equal(a, b) for a, b in zip(ids, ids2))
    torch.testing.assert_close(out[1], out2[1])


def test_bad_names_and_sizes_are_usage_errors():
    with pytest.raises(UsageError, match="unknown netG"):
        N.check_netg("resnet_7blocks")
    with pytest.raises(UsageError, match="unet_<2"):
        N.unet_num_downs("unet_100")
    with pytest.raises(UsageError, match="valid sizes: 256, 512"):
        N.valid_image_size("unet_256", 64)
    N.valid_image_size("unet_64", 64)
    N.valid_image_size("resnet_9blocks", 68)
    with pytest.raises(UsageError, match="norm"):
        N.get_norm_layer("group")
