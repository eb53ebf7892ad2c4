"""SD-LoRA training configuration: one dataclass, named presets ``paper`` and ``tiny``.

Target sets (which UNet linear layers get a LoRA), see docs/sd-lora.md for the reasoning:

- ``attention`` (``paper``): ``to_q``, ``to_k``, ``to_v``, ``to_out.0`` of *every* attention layer of the
  UNet's transformer blocks — self-attention (``attn1``) and cross-attention (``attn2``) in all down, mid
  and up blocks. This is what diffusers' ``train_text_to_image_lora.py`` adapted in 2023 (one
  ``LoRAAttnProcessor`` per attention processor, 32 of them in SD 1.5) and what its current peft version
  adapts (``target_modules=["to_k", "to_q", "to_v", "to_out.0"]``); the HF LoRA blog post that popularised
  the script describes it as "LoRA on the cross-attention layers". We take the paper's wording to be that
  description of that script.
- ``cross-attention``: the same four projections of the cross-attention layers (``attn2``) only — the
  literal reading of the paper's sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from generators.base import replace_config
from harness.errors import UsageError

TARGET_MODULES: dict[str, str | list[str]] = {
    # peft: a list matches module-name suffixes; a string is a full-match regex
    "attention": ["to_q", "to_k", "to_v", "to_out.0"],
    "cross-attention": r".*\.attn2\.(to_q|to_k|to_v|to_out\.0)",
}
MIXED_PRECISION = ("no", "fp16", "bf16")
OPTIMIZERS = ("adam", "adamw")


@dataclass(frozen=True)
class SDLoRAConfig:
    """Everything that determines an SD-LoRA training run (the base model is given separately).

    rank, alpha : LoRA rank r and scale alpha (the update is ``alpha / r · B A``); diffusers' script uses
        alpha = r. rank must be >= 1.
    targets : ``attention`` or ``cross-attention`` (see module docstring).
    resolution : training (and sampling) resolution in pixels; images are resized (shorter side) and
        centre-cropped to it. The paper's images are 256×256; SD 1.5 is native at 512.
    n_captioned, n_regularisation : how many captioned images, and how many regularisation images trained with
        the empty prompt (paper: 40 and 400).
    epochs, max_steps : passes over the (captioned + regularisation) set; ``max_steps`` > 0 stops earlier.
    batch_size, grad_accum : images per forward pass, and passes per optimizer step.
    lr, optimizer, weight_decay, adam_beta1/2, adam_eps, max_grad_norm : the optimizer (constant lr).
    mixed_precision : ``no`` | ``fp16`` | ``bf16`` (GPU only; frozen weights are cast, LoRA weights stay fp32).
    gradient_checkpointing : trade compute for memory in the UNet.
    save_every : optimizer steps between saved LoRA checkpoints (the end is always saved).
    seed : data order, noise and timesteps are drawn from (seed, step), so a resumed run equals an
        uninterrupted one.
    """

    rank: int = 8
    alpha: float = 8.0
    targets: str = "attention"
    resolution: int = 256
    n_captioned: int = 40
    n_regularisation: int = 400
    epochs: int = 4
    max_steps: int = 0
    batch_size: int = 2
    grad_accum: int = 1
    lr: float = 9e-4
    optimizer: str = "adam"
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    save_every: int = 100
    seed: int = 0

    def replace(self, **overrides: Any) -> SDLoRAConfig:
        """A copy with ``overrides``; unknown names are a UsageError; strings are converted (for the CLI)."""
        return replace_config(self, overrides, "sd-lora")

    def validate(self) -> None:
        """Raise UsageError naming the first invalid field."""
        if self.rank < 1:
            raise UsageError(f"sd-lora rank must be >= 1 (got {self.rank})")
        if self.alpha <= 0:
            raise UsageError(f"sd-lora alpha must be > 0 (got {self.alpha})")
        if self.targets not in TARGET_MODULES:
            raise UsageError(f"sd-lora targets {self.targets!r}: choose one of {', '.join(TARGET_MODULES)}")
        if self.resolution < 16 or self.resolution % 8:
            raise UsageError(f"sd-lora resolution must be a multiple of 8 and >= 16 (got {self.resolution})")
        for name in ("batch_size", "grad_accum", "save_every", "n_captioned"):
            if getattr(self, name) < 1:
                raise UsageError(f"sd-lora option {name} must be >= 1 (got {getattr(self, name)})")
        for name in ("n_regularisation", "max_steps", "epochs", "weight_decay", "max_grad_norm"):
            if getattr(self, name) < 0:
                raise UsageError(f"sd-lora option {name} must be >= 0 (got {getattr(self, name)})")
        if self.epochs == 0 and self.max_steps == 0:
            raise UsageError("sd-lora: give epochs >= 1 or max_steps >= 1")
        if self.lr <= 0:
            raise UsageError(f"sd-lora lr must be > 0 (got {self.lr})")
        if self.mixed_precision not in MIXED_PRECISION:
            raise UsageError(f"sd-lora mixed_precision {self.mixed_precision!r}: one of {', '.join(MIXED_PRECISION)}")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"sd-lora optimizer {self.optimizer!r}: one of {', '.join(OPTIMIZERS)}")

    @property
    def target_modules(self) -> str | list[str]:
        return TARGET_MODULES[self.targets]

    @property
    def n_train(self) -> int:
        return self.n_captioned + self.n_regularisation

    def steps_per_epoch(self, n_images: int | None = None) -> int:
        """Optimizer steps per epoch (the last, partial batch is kept)."""
        n = self.n_train if n_images is None else n_images
        micro = -(-n // self.batch_size)
        return -(-micro // self.grad_accum)

    def total_steps(self, n_images: int | None = None) -> int:
        full = self.epochs * self.steps_per_epoch(n_images)
        if self.max_steps > 0:
            return self.max_steps if self.epochs == 0 else min(self.max_steps, full)
        return full


PAPER = SDLoRAConfig()
TINY = SDLoRAConfig(resolution=32, n_captioned=6, n_regularisation=6, epochs=1, max_steps=4, batch_size=2,
                    lr=1e-3, save_every=2)
PRESETS: dict[str, SDLoRAConfig] = {"paper": PAPER, "tiny": TINY}
DEFAULT_BASE: dict[str, str] = {"paper": "stable-diffusion-v1-5/stable-diffusion-v1-5", "tiny": "tiny"}
