"""SD-LoRA training: captioned images + a regularisation set (empty prompt) → a diffusers LoRA folder.

The step follows diffusers' ``examples/text_to_image/train_text_to_image_lora.py`` (peft version): LoRA
(``init_lora_weights="gaussian"``) added to the UNet with ``unet.add_adapter``; UNet, VAE and text encoder
frozen; latents = ``vae.encode(x).latent_dist.sample() · scaling_factor``; timesteps uniform in
``[0, num_train_timesteps)``; ``noisy = DDPMScheduler.add_noise(latents, noise, t)`` with the base model's
scheduler config; MSE against the noise (or the velocity for v-prediction bases); gradient-norm clipping
(1.0); constant learning rate. Differences, on purpose: the optimizer is Adam (the paper) unless
``optimizer=adamw`` (the script's AdamW with weight decay); image order, VAE sampling, noise and timesteps
come from ``(seed, step)`` so that a resumed run is the same as an uninterrupted one; text embeddings are
computed once per distinct caption (the text encoder is frozen and has no dropout, so this changes nothing).

Output folder: ``pytorch_lora_weights.safetensors`` (diffusers format, loads with ``load_lora_weights``),
``config.json`` (base, rank, targets, data, steps, caption statistics), ``prompts.txt`` (the distinct training
captions, the default sampling prompts) and ``training_state.pt`` (optimizer + LoRA state for resuming).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generators.base import resume_check
from generators.sd_lora.base_model import BaseModel, load_pipeline, resolve_base
from generators.sd_lora.config import SDLoRAConfig
from harness.data.base import DataSource, to_rgb
from harness.errors import DataError, UsageError
from harness.io import atomic_write_json

log = logging.getLogger(__name__)

FORMAT = "echobench-sd-lora"
FORMAT_VERSION = 1
WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
STATE_NAME = "training_state.pt"
PROMPTS_NAME = "prompts.txt"
PAPER_MEAN_WORDS = 22.95
ProgressFn = Callable[[int, int, dict], None]  # (step, total steps, {"loss": ...})


# --------------------------------------------------------------------------------------------------
# data


@dataclass
class TrainingSet:
    """Preprocessed training images (uint8 (N, R, R, 3)), their prompts ("" for regularisation) and ids."""

    images: np.ndarray
    prompts: list[str]
    ids: list[str]
    n_captioned: int
    source_size: int  # side of the source images (the set's size: sampling resizes to it)

    def __len__(self) -> int:
        return len(self.ids)


def caption_stats(captions: list[str]) -> dict:
    """Word-count statistics of ``captions`` (whitespace-separated words), beside the paper's mean (22.95)."""
    words = [len(c.split()) for c in captions]
    if not words:
        return {"n": 0}
    return {"n": len(words), "mean_words": float(statistics.fmean(words)), "median_words": float(statistics.median(words)),
            "min_words": min(words), "max_words": max(words), "paper_mean_words": PAPER_MEAN_WORDS}


def check_caption_files(source: DataSource) -> None:
    """A folder's ``captions.csv`` rows must name files that exist; list the ones that do not."""
    captions = getattr(source, "captions", None)
    files = getattr(source, "files", None)
    if not isinstance(captions, dict) or not captions or files is None:
        return
    names = {Path(f).name for f in files}
    missing = sorted(name for name in captions if name not in names)
    if missing:
        shown = ", ".join(missing[:20]) + (f" ... ({len(missing)} in all)" if len(missing) > 20 else "")
        raise DataError(f"captions.csv in {getattr(source, 'root', '?')} names {len(missing)} file(s) that are not in "
                        f"the folder: {shown}; fix or remove those rows")


def _preprocess(image: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 (H, W[, C]) → RGB, shorter side resized to ``resolution`` (bilinear), centre crop."""
    from PIL import Image

    im = Image.fromarray(to_rgb(np.asarray(image, dtype=np.uint8)))
    w, h = im.size
    scale = resolution / min(w, h)
    nw, nh = max(resolution, round(w * scale)), max(resolution, round(h * scale))
    im = im.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - resolution) // 2, (nh - resolution) // 2
    return np.asarray(im.crop((left, top, left + resolution, top + resolution)), dtype=np.uint8)


def collect_training_set(source: DataSource, split: str, config: SDLoRAConfig) -> TrainingSet:
    """The first ``n_captioned`` samples with a non-empty caption, and ``n_regularisation`` other samples
    (trained with the empty prompt), read in order from ``split``.

    A phantom supplies both from its (captioned) train stream; a folder supplies captioned files through
    ``captions.csv`` and regularisation images from the remaining files (or captioned ones beyond the quota).
    """
    source.check_split(split)
    check_caption_files(source)
    count = source.count(split)
    want = config.n_train
    n_read = want if count is None else count
    cap_imgs, cap_txt, cap_ids, reg_imgs, reg_ids, uncaptioned = [], [], [], [], [], []
    size = 0
    for batch in source.iter_batches(split, n_read, batch_size=32):
        caps = batch.captions or [None] * len(batch)
        for image, cid, cap in zip(batch.images, batch.ids, caps):
            size = size or int(min(np.asarray(image).shape[:2]))
            text = (cap or "").strip()
            if text and len(cap_ids) < config.n_captioned:
                cap_imgs.append(_preprocess(image, config.resolution))
                cap_txt.append(text)
                cap_ids.append(cid)
            elif len(reg_ids) < config.n_regularisation:
                if not text:
                    uncaptioned.append(cid)
                reg_imgs.append(_preprocess(image, config.resolution))
                reg_ids.append(cid)
            if len(cap_ids) + len(reg_ids) >= want:
                break
        if len(cap_ids) + len(reg_ids) >= want:
            break
    name = getattr(source, "name", "data")
    if len(cap_ids) < config.n_captioned:
        shown = ", ".join(uncaptioned[:10]) + (" ..." if len(uncaptioned) > 10 else "")
        raise DataError(f"{name} split {split!r}: {len(cap_ids)} sample(s) have a non-empty caption but n_captioned="
                        f"{config.n_captioned} are required (captions come from captions.csv columns file, caption; "
                        f"empty or missing: {shown or 'none'}); add captions or lower n_captioned")
    if len(reg_ids) < config.n_regularisation:
        raise DataError(f"{name} split {split!r}: only {len(reg_ids)} image(s) left for the regularisation set but "
                        f"n_regularisation={config.n_regularisation}; add images or lower n_regularisation")
    return TrainingSet(images=np.stack(cap_imgs + reg_imgs), prompts=cap_txt + [""] * len(reg_ids),
                       ids=cap_ids + reg_ids, n_captioned=len(cap_ids), source_size=size)


# --------------------------------------------------------------------------------------------------
# LoRA bookkeeping


def _matches(name: str, targets: str | list[str]) -> bool:
    """peft's rule: a string is a full-match regex, a list matches the name or a ``.``-suffix of it."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def lora_layers(unet, config: SDLoRAConfig) -> list[tuple[str, int, int]]:
    """(module name, in_features, out_features) of every UNet linear layer ``config.targets`` adapts."""
    import torch

    return [(name, m.in_features, m.out_features) for name, m in unet.named_modules()
            if isinstance(m, torch.nn.Linear) and _matches(name, config.target_modules)]


def lora_parameter_count(unet, config: SDLoRAConfig) -> int:
    """rank · (in + out) summed over the adapted layers (A: r×in, B: out×r, no bias). Works on the meta device."""
    return sum(config.rank * (i + o) for _, i, o in lora_layers(unet, config))


def check_lora_matches_unet(state: dict, unet, where: Path) -> None:
    """Every LoRA tensor must address a linear layer of ``unet`` with matching in/out features."""
    import torch

    modules = dict(unet.named_modules())
    bad = []
    for key, tensor in state.items():
        m = re.fullmatch(r"(?:unet\.)?(.+?)\.(lora\.down|lora\.up|lora_A|lora_B)(?:\.default)?\.weight", key)
        if m is None:
            if key.startswith(("text_encoder.", "te_")):
                continue
            bad.append(f"{key} (not a UNet LoRA tensor)")
            continue
        layer = modules.get(m.group(1))
        if not isinstance(layer, torch.nn.Linear):
            bad.append(f"{m.group(1)} (no such linear layer in this base)")
            continue
        down = m.group(2) in ("lora.down", "lora_A")
        have = tensor.shape[1] if down else tensor.shape[0]
        need = layer.in_features if down else layer.out_features
        if have != need:
            bad.append(f"{key} ({have} features, the base has {need})")
    if bad:
        raise DataError(f"{where}: the LoRA does not fit this base model's UNet, so it was trained on a different base "
                        f"({len(bad)} mismatch(es), e.g. {'; '.join(bad[:3])}); load it with the base it was trained on")


# --------------------------------------------------------------------------------------------------
# training


def _seed_of(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def read_checkpoint_config(checkpoint: Path) -> dict:
    """config.json of an SD-LoRA folder (DataError when absent or of another format)."""
    path = Path(checkpoint) / "config.json"
    if not path.is_file():
        raise DataError(f"{checkpoint} is not an SD-LoRA checkpoint folder: config.json is missing "
                        f"(train one with `harness train --generator sd-lora`)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: not an SD-LoRA checkpoint (format {meta.get('format')!r}, expected {FORMAT!r})")
    if not (Path(checkpoint) / WEIGHTS_NAME).is_file():
        raise DataError(f"{checkpoint}: {WEIGHTS_NAME} is missing")
    return meta


def train_lora(train: DataSource, out_dir: Path, config: SDLoRAConfig, *, base: str | BaseModel,
               resume: bool = False, force: bool = False, progress: ProgressFn | None = None,
               split: str | None = None, device: str = "auto") -> Path:
    """Train a LoRA on ``train`` and write it to ``out_dir`` (see module docstring); returns ``out_dir``."""
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

    from harness.features.base import resolve_device

    config.validate()
    out_dir = Path(out_dir)
    base_model = base if isinstance(base, BaseModel) else resolve_base(base)
    state = None
    meta = resume_check(out_dir, dataclasses.asdict(config), lambda: read_checkpoint_config(out_dir), resume=resume,
                        force=force, what="SD-LoRA")
    if meta is not None:
        if meta["base"]["fingerprint"] != base_model.fingerprint and not force:
            raise UsageError(f"{out_dir} was trained on base {meta['base']['spec']!r}, not {base_model.spec!r}")
        if not (out_dir / STATE_NAME).is_file():
            raise DataError(f"{out_dir}: cannot resume, {STATE_NAME} is missing")
        state = torch.load(out_dir / STATE_NAME, map_location="cpu", weights_only=True)
    elif resume:
        log.info("nothing to resume in %s; starting a new run", out_dir)

    split = split or ("train" if "train" in train.splits else train.default_split)
    data = collect_training_set(train, split, config)
    stats = caption_stats(data.prompts[:data.n_captioned])
    log.info("SD-LoRA data: %d captioned + %d regularisation images; captions %.2f words on average (paper %.2f)",
             data.n_captioned, len(data) - data.n_captioned, stats.get("mean_words", 0.0), PAPER_MEAN_WORDS)

    dev = resolve_device(device)
    if config.mixed_precision != "no" and not dev.startswith("cuda"):
        raise UsageError(f"mixed_precision={config.mixed_precision} needs a GPU (device is {dev}); use mixed_precision=no")
    weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[config.mixed_precision]
    pipe = load_pipeline(base_model)
    unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    n_lora = lora_parameter_count(unet, config)
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
        module.to(dev, dtype=weight_dtype) if weight_dtype != torch.float32 else module.to(dev)
    vae.eval()
    text_encoder.eval()
    torch.manual_seed(config.seed)
    lora_config = LoraConfig(r=config.rank, lora_alpha=config.alpha, init_lora_weights="gaussian",
                             target_modules=config.target_modules)
    unet.add_adapter(lora_config)
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:  # LoRA weights train in fp32 even under mixed precision
        p.data = p.data.float()
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    if config.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=config.lr, betas=(config.adam_beta1, config.adam_beta2),
                                     eps=config.adam_eps, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.AdamW(params, lr=config.lr, betas=(config.adam_beta1, config.adam_beta2),
                                      eps=config.adam_eps, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if config.mixed_precision == "fp16" else None
    start = 0
    if state is not None:
        set_peft_model_state_dict(unet, {k: v.to(dev) for k, v in state["lora"].items()})
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start = int(state["step"])
        log.info("resuming SD-LoRA training at step %d", start)

    # frozen text encoder: one embedding per distinct prompt
    with torch.no_grad():
        embeds = {}
        for text in dict.fromkeys(data.prompts):
            ids = tokenizer([text], max_length=tokenizer.model_max_length, padding="max_length", truncation=True,
                            return_tensors="pt").input_ids.to(dev)
            embeds[text] = text_encoder(ids)[0][0]

    n, total, spe = len(data), config.total_steps(len(data)), config.steps_per_epoch(len(data))
    micro_per_epoch = -(-n // config.batch_size)
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type not in ("epsilon", "v_prediction"):
        raise DataError(f"base {base_model.spec}: scheduler prediction_type {prediction_type!r} is not supported")
    unet.train()
    t0, loss_value = time.perf_counter(), float("nan")
    for step in range(start, total):
        epoch, within = divmod(step, spe)
        order = np.random.default_rng([config.seed, epoch]).permutation(n)
        micros = [m for m in range(within * config.grad_accum, (within + 1) * config.grad_accum) if m < micro_per_epoch]
        step_loss = 0.0
        for k, m in enumerate(micros):
            idx = np.sort(order[m * config.batch_size:(m + 1) * config.batch_size])
            gen = torch.Generator(device=dev).manual_seed(_seed_of(config.seed, step, k))
            pixels = torch.from_numpy(data.images[idx]).to(dev).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            with torch.no_grad():
                latents = vae.encode(pixels.to(weight_dtype)).latent_dist.sample(generator=gen)
                latents = latents * vae.config.scaling_factor
            noise = torch.randn(latents.shape, generator=gen, device=dev, dtype=latents.dtype)
            timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(idx),), generator=gen,
                                      device=dev).long()
            noisy = noise_scheduler.add_noise(latents, noise, timesteps)
            target = noise if prediction_type == "epsilon" else noise_scheduler.get_velocity(latents, noise, timesteps)
            cond = torch.stack([embeds[data.prompts[i]] for i in idx])
            with torch.autocast(device_type="cuda", dtype=weight_dtype, enabled=config.mixed_precision != "no"):
                pred = unet(noisy, timesteps, cond).sample
            loss = F.mse_loss(pred.float(), target.float(), reduction="mean") / len(micros)
            (scaler.scale(loss) if scaler is not None else loss).backward()
            step_loss += float(loss.detach())
        if scaler is not None:
            scaler.unscale_(optimizer)
        if config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = step_loss
        if not np.isfinite(loss_value):
            raise DataError(f"SD-LoRA training diverged at step {step + 1} (loss {loss_value}); lower lr")
        if progress is not None:
            progress(step + 1, total, {"loss": loss_value})
        if (step + 1) % config.save_every == 0 or step + 1 == total:
            lora_state = get_peft_model_state_dict(unet)
            _save(out_dir, pipeline_cls=StableDiffusionPipeline, prompts=data.prompts[:data.n_captioned],
                  lora_diffusers=convert_state_dict_to_diffusers(lora_state),
                  train_state={"step": step + 1, "lora": {k: v.detach().cpu() for k, v in lora_state.items()},
                               "optimizer": optimizer.state_dict(),
                               "scaler": scaler.state_dict() if scaler is not None else {}},
                  meta=_meta(config, base_model, train, split, data, stats, step + 1, total, loss_value,
                             n_lora, time.perf_counter() - t0),
                  lora_metadata=lora_config.to_dict())
    if start >= total:
        log.info("%s already holds all %d steps; nothing to do", out_dir, total)
    return out_dir


def _meta(config, base_model, train, split, data, stats, step, total, loss, n_lora, seconds) -> dict:
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "generator": "sd-lora",
        "base": base_model.record(),
        "rank": config.rank, "alpha": config.alpha, "targets": config.targets,
        "target_modules": config.target_modules, "lora_parameters": n_lora,
        "resolution": config.resolution, "image_size": data.source_size,
        "train_data": train.spec_for(split),  # the training set's data spec: `harness run`'s default training set
        "data": {"source": train.fingerprint(), "split": split, "n_captioned": data.n_captioned,
                 "n_regularisation": len(data) - data.n_captioned, "ids": data.ids},
        "captions": stats, "prompts_file": PROMPTS_NAME,
        "steps": step, "total_steps": total, "last_loss": loss, "seconds_this_session": round(seconds, 2),
        "config": dataclasses.asdict(config),
    }


def _save(out_dir: Path, *, pipeline_cls, prompts: list[str], lora_diffusers: dict, train_state: dict,
          meta: dict, lora_metadata: dict) -> None:
    """Write weights, state, prompts, then config.json last (its presence marks a complete checkpoint)."""
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / ".saving"
    tmp.mkdir(exist_ok=True)
    pipeline_cls.save_lora_weights(save_directory=str(tmp), unet_lora_layers=lora_diffusers, safe_serialization=True,
                                   weight_name=WEIGHTS_NAME, unet_lora_adapter_metadata=lora_metadata)
    torch.save(train_state, tmp / STATE_NAME)
    prompts = [p for p in dict.fromkeys(prompts) if p]
    os.replace(tmp / WEIGHTS_NAME, out_dir / WEIGHTS_NAME)
    os.replace(tmp / STATE_NAME, out_dir / STATE_NAME)
    if prompts:
        (out_dir / PROMPTS_NAME).write_text("\n".join(prompts) + "\n", encoding="utf-8")
    atomic_write_json(out_dir / "config.json", meta)
    tmp.rmdir()
