"""Where the Stable Diffusion base model comes from: a local folder, a single file, a cached hub id, or ``tiny``.

``resolve_base(spec)`` never downloads. It accepts

- ``tiny``: a Stable-Diffusion-shaped pipeline with random weights built from small configs
  (:func:`build_tiny_base`), written once to ``$ECHOBENCH_CACHE/sd-lora/tiny-base-v1`` (or the user cache
  dir) so that ``--base tiny`` works offline. Its images mean nothing: it exists for tests and demos.
- a local diffusers folder (``model_index.json`` + ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``,
  ``scheduler/``); a folder missing components is a :class:`DataError` naming them;
- a single-file checkpoint (``.safetensors`` / ``.ckpt``), loaded with diffusers' ``from_single_file``
  using configs from the local cache only (``config=`` a local diffusers folder of the same architecture
  makes it work without any cache);
- a hub id such as ``stable-diffusion-v1-5/stable-diffusion-v1-5``, looked up in the local Hugging Face cache
  only; when it is not there a :class:`MissingWeightsError` says what to download and where to put it.

Each resolved base has a *fingerprint*: the sha256 of its JSON configs plus (name, size, first and last MiB)
of every weight file. It is cheap for a 4 GB model and changes when any component changes, so a LoRA
trained on one base is refused on another (``load`` checks it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import DataError, MissingWeightsError, UsageError

log = logging.getLogger(__name__)

TINY = "tiny"
TINY_VERSION = "2"
DEFAULT_HUB_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BaseModel:
    """A resolved base model: what the user gave (``spec``), how to load it (``kind``, ``path``) and its fingerprint."""

    spec: str
    kind: str  # "tiny" | "folder" | "single-file" | "hub"
    path: Path
    fingerprint: str
    config_dir: Path | None = None  # single-file only: a local diffusers folder with the configs

    def record(self) -> dict:
        """What config.json stores about the base."""
        return {"spec": self.spec, "kind": self.kind, "path": str(self.path), "fingerprint": self.fingerprint}


# --------------------------------------------------------------------------------------------------
# resolution


def cache_root() -> Path:
    """``$ECHOBENCH_CACHE/sd-lora`` when set, else ``user_cache_dir("echobench")/sd-lora``."""
    env = os.environ.get("ECHOBENCH_CACHE")
    if env:
        return Path(env).expanduser() / "sd-lora"
    import platformdirs

    return Path(platformdirs.user_cache_dir("echobench")) / "sd-lora"


def resolve_base(spec: str, *, config_dir: str | Path | None = None) -> BaseModel:
    """Resolve ``spec`` (``tiny``, folder, single file, or cached hub id) without any network access."""
    if not spec or not str(spec).strip():
        raise UsageError("--base is empty: give a diffusers folder, a .safetensors file, a hub id, or 'tiny'")
    spec = str(spec)
    if spec == TINY:
        path = cache_root() / f"tiny-base-v{TINY_VERSION}"
        if not (path / "model_index.json").is_file():
            build_tiny_base(path)
        return BaseModel(spec, "tiny", path, fingerprint(path))
    path = Path(spec).expanduser()
    if path.is_dir():
        check_folder(path)
        return BaseModel(spec, "folder", path.resolve(), fingerprint(path))
    if path.is_file():
        if path.suffix.lower() not in SINGLE_FILE_SUFFIXES:
            raise UsageError(f"--base {spec}: a single-file base must be .safetensors or .ckpt")
        cfg = Path(config_dir).expanduser() if config_dir else None
        if cfg is not None and not (cfg / "model_index.json").is_file():
            raise DataError(f"base config folder {cfg} has no model_index.json (it must be a diffusers folder)")
        return BaseModel(spec, "single-file", path.resolve(), _single_file_fingerprint(path), cfg)
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")) and not spec.lower().endswith(SINGLE_FILE_SUFFIXES):
        return _resolve_hub(spec)
    raise DataError(f"base model {spec} does not exist: give an existing diffusers folder, a .safetensors/.ckpt "
                    f"file, a hub id (owner/name) present in the local Hugging Face cache, or 'tiny'")


def _resolve_hub(repo_id: str) -> BaseModel:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError) as exc:
        from huggingface_hub import constants

        raise MissingWeightsError(
            f"base model {repo_id!r} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and nothing "
            f"is downloaded here. On a machine with network access run `huggingface-cli download {repo_id} "
            f"--exclude '*.ckpt' '*.bin' '*non_ema*' '*fp16*'` and copy the cache folder to {constants.HF_HUB_CACHE} "
            f"(or set HF_HOME), or download it into a folder and pass --base /path/to/folder ({type(exc).__name__})"
        ) from None
    check_folder(path)
    return BaseModel(repo_id, "hub", path, fingerprint(path))


def check_folder(path: Path) -> None:
    """A diffusers folder must hold model_index.json and the five components we use (with weights)."""
    missing = []
    if not (path / "model_index.json").is_file():
        missing.append("model_index.json")
    for comp in COMPONENTS:
        sub = path / comp
        if not sub.is_dir():
            missing.append(f"{comp}/")
            continue
        if comp == "tokenizer":
            has_bpe = (sub / "vocab.json").is_file() and (sub / "merges.txt").is_file()
            if not has_bpe and not (sub / "tokenizer.json").is_file():
                missing.append("tokenizer/vocab.json + merges.txt (or tokenizer.json)")
        elif comp == "scheduler":
            if not (sub / "scheduler_config.json").is_file():
                missing.append("scheduler/scheduler_config.json")
        else:
            if not (sub / "config.json").is_file():
                missing.append(f"{comp}/config.json")
            if not any(p.suffix in WEIGHT_SUFFIXES for p in sub.iterdir()):
                missing.append(f"{comp}/ weights (*.safetensors)")
    if missing:
        raise DataError(f"base model folder {path} is missing {', '.join(missing)}; a Stable Diffusion 1.5 diffusers "
                        f"folder (e.g. `huggingface-cli download {DEFAULT_HUB_ID} --local-dir DIR`) has all of them")


def fingerprint(folder: Path) -> str:
    """sha256 over the JSON configs and (name, size, first/last MiB) of the weight files of ``folder``."""
    h = hashlib.sha256()
    for p in sorted(q for q in Path(folder).rglob("*") if q.is_file() and not q.name.startswith(".")):
        rel = p.relative_to(folder).as_posix()
        if p.suffix in (".json", ".txt"):
            h.update(f"{rel}\n".encode())
            h.update(p.read_bytes())
        elif p.suffix in WEIGHT_SUFFIXES:
            h.update(_weights_digest(p, rel).encode())
    return h.hexdigest()


def _weights_digest(p: Path, rel: str) -> str:
    size = p.stat().st_size
    with p.open("rb") as fh:
        head = fh.read(_CHUNK)
        fh.seek(max(0, size - _CHUNK))
        tail = fh.read(_CHUNK)
    return f"{rel}:{size}:{hashlib.sha256(head + tail).hexdigest()}\n"


def _single_file_fingerprint(path: Path) -> str:
    return hashlib.sha256(_weights_digest(path, path.name).encode()).hexdigest()


# --------------------------------------------------------------------------------------------------
# loading


def load_pipeline(base: BaseModel, *, torch_dtype=None):
    """A ``StableDiffusionPipeline`` for ``base`` without safety checker, loaded from local files only."""
    from diffusers import StableDiffusionPipeline

    kwargs = {"safety_checker": None, "requires_safety_checker": False, "local_files_only": True}
    if torch_dtype is not None:
        kwargs["torch_dtype"] = torch_dtype
    try:
        if base.kind == "single-file":
            if base.config_dir is not None:
                kwargs["config"] = str(base.config_dir)
            return StableDiffusionPipeline.from_single_file(str(base.path), **kwargs)
        return StableDiffusionPipeline.from_pretrained(str(base.path), **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        if base.kind == "single-file":
            raise MissingWeightsError(
                f"cannot load the single-file base {base.path} offline ({type(exc).__name__}: {exc}). Its configs "
                f"(text encoder, tokenizer, scheduler) must be available locally: pass a diffusers folder of the same "
                f"architecture as the config folder (-o base_config=DIR / --base-config DIR), or use a diffusers "
                f"folder as --base"
            ) from None
        raise DataError(f"cannot load the base model {base.path}: {type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------------------------------
# the tiny random base


def tiny_unet_config(sample_size: int = 16) -> dict:
    """A small ``UNet2DConditionModel`` config (cross-attention dim 32, two blocks, one with attention)."""
    return {
        "sample_size": sample_size, "in_channels": 4, "out_channels": 4, "layers_per_block": 1,
        "block_out_channels": [32, 64], "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "cross_attention_dim": 32, "attention_head_dim": 8,
        "norm_num_groups": 32,
    }


def tiny_vae_config(sample_size: int = 32) -> dict:
    """A two-block ``AutoencoderKL``: images are twice the latent size (32×32 ↔ 16×16)."""
    return {
        "sample_size": sample_size, "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1,
        "block_out_channels": [32, 64], "down_block_types": ["DownEncoderBlock2D"] * 2,
        "up_block_types": ["UpDecoderBlock2D"] * 2, "norm_num_groups": 32,
    }


def tiny_text_config(vocab_size: int) -> dict:
    return {
        "vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4,
        "max_position_embeddings": 77, "projection_dim": 32, "bos_token_id": vocab_size - 2, "eos_token_id": vocab_size - 1,
        "pad_token_id": vocab_size - 1, "hidden_act": "quick_gelu",
    }


def write_tiny_tokenizer(out: Path) -> int:
    """Write a small byte-level CLIP BPE tokenizer: the 2 × 256 byte characters plus whole-word merges for the
    words of the phantom's captions, so a caption fits in CLIP's 77 tokens. Every merge result is added to
    the vocabulary (transformers 5 refuses merges whose result is out of vocabulary). Returns the vocab size."""
    import re

    from harness.data.phantom import AGES, CONDITIONS, caption_for

    chars = _byte_chars()
    tokens = chars + [c + "</w>" for c in chars]
    words = set()
    for cond in CONDITIONS:
        for age in AGES:
            for variant in ("", "no-upper-margin", "perimembranous"):
                words.update(re.findall(r"[a-z]{2,}", caption_for(cond, age, variant).lower()))
    merges: list[str] = []
    seen = set(tokens)
    for word in sorted(words):
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        left = parts[0]
        for right in parts[1:]:
            merged = left + right
            if f"{left} {right}" not in merges:
                merges.append(f"{left} {right}")
            if merged not in seen:
                seen.add(merged)
                tokens.append(merged)
            left = merged
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False),
                                    encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return len(tokens)


def _byte_chars() -> list[str]:
    """The 256 printable characters GPT-2/CLIP byte-level BPE uses for the 256 byte values."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in range(256)]


def build_tiny_base(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write a complete, random-weight, Stable-Diffusion-shaped diffusers folder to ``out_dir`` (< 1 s, ~3 MB).

    Deterministic for a given ``seed`` and torch version. Written to a temporary folder and renamed, so a
    concurrent or interrupted build never leaves a half folder behind.
    """
    import shutil
    import tempfile

    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=out_dir.parent))
    try:
        vocab_size = write_tiny_tokenizer(tmp / "_tok")
        tokenizer = CLIPTokenizer(str(tmp / "_tok" / "vocab.json"), str(tmp / "_tok" / "merges.txt"),
                                  model_max_length=77)
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**tiny_unet_config())
        vae = AutoencoderKL(**tiny_vae_config())
        text_encoder = CLIPTextModel(CLIPTextConfig(**tiny_text_config(vocab_size)))
        scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  clip_sample=False, set_alpha_to_one=False, steps_offset=1)
        pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        pipe.save_pretrained(str(tmp / "out"), safe_serialization=True)
        for name in ("vocab.json", "merges.txt"):  # older transformers read these, newer tokenizer.json
            shutil.copy(tmp / "_tok" / name, tmp / "out" / "tokenizer" / name)
        (tmp / "out" / "ECHOBENCH_TINY.txt").write_text(
            f"Random-weight tiny Stable-Diffusion-shaped pipeline (EchoBench tiny base v{TINY_VERSION}, seed {seed}). "
            "NOT a trained model: for tests and demos only.\n", encoding="utf-8")
        if out_dir.exists():  # another process won the race
            return out_dir
        os.replace(tmp / "out", out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote the tiny random SD base to %s", out_dir)
    return out_dir
