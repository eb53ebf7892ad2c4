"""CUT and FastCUT (Park et al. 2020) label map → echo image.

The training step is the reference ``CUTModel.optimize_parameters`` (taesungp/contrastive-unpaired-translation
``models/cut_model.py``): one generator G, a PatchGAN D (no image pool), and PatchNCE between the encoder
features of the input and of the output at ``nce_layers`` (indices into G's layer list; with the default
anti-aliased ResNet, 0 = padded input, 4 and 8 = the two downsampling convs, 12 and 16 = residual blocks 1
and 5), ``num_patches`` patches per layer through the MLP head :class:`~generators.networks.PatchSampleF`,
temperature ``nce_T``. CUT adds the identity NCE loss on G(B) (``nce_idt``); FastCUT uses λ_NCE = 10, no
identity loss, and flip-equivariance. Uses ``netG`` (ResNet only, as the reference's NCE encoder needs it),
``ngf``, ``ndf``, ``n_layers_D``, ``norm``, ``gan_mode``, ``lambda_GAN``, ``lambda_NCE``, ``nce_idt``,
``nce_layers``, ``num_patches``, ``nce_T``, ``netF_nc``, ``flip_equivariance``, ``antialias``; ignores
``lambda_cyc``, ``lambda_identity``, ``pool_size``.

Presets
-------
``paper``: the paper gives PatchNCE layers 0,4,8,12,16, 256 patches, τ 0.07, λ_GAN 1, λ_NCE 1 + identity NCE,
batch size 32, 2000 epochs at constant lr (Adam); it does not name the generator, so the CUT repo defaults
fill the rest: resnet_9blocks with anti-aliased sampling, ngf = ndf = 64, instance norm, 70×70 PatchGAN,
LSGAN, lr 2e-4, β₁ 0.5, 256×256. ``fastcut``'s ``paper``: the same with λ_NCE 10, no identity, flip-equivariance.
``tiny``: resnet_6blocks, 64×64, ngf = ndf = 16, 64 patches (MLP width 64), 64 images, batch 1, 5 epochs.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from generators.translation import TranslationConfig, TranslationGenerator
from harness.errors import UsageError
from harness.registry import generators

PAPER = TranslationConfig(
    netG="resnet_9blocks", ngf=64, ndf=64, n_layers_D=3, norm="instance", image_size=256, batch_size=32,
    lr=2e-4, beta1=0.5, n_epochs=2000, n_epochs_decay=0, gan_mode="lsgan", antialias=True, pool_size=0,
    lambda_GAN=1.0, lambda_NCE=1.0, nce_idt=True, nce_layers="0,4,8,12,16", num_patches=256, nce_T=0.07,
    flip_equivariance=False, save_every=5, n_train=1000,
)
TINY = PAPER.replace(netG="resnet_6blocks", ngf=16, ndf=16, image_size=64, batch_size=1, n_epochs=5,
                     num_patches=64, netF_nc=64, n_train=64)
FAST_CHANGES = {"lambda_NCE": 10.0, "nce_idt": False, "flip_equivariance": True}


def nce_channels(g, layers: list[int], device=None) -> list[int]:
    """Channel counts of G's features at ``layers`` (from a tiny forward pass; works on the meta device)."""
    import torch

    if max(layers) >= len(g.model):
        raise UsageError(f"nce_layers {layers}: the generator has only {len(g.model)} layers (0..{len(g.model) - 1})")
    with torch.no_grad():
        x = torch.zeros(1, 3, 32, 32, device=device if device is not None else next(g.parameters()).device)
        return [f.shape[1] for f in g.encode(x, layers)]


@generators.register("cut")
class CUTGenerator(TranslationGenerator):
    """CUT: contrastive unpaired translation (PatchNCE) of phantom label maps into echo images."""

    description: ClassVar[str] = "CUT label map → echo image (PatchNCE layers 0,4,8,12,16, 256 patches, τ 0.07)"
    presets: ClassVar[dict] = {"paper": PAPER, "tiny": TINY}
    sampler: ClassVar[str] = "G"

    @classmethod
    def check_config(cls, config: TranslationConfig) -> None:
        from generators.networks import RESNET_BLOCKS

        config.validate()
        if config.netG not in RESNET_BLOCKS:
            raise UsageError(f"{cls.name}: netG must be one of {', '.join(RESNET_BLOCKS)} (the PatchNCE encoder); "
                             f"got {config.netG!r}")
        if not config.layers() or min(config.layers()) < 0:
            raise UsageError(f"{cls.name}: nce_layers {config.nce_layers!r} must list layer indices >= 0")

    @classmethod
    def build_networks(cls, config: TranslationConfig, *, init: bool = True, sampling_only: bool = False) -> dict:
        from generators.networks import NLayerDiscriminator, PatchSampleF, define_g, init_weights

        g = define_g(config.netG, 3, 3, config.ngf, config.norm, config.use_dropout, config.antialias, init)
        if sampling_only:
            return {"G": g}
        d = NLayerDiscriminator(3, config.ndf, config.n_layers_D, config.norm, config.antialias)
        f = PatchSampleF(nce_channels(g, config.layers()), config.netF_nc)
        return {"G": g, "D": init_weights(d) if init else d, "F": f}

    def setup_training(self, config: TranslationConfig, rng: np.random.Generator) -> None:
        import torch

        from generators.networks import GANLoss

        betas = (config.beta1, config.beta2)
        self.optimizers = {name: torch.optim.Adam(self.nets[name].parameters(), lr=config.lr, betas=betas)
                           for name in ("G", "D", "F")}
        self.gan_loss = GANLoss(config.gan_mode).to(self.device)
        for net in self.nets.values():
            net.train()

    def nce_loss(self, src, tgt, flipped: bool):
        """Mean PatchNCE over ``nce_layers`` between G's features of ``src`` (keys) and ``tgt`` (queries)."""
        import torch

        from generators.networks import patch_nce_loss

        c, g, f = self.config, self.nets["G"], self.nets["F"]
        layers = c.layers()
        feat_q = g.encode(tgt, layers)
        if flipped:
            feat_q = [torch.flip(q, [3]) for q in feat_q]
        feat_k = g.encode(src, layers)
        pool_k, ids = f(feat_k, c.num_patches)
        pool_q, _ = f(feat_q, c.num_patches, ids)
        total = sum(patch_nce_loss(q, k, src.shape[0], c.nce_T).mean() * c.lambda_NCE for q, k in zip(pool_q, pool_k))
        return total / len(layers)

    def train_step(self, real_a, real_b, rng: np.random.Generator) -> dict[str, float]:
        import torch

        c, n, gan = self.config, self.nets, self.gan_loss
        real = torch.cat((real_a, real_b), 0) if c.nce_idt else real_a
        flipped = bool(c.flip_equivariance and rng.uniform() < 0.5)
        if flipped:
            real = torch.flip(real, [3])
        fake = n["G"](real)
        fake_b = fake[: real_a.shape[0]]
        idt_b = fake[real_a.shape[0]:] if c.nce_idt else None

        n["D"].requires_grad_(True)
        self.optimizers["D"].zero_grad()
        losses = {"D_fake": gan(n["D"](fake_b.detach()), False), "D_real": gan(n["D"](real_b), True)}
        ((losses["D_fake"] + losses["D_real"]) * 0.5).backward()
        self.optimizers["D"].step()

        n["D"].requires_grad_(False)
        self.optimizers["G"].zero_grad()
        self.optimizers["F"].zero_grad()
        losses["G_GAN"] = gan(n["D"](fake_b), True) * c.lambda_GAN
        losses["NCE"] = self.nce_loss(real_a, fake_b, flipped)
        nce_both = losses["NCE"]
        if idt_b is not None:
            losses["NCE_Y"] = self.nce_loss(real_b, idt_b, flipped)
            nce_both = (losses["NCE"] + losses["NCE_Y"]) * 0.5
        (losses["G_GAN"] + nce_both).backward()
        self.optimizers["G"].step()
        self.optimizers["F"].step()
        return {k: float(v.detach()) for k, v in losses.items()}


@generators.register("fastcut")
class FastCUTGenerator(CUTGenerator):
    """FastCUT: CUT with λ_NCE 10, no identity NCE, flip-equivariance."""

    description: ClassVar[str] = "FastCUT label map → echo image (λ_NCE 10, no identity NCE, flip-equivariance)"
    presets: ClassVar[dict] = {"paper": PAPER.replace(**FAST_CHANGES), "tiny": TINY.replace(**FAST_CHANGES)}
