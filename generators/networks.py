"""Networks shared by the CycleGAN and CUT adapters.

Re-implemented from the definitions in junyanz/pytorch-CycleGAN-and-pix2pix ``models/networks.py`` and
taesungp/contrastive-unpaired-translation ``models/networks.py`` (both BSD-licensed), with the same layer
order, so that parameter counts, ``state_dict`` layouts and the CUT ``nce_layers`` indices match the
reference code for the same options:

- :class:`ResnetGenerator` (``resnet_9blocks`` / ``resnet_6blocks``): with ``antialias=False`` it is the
  CycleGAN repo's generator (strided convs, transposed convs); with ``antialias=True`` it is the CUT repo's
  default (stride-1 conv + blur-pool :class:`Downsample`, :class:`Upsample` + conv). Same parameter count.
- :class:`UnetGenerator` (``unet_256`` = 8 downsamplings, ``unet_128`` = 7; ``unet_<2**k>`` generally).
- :class:`NLayerDiscriminator`: the 70×70 PatchGAN for ``n_layers=3``.
- :class:`PatchSampleF`: CUT's patch sampler with the 2-layer MLP head (``netF=mlp_sample``). Unlike the
  reference, its MLPs are built eagerly from the feature channel counts, so a state dict can be loaded
  before the first forward pass.
- :func:`patch_nce_loss`, :class:`GANLoss`, :class:`ImagePool`, :func:`init_weights`.

Instance norm is ``affine=False, track_running_stats=False`` as in both repos (so it has no parameters and
eval mode changes nothing).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import UsageError

NORMS = ("instance", "batch", "none")
RESNET_BLOCKS = {"resnet_9blocks": 9, "resnet_6blocks": 6}


# helpers ---------------------------------------------------------------------------------------
def get_norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """``instance`` (no affine, no running stats), ``batch`` (affine, running stats) or ``none``."""
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "none":
        return lambda channels: nn.Identity()
    raise UsageError(f"unknown norm {norm!r}; choose one of: {', '.join(NORMS)}")


def _uses_bias(norm: str) -> bool:
    # the reference: use_bias = norm_layer.func == nn.InstanceNorm2d (so 'none' has no conv bias either)
    return norm == "instance"


def unet_num_downs(net_g: str) -> int | None:
    """``unet_256`` → 8, ``unet_128`` → 7, ``unet_64`` → 6 (``unet_<2**k>`` → k); None for ResNets."""
    match = re.fullmatch(r"unet_(\d+)", net_g)
    if not match:
        return None
    size = int(match.group(1))
    k = round(math.log2(size)) if size > 0 else -1
    if size <= 0 or 2**k != size or k < 5:
        raise UsageError(f"netG {net_g!r}: a U-Net is named unet_<2**k> with k >= 5 (unet_32 ... unet_256)")
    return k


def check_netg(net_g: str) -> None:
    if net_g not in RESNET_BLOCKS and unet_num_downs(net_g) is None:
        raise UsageError(
            f"unknown netG {net_g!r}; choose one of: {', '.join(RESNET_BLOCKS)}, unet_256, unet_128 (unet_<2**k>)"
        )


def valid_image_size(net_g: str, size: int) -> None:
    """Raise UsageError unless ``size`` works for ``net_g`` (U-Net: multiple of 2**num_downs; ResNet: of 4)."""
    check_netg(net_g)
    downs = unet_num_downs(net_g)
    step = 2**downs if downs is not None else 4
    if size <= 0 or size % step:
        examples = ", ".join(str(step * k) for k in (1, 2, 3, 4))
        raise UsageError(
            f"image size {size} does not work with netG {net_g!r}: it must be a multiple of {step} "
            f"(valid sizes: {examples}, ...); pick another size or netG (e.g. unet_{size} if {size} is a power of 2)"
        )


def init_weights(net: nn.Module, init_gain: float = 0.02) -> nn.Module:
    """The reference ``init_type='normal'``: conv/linear weights ~ N(0, gain), biases 0; BatchNorm ~ N(1, gain)."""

    def init_func(m: nn.Module) -> None:
        classname = m.__class__.__name__
        if hasattr(m, "weight") and m.weight is not None and ("Conv" in classname or "Linear" in classname):
            nn.init.normal_(m.weight.data, 0.0, init_gain)
            if getattr(m, "bias", None) is not None:
                nn.init.constant_(m.bias.data, 0.0)
        elif "BatchNorm2d" in classname:
            nn.init.normal_(m.weight.data, 1.0, init_gain)
            nn.init.constant_(m.bias.data, 0.0)

    net.apply(init_func)
    return net


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# anti-aliased resampling (CUT) -------------------------------------------------------------------
def _binomial_filter(size: int) -> torch.Tensor:
    a = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float32)
    filt = a[:, None] * a[None, :]
    return filt / filt.sum()


class Downsample(nn.Module):
    """Blur (binomial 3×3, reflect pad) then subsample by 2, as CUT's ``Downsample``."""

    def __init__(self, channels: int, filt_size: int = 3):
        super().__init__()
        pad = (filt_size - 1) // 2
        self.pad = nn.ReflectionPad2d([pad, filt_size - 1 - pad, pad, filt_size - 1 - pad])
        self.register_buffer("filt", _binomial_filter(filt_size)[None, None].repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


class Upsample(nn.Module):
    """Transposed blur (binomial 4×4, replicate pad) upsampling by 2, as CUT's ``Upsample``."""

    def __init__(self, channels: int, filt_size: int = 4):
        super().__init__()
        self.pad_size = (filt_size - 1) // 2
        self.odd = filt_size % 2 == 1
        self.pad = nn.ReplicationPad2d([1, 1, 1, 1])
        self.register_buffer("filt", (_binomial_filter(filt_size) * 4)[None, None].repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv_transpose2d(self.pad(x), self.filt, stride=2, padding=1 + self.pad_size, groups=x.shape[1])
        out = out[:, :, 1:, 1:]
        return out if self.odd else out[:, :, :-1, :-1]


# generators ------------------------------------------------------------------------------------
class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str, use_dropout: bool):
        super().__init__()
        norm_layer, bias = get_norm_layer(norm), _uses_bias(norm)
        block: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(dim), nn.ReLU(True)]
        if use_dropout:
            block.append(nn.Dropout(0.5))
        block += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(dim)]
        self.conv_block = nn.Sequential(*block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Johnson-style ResNet generator: c7s1-ngf, two downsamplings, ``n_blocks`` residual blocks, two upsamplings."""

    def __init__(self, input_nc: int, output_nc: int, ngf: int = 64, norm: str = "instance",
                 use_dropout: bool = False, n_blocks: int = 9, antialias: bool = False):
        super().__init__()
        norm_layer, bias = get_norm_layer(norm), _uses_bias(norm)
        model: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias), norm_layer(ngf), nn.ReLU(True)]
        for i in range(2):
            c = ngf * 2**i
            if antialias:
                model += [nn.Conv2d(c, 2 * c, 3, stride=1, padding=1, bias=bias), norm_layer(2 * c), nn.ReLU(True),
                          Downsample(2 * c)]
            else:
                model += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), norm_layer(2 * c), nn.ReLU(True)]
        model += [ResnetBlock(ngf * 4, norm, use_dropout) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            if antialias:
                model += [Upsample(c), nn.Conv2d(c, c // 2, 3, stride=1, padding=1, bias=bias)]
            else:
                model += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)]
            model += [norm_layer(c // 2), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def encode(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """Outputs of ``self.model[i]`` for ``i`` in ``layers`` (CUT's ``encode_only=True``)."""
        feats, last = [], max(layers)
        for layer_id, layer in enumerate(self.model):
            x = layer(x)
            if layer_id in layers:
                feats.append(x)
            if layer_id == last:
                break
        return feats


class UnetSkipConnectionBlock(nn.Module):
    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None, submodule: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, norm: str = "instance", use_dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        norm_layer, bias = get_norm_layer(norm), _uses_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=bias)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
            model = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=bias)
            model = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, norm_layer(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=bias)
            model = [nn.LeakyReLU(0.2, True), downconv, norm_layer(inner_nc), submodule,
                     nn.ReLU(True), upconv, norm_layer(outer_nc)]
            if use_dropout:
                model.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with ``num_downs`` downsamplings (``unet_256``: 8, a 256×256 image becomes 1×1 at the bottleneck)."""

    def __init__(self, input_nc: int, output_nc: int, num_downs: int, ngf: int = 64, norm: str = "instance",
                 use_dropout: bool = False):
        super().__init__()
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def define_g(net_g: str, input_nc: int, output_nc: int, ngf: int, norm: str = "instance",
             use_dropout: bool = False, antialias: bool = False, init: bool = True) -> nn.Module:
    """Build a generator by the reference name (``resnet_9blocks``, ``resnet_6blocks``, ``unet_256``, ``unet_128``)."""
    check_netg(net_g)
    if net_g in RESNET_BLOCKS:
        net: nn.Module = ResnetGenerator(input_nc, output_nc, ngf, norm, use_dropout, RESNET_BLOCKS[net_g], antialias)
    else:
        net = UnetGenerator(input_nc, output_nc, unet_num_downs(net_g), ngf, norm, use_dropout)  # type: ignore[arg-type]
    return init_weights(net) if init else net


# discriminator ---------------------------------------------------------------------------------
class NLayerDiscriminator(nn.Module):
    """PatchGAN: ``n_layers=3`` classifies overlapping 70×70 patches (pix2pix/CycleGAN ``basic``)."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance", antialias: bool = False):
        super().__init__()
        norm_layer, bias = get_norm_layer(norm), _uses_bias(norm)
        if antialias:
            seq: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=1, padding=1), nn.LeakyReLU(0.2, True), Downsample(ndf)]
        else:
            seq = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            if antialias:
                seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=bias), norm_layer(ndf * mult),
                        nn.LeakyReLU(0.2, True), Downsample(ndf * mult)]
            else:
                seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=bias), norm_layer(ndf * mult),
                        nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2**n_layers, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=bias), norm_layer(ndf * mult),
                nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# losses and helpers ----------------------------------------------------------------------------
class GANLoss(nn.Module):
    """``lsgan`` (MSE against 1/0 targets) or ``vanilla`` (BCE with logits), as the reference ``GANLoss``."""

    def __init__(self, gan_mode: str = "lsgan"):
        super().__init__()
        if gan_mode not in ("lsgan", "vanilla"):
            raise UsageError(f"unknown gan_mode {gan_mode!r}; choose lsgan or vanilla")
        self.loss = nn.MSELoss() if gan_mode == "lsgan" else nn.BCEWithLogitsLoss()

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = torch.full_like(prediction, 1.0 if target_is_real else 0.0)
        return self.loss(prediction, target)


class ImagePool:
    """History of generated images (Shrivastava et al.): with probability 1/2 return an older image.

    As the reference ``util/image_pool.py`` but with an explicit ``numpy.random.Generator`` (seeded,
    and saved with the training state).
    """

    def __init__(self, pool_size: int, rng: np.random.Generator):
        self.pool_size = pool_size
        self.rng = rng
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.pool_size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image)
                out.append(image)
            elif self.rng.uniform() > 0.5:
                idx = int(self.rng.integers(0, self.pool_size))
                out.append(self.images[idx].clone())
                self.images[idx] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


class PatchSampleF(nn.Module):
    """CUT's ``PatchSampleF(use_mlp=True)``: sample the same patch locations in each layer's features, map
    them with a per-layer MLP (Linear-ReLU-Linear to ``nc``) and L2-normalise."""

    def __init__(self, in_channels: list[int], nc: int = 256):
        super().__init__()
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)) for c in in_channels)
        init_weights(self)

    def forward(self, feats: list[torch.Tensor], num_patches: int, patch_ids: list[torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        out_feats, out_ids = [], []
        for i, feat in enumerate(feats):
            flat = feat.permute(0, 2, 3, 1).flatten(1, 2)  # (B, H*W, C)
            if patch_ids is not None:
                ids = patch_ids[i]
            else:
                ids = torch.randperm(flat.shape[1], generator=generator)[: min(num_patches, flat.shape[1])].to(feat.device)
            x = self.mlps[i](flat[:, ids, :].flatten(0, 1))
            # F.normalize: same value as x / (|x| + 1e-7), but a finite gradient where x is exactly 0 (a
            # patch whose ReLU features all vanish), where the hand-written form back-propagates NaN
            out_feats.append(F.normalize(x, dim=1, eps=1e-7))
            out_ids.append(ids)
        return out_feats, out_ids


def patch_nce_loss(feat_q: torch.Tensor, feat_k: torch.Tensor, batch_size: int, nce_t: float = 0.07) -> torch.Tensor:
    """PatchNCE (CUT ``PatchNCELoss``, negatives from the same image only): per-patch cross-entropy.

    ``feat_q``, ``feat_k``: (batch_size * n_patches, C), L2-normalised. Returns the per-patch losses.
    """
    n, dim = feat_q.shape
    feat_k = feat_k.detach()
    l_pos = (feat_q * feat_k).sum(1, keepdim=True)  # (n, 1)
    q = feat_q.view(batch_size, -1, dim)
    k = feat_k.view(batch_size, -1, dim)
    npatches = q.shape[1]
    l_neg = torch.bmm(q, k.transpose(2, 1))
    diagonal = torch.eye(npatches, device=q.device, dtype=torch.bool)[None]
    l_neg = l_neg.masked_fill(diagonal, -10.0).view(-1, npatches)
    logits = torch.cat((l_pos, l_neg), dim=1) / nce_t
    return F.cross_entropy(logits, torch.zeros(n, dtype=torch.long, device=q.device), reduction="none")
