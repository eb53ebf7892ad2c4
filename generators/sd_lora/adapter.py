"""``sd-lora``: Stable Diffusion 1.5 + a LoRA fine-tuned on captioned echo frames (the paper's third generator).

Training (:meth:`SDLoRAGenerator.fit`, ``harness train --generator sd-lora``) is in
:mod:`generators.sd_lora.train`; sampling is here. ``load(checkpoint)`` reads the LoRA folder's
``config.json``, resolves the base it was trained on (:mod:`generators.sd_lora.base_model`; never downloads),
refuses a base whose fingerprint or layer shapes differ, builds a ``StableDiffusionPipeline`` and loads the
LoRA with diffusers' ``load_lora_weights``.

Sampling options (``-o KEY=VALUE``), with defaults:

- ``prompts``: a text file, one prompt per line; image ``i`` gets line ``i mod L``. Default: the checkpoint's
  ``prompts.txt`` (its distinct training captions). ``--conditions asd,vsd`` instead writes phantom-style
  captions for those conditions (image ``i`` gets condition ``i mod k``); prompts and conditions exclude each
  other.
- ``steps`` (50; 10 when the base is ``tiny``), ``guidance`` (7.5), ``scheduler`` (``default`` = the base's
  own, PNDM for SD 1.5; or ``ddim``, ``pndm``, ``dpm`` (DPM-Solver++ multistep), ``euler``, ``ddpm``):
  diffusers' ``StableDiffusionPipeline`` defaults.
- ``size``: output side in pixels; default the side of the training images (the set's size, 256 for the
  paper's frames), generated at the training resolution and resized (bicubic).
- ``lora_scale`` (1.0), ``base`` (override the recorded base), ``base_config`` (configs for a single-file base),
  ``allow_base_mismatch`` (false).

Image ``i`` is drawn with its own ``torch.Generator`` seeded by ``image_seed(seed, i)``, so a batch's
composition never changes which noise an image starts from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from generators.base import GeneratedBatch, Generator, image_seed
from generators.sd_lora.config import DEFAULT_BASE, PRESETS, SDLoRAConfig
from harness.errors import DataError, UsageError
from harness.registry import generators

log = logging.getLogger(__name__)

SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "dpm": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "ddpm": "DDPMScheduler",
}
OPTIONS = ("prompts", "steps", "guidance", "scheduler", "size", "lora_scale", "base", "base_config",
           "allow_base_mismatch")
CONFIG_DIR = Path(__file__).parent


def condition_prompts(condition: str) -> list[str]:
    """Every phantom-style caption of ``condition`` (ages × defect variants), in a fixed order."""
    from harness.data.phantom import AGES, caption_for

    variants = {"asd": ("no-upper-margin", "margins"), "vsd": ("perimembranous", "muscular")}.get(condition, ("",))
    return [caption_for(condition, age, v) for v in variants for age in AGES]


@generators.register("sd-lora")
class SDLoRAGenerator(Generator):
    """Stable Diffusion 1.5 + LoRA (rank 8, all UNet attention projections), text-conditioned."""

    description: ClassVar[str] = "Stable Diffusion 1.5 + LoRA (paper: rank 8, UNet attention, 4 epochs, lr 9e-4)"
    conditions: ClassVar[tuple[str, ...]] = ("normal", "asd", "vsd", "dilated-lv", "dilated-rv", "lvh")
    trainable: ClassVar[bool] = True
    batch_size_invariant: ClassVar[bool] = True  # per-image noise; batched float math may differ in the last bits
    config_class: ClassVar[type] = SDLoRAConfig
    presets: ClassVar[dict] = PRESETS

    def __init__(self, *, data: Any = None, **options: Any):
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise UsageError(f"generator 'sd-lora' has no option(s) {', '.join(unknown)}; options: {', '.join(OPTIONS)}")
        super().__init__(**options)
        self.data = data
        self.steps = _opt(options, "steps", int, None)
        self.guidance = _opt(options, "guidance", float, 7.5)
        self.scheduler = str(options.get("scheduler", "default"))
        self.size = _opt(options, "size", int, None)
        self.lora_scale = _opt(options, "lora_scale", float, 1.0)
        self.allow_base_mismatch = str(options.get("allow_base_mismatch", "false")).lower() in ("1", "true", "yes")
        if self.scheduler != "default" and self.scheduler not in SCHEDULERS:
            raise UsageError(f"sd-lora scheduler {self.scheduler!r}: choose default or {', '.join(SCHEDULERS)}")
        if self.steps is not None and self.steps < 1:
            raise UsageError(f"sd-lora steps must be >= 1 (got {self.steps})")
        if self.size is not None and not 8 <= self.size <= 4096:
            raise UsageError(f"sd-lora size must be between 8 and 4096 (got {self.size})")
        self.prompt_list: list[str] | None = None
        if options.get("prompts"):
            self.prompt_list = read_prompts(Path(str(options["prompts"])))
        self.pipe = None
        self.meta: dict | None = None
        self.checkpoint: Path | None = None
        self.device = "cpu"

    # training ------------------------------------------------------------------------------------
    def fit(self, train: Any, out_dir: Path, config: SDLoRAConfig | str | None = None, *, base: str | None = None,
            resume: bool = False, force: bool = False, progress=None, split: str | None = None,
            device: str = "auto") -> Path:
        """Train a LoRA on ``train`` into ``out_dir``; ``base`` defaults to the preset's (SD 1.5 hub id / tiny).

        ``progress(step, total_steps, {"loss": loss})`` is called after every optimizer step.
        """
        from generators.sd_lora.train import train_lora

        preset = config if isinstance(config, str) else None
        config = self.resolve_config(config)
        if base is None:
            base = DEFAULT_BASE.get(preset or "paper", DEFAULT_BASE["paper"])
        out = train_lora(train, Path(out_dir), config, base=base, resume=resume, force=force, progress=progress,
                         split=split, device=device)
        self.checkpoint = out
        return out

    # sampling ------------------------------------------------------------------------------------
    def load(self, checkpoint: Path | None = None, device: str = "auto") -> None:
        import torch
        from safetensors.torch import load_file

        from generators.sd_lora.base_model import load_pipeline, resolve_base
        from generators.sd_lora.train import WEIGHTS_NAME, check_lora_matches_unet, read_checkpoint_config
        from harness.features.base import resolve_device

        if checkpoint is None:
            raise UsageError("generator 'sd-lora' needs --checkpoint DIR (a LoRA folder written by "
                             "`harness train --generator sd-lora`)")
        checkpoint = Path(checkpoint)
        meta = read_checkpoint_config(checkpoint)
        recorded = meta["base"]
        base = resolve_base(str(self.options.get("base") or recorded["spec"]), config_dir=self.options.get("base_config"))
        if base.fingerprint != recorded["fingerprint"] and not self.allow_base_mismatch:
            raise DataError(f"{checkpoint}: this LoRA was trained on base {recorded['spec']!r} (fingerprint "
                            f"{recorded['fingerprint'][:12]}), but base {base.spec!r} resolves to a different model "
                            f"(fingerprint {base.fingerprint[:12]}); use the base it was trained on, or pass -o "
                            f"allow_base_mismatch=true to load it anyway")
        self.device = resolve_device(device)
        dtype = torch.float16 if self.device.startswith("cuda") else None
        pipe = load_pipeline(base, torch_dtype=dtype)
        check_lora_matches_unet(load_file(str(checkpoint / WEIGHTS_NAME)), pipe.unet, checkpoint)
        pipe.load_lora_weights(str(checkpoint), weight_name=WEIGHTS_NAME)
        if self.scheduler != "default":
            import diffusers

            pipe.scheduler = getattr(diffusers, SCHEDULERS[self.scheduler]).from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(self.device)
        self.meta, self.checkpoint = meta, checkpoint
        self.train_data = meta.get("train_data")
        if self.steps is None:
            self.steps = 10 if base.kind == "tiny" else 50
        if self.prompt_list is None:
            prompts_file = checkpoint / meta.get("prompts_file", "prompts.txt")
            self.prompt_list = read_prompts(prompts_file) if prompts_file.is_file() else [""]

    def sample(self, n: int, *, seed: int, batch_size: int = 32, conditions: Sequence[str] | None = None,
               start: int = 0) -> Iterator[GeneratedBatch]:
        """Yield images ``start .. n-1`` (uint8 (B, size, size, 3)) with the prompt (and condition) of each."""
        import torch
        from PIL import Image

        self.check_conditions(conditions)
        if self.pipe is None or self.meta is None:
            raise UsageError("generator 'sd-lora': call load(checkpoint) before sample")
        if conditions and self.options.get("prompts"):
            raise UsageError("sd-lora: give either -o prompts=FILE or --conditions, not both")
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1 (got {batch_size})")
        resolution = int(self.meta["resolution"])
        size = self.size or int(self.meta.get("image_size") or resolution)
        for lo in range(start, n, batch_size):
            idx = list(range(lo, min(n, lo + batch_size)))
            conds = [conditions[i % len(conditions)] for i in idx] if conditions else None
            if conds:
                prompts = [_cycle(condition_prompts(c), i // len(conditions)) for c, i in zip(conds, idx)]
            else:
                prompts = [_cycle(self.prompt_list, i) for i in idx]
            gens = [torch.Generator(device=self.device).manual_seed(image_seed(seed, i)) for i in idx]
            with torch.no_grad():
                out = self.pipe(prompts, height=resolution, width=resolution, num_inference_steps=self.steps,
                                guidance_scale=self.guidance, generator=gens, output_type="np",
                                cross_attention_kwargs={"scale": self.lora_scale})
            images = np.clip(np.asarray(out.images) * 255.0 + 0.5, 0, 255).astype(np.uint8)
            if size != resolution:
                images = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC)) for im in images])
            yield GeneratedBatch(images=images, prompts=prompts, conditions=conds)

    # metadata -------------------------------------------------------------------------------------
    def fingerprint(self) -> dict:
        out = {"generator": "sd-lora", "options": {k: str(v) for k, v in sorted(self.options.items())},
               "steps": self.steps, "guidance": self.guidance, "scheduler": self.scheduler, "size": self.size,
               "lora_scale": self.lora_scale}
        if self.prompt_list is not None:
            out["prompts_sha256"] = hashlib.sha256("\n".join(self.prompt_list).encode()).hexdigest()
        if self.meta is not None:
            out["base_fingerprint"] = self.meta["base"]["fingerprint"]
            out["lora_steps"] = self.meta["steps"]
        return out

    def describe(self) -> dict:
        out = super().describe()
        if self.meta is not None:
            out.update(checkpoint=str(self.checkpoint), base=self.meta["base"], rank=self.meta["rank"],
                       targets=self.meta["targets"], lora_parameters=self.meta["lora_parameters"],
                       steps=self.steps, guidance=self.guidance, scheduler=self.scheduler)
        return out

    @classmethod
    def describe_preset(cls, preset: str) -> dict:
        """Networks of ``preset`` with parameter counts, built on the meta device (no weights needed).

        ``paper`` uses the shipped SD 1.5 configs (``sd15_*_config.json``); ``tiny`` the tiny base's configs.
        """
        from generators.sd_lora.train import lora_layers, lora_parameter_count

        config = cls.resolve_config(preset)
        nets = build_meta_networks(preset)
        unet = nets["unet"]
        out = {
            "generator": "sd-lora",
            "preset": preset,
            "base": DEFAULT_BASE.get(preset, "?"),
            "networks": {k: {"class": type(v).__name__, "parameters": sum(p.numel() for p in v.parameters()),
                             "trainable": False} for k, v in nets.items()},
            "lora": {"rank": config.rank, "alpha": config.alpha, "targets": config.targets,
                     "target_modules": config.target_modules, "layers": len(lora_layers(unet, config)),
                     "parameters": lora_parameter_count(unet, config)},
            "config": dataclasses.asdict(config),
        }
        other = "cross-attention" if config.targets == "attention" else "attention"
        alt = dataclasses.replace(config, targets=other)
        out["lora"]["parameters_if_" + other.replace("-", "_")] = lora_parameter_count(unet, alt)
        out["total_parameters"] = sum(v["parameters"] for v in out["networks"].values())
        return out


def build_meta_networks(preset: str) -> dict:
    """UNet, VAE and text encoder of the preset's base on the meta device (configs shipped / built in)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from generators.sd_lora import base_model

    if preset == "tiny":
        unet_cfg, vae_cfg = base_model.tiny_unet_config(), base_model.tiny_vae_config()
        text_cfg = base_model.tiny_text_config(514)
    else:
        unet_cfg, vae_cfg, text_cfg = (_read_config(f"sd15_{n}_config.json") for n in ("unet", "vae", "text_encoder"))
    with torch.device("meta"):
        return {"unet": UNet2DConditionModel.from_config(unet_cfg), "vae": AutoencoderKL.from_config(vae_cfg),
                "text_encoder": CLIPTextModel(CLIPTextConfig(**text_cfg))}


def _read_config(name: str) -> dict:
    cfg = json.loads((CONFIG_DIR / name).read_text(encoding="utf-8"))
    return {k: v for k, v in cfg.items() if not k.startswith("_") and k not in ("architectures", "transformers_version")}


def read_prompts(path: Path) -> list[str]:
    """Non-empty lines of a prompts file (UTF-8); an empty or missing file is a DataError."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"prompts file {path}: cannot read ({exc})") from None
    prompts = [line for line in lines if line]
    if not prompts:
        raise DataError(f"prompts file {path} has no non-empty line (one prompt per line)")
    return prompts


def _cycle(items: Sequence[str], i: int) -> str:
    return items[i % len(items)]


def _opt(options: dict, key: str, kind: type, default):
    if key not in options or options[key] is None:
        return default
    try:
        return kind(options[key])
    except (TypeError, ValueError):
        raise UsageError(f"sd-lora option {key}={options[key]!r} is not a valid {kind.__name__}") from None
