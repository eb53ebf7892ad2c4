"""CycleGAN (Zhu et al. 2017) label map → echo image, as configured in the paper.

The training step is the reference ``CycleGANModel.optimize_parameters`` (junyanz/pytorch-CycleGAN-and-pix2pix
``models/cycle_gan_model.py``): G_A: A→B (label map → image), G_B: B→A, D_A judges domain B, D_B domain A;
LSGAN losses, cycle losses λ_A = λ_B = ``lambda_cyc``, identity losses ``lambda_identity · λ``, discriminators
fed from 50-image pools, each D loss halved. Uses ``netG``, ``ngf``, ``ndf``, ``n_layers_D``, ``norm``,
``gan_mode``, ``lambda_cyc``, ``lambda_identity``, ``pool_size``, ``use_dropout``; ignores the CUT options.

Presets
-------
``paper``: unet_256 (8 downsamplings), 256×256, 70×70 PatchGAN, LSGAN, λ_cyc 10, identity 0.5, pool 50,
ngf = ndf = 64, batch size 1, Adam(β₁ 0.5) with a constant lr of 2e-4 — the repo default; the paper prints
"1 × 10⁻⁵", which we take for a typo (the paper says it kept the repo defaults). It does not give the epoch
count (~24 h on an A100); we use the repo's 200 epochs, all at constant lr as the paper says. Checkpoints
every 5 epochs.
``tiny``: unet_64, 64×64, ngf = ndf = 16, 64 training images, batch 1, 5 epochs (320 iterations): a few
minutes on a 2-core CPU.
"""

from __future__ import annotations

import itertools
from typing import ClassVar

import numpy as np

from generators.translation import TranslationConfig, TranslationGenerator
from harness.registry import generators

PAPER = TranslationConfig(
    netG="unet_256", ngf=64, ndf=64, n_layers_D=3, norm="instance", image_size=256, batch_size=1,
    lr=2e-4, beta1=0.5, n_epochs=200, n_epochs_decay=0, gan_mode="lsgan", lambda_cyc=10.0, lambda_identity=0.5,
    pool_size=50, save_every=5, n_train=1000,
)
TINY = PAPER.replace(netG="unet_64", ngf=16, ndf=16, image_size=64, batch_size=1, n_epochs=5, n_train=64, save_every=5)


@generators.register("cyclegan")
class CycleGANGenerator(TranslationGenerator):
    """CycleGAN (unet_256 in the paper) translating phantom label maps into echo images."""

    description: ClassVar[str] = "CycleGAN label map → echo image (paper: unet_256, LSGAN, λcyc 10, idt 0.5, pool 50)"
    presets: ClassVar[dict] = {"paper": PAPER, "tiny": TINY}
    sampler: ClassVar[str] = "G_A"

    @classmethod
    def build_networks(cls, config: TranslationConfig, *, init: bool = True, sampling_only: bool = False) -> dict:
        from generators.networks import NLayerDiscriminator, define_g, init_weights

        def g():
            return define_g(config.netG, 3, 3, config.ngf, config.norm, config.use_dropout, config.antialias, init)

        if sampling_only:
            return {"G_A": g()}

        def d():
            net = NLayerDiscriminator(3, config.ndf, config.n_layers_D, config.norm, config.antialias)
            return init_weights(net) if init else net

        return {"G_A": g(), "G_B": g(), "D_A": d(), "D_B": d()}

    def setup_training(self, config: TranslationConfig, rng: np.random.Generator) -> None:
        import torch

        from generators.networks import GANLoss, ImagePool

        n = self.nets
        betas = (config.beta1, config.beta2)
        self.optimizers = {
            "G": torch.optim.Adam(itertools.chain(n["G_A"].parameters(), n["G_B"].parameters()), lr=config.lr, betas=betas),
            "D": torch.optim.Adam(itertools.chain(n["D_A"].parameters(), n["D_B"].parameters()), lr=config.lr, betas=betas),
        }
        self.gan_loss = GANLoss(config.gan_mode).to(self.device)
        self.pools = {"A": ImagePool(config.pool_size, rng), "B": ImagePool(config.pool_size, rng)}
        for net in n.values():
            net.train()

    def train_step(self, real_a, real_b, rng: np.random.Generator) -> dict[str, float]:
        import torch.nn.functional as F

        c, n, gan = self.config, self.nets, self.gan_loss
        fake_b = n["G_A"](real_a)
        rec_a = n["G_B"](fake_b)
        fake_a = n["G_B"](real_b)
        rec_b = n["G_A"](fake_a)

        # generators (discriminators frozen)
        for name in ("D_A", "D_B"):
            n[name].requires_grad_(False)
        self.optimizers["G"].zero_grad()
        losses = {}
        if c.lambda_identity > 0:
            losses["idt_A"] = F.l1_loss(n["G_A"](real_b), real_b) * c.lambda_cyc * c.lambda_identity
            losses["idt_B"] = F.l1_loss(n["G_B"](real_a), real_a) * c.lambda_cyc * c.lambda_identity
        losses["G_A"] = gan(n["D_A"](fake_b), True)
        losses["G_B"] = gan(n["D_B"](fake_a), True)
        losses["cycle_A"] = F.l1_loss(rec_a, real_a) * c.lambda_cyc
        losses["cycle_B"] = F.l1_loss(rec_b, real_b) * c.lambda_cyc
        sum(losses.values()).backward()
        self.optimizers["G"].step()

        # discriminators, on pooled fakes
        for name in ("D_A", "D_B"):
            n[name].requires_grad_(True)
        self.optimizers["D"].zero_grad()
        pooled_b, pooled_a = self.pools["B"].query(fake_b), self.pools["A"].query(fake_a)
        losses["D_A"] = (gan(n["D_A"](real_b), True) + gan(n["D_A"](pooled_b.detach()), False)) * 0.5
        losses["D_B"] = (gan(n["D_B"](real_a), True) + gan(n["D_B"](pooled_a.detach()), False)) * 0.5
        (losses["D_A"] + losses["D_B"]).backward()
        self.optimizers["D"].step()
        return {k: float(v.detach()) for k, v in losses.items()}

    def extra_state(self) -> dict:
        return {k: list(p.images) for k, p in self.pools.items()}

    def load_extra_state(self, state: dict) -> None:
        for k, images in state.items():
            self.pools[k].images = [im.to(self.device) for im in images]
