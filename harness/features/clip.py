"""CLIP image embeddings (Radford et al. 2021): ``clip`` (ViT-L/14 at 336 px, 768-d) and the stand-in ``random-clip``.

The space of CMMD (Jayasumana et al., CVPR 2024, "Rethinking FID"): ``openai/clip-vit-large-patch14-336``'s
projected image embedding (``CLIPVisionModelWithProjection(...).image_embeds``), L2-normalised, 768-d.
Preprocessing is CLIP's own: PIL bicubic resize of the shorter side to 336, centre crop 336 × 336, [0, 1],
normalised with CLIP's mean/std (grey images replicated to 3 channels) — what
``transformers.CLIPImageProcessorPil`` computes for this checkpoint (a test compares them).

Names: FD/KD follow the one rule (``FD_clip``, ``KD_clip``); this extractor calls its MMD ``CMMD``. The
stand-in ``random-clip`` (tiny, random-init under a fixed seed) keeps the default rule (``MMD_random-clip``):
its numbers are never CMMD.

Weights: a full CLIP checkpoint (``CLIPModel``, as published) or a ``CLIPVisionModelWithProjection`` folder;
a vision tower without its projection head (``CLIPVisionModel``) is refused, since the embedding would be
random.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness.errors import UsageError
from harness.features.base import metric_name
from harness.features.vit import (
    ViTExtractor,
    as_rgb_uint8,
    check_architecture,
    load_checked,
    normalise,
    pil_resize,
    read_config,
)
from harness.features.weights import ModelSpec
from harness.registry import features

INPUT_SIZE = 336
#: transformers.image_utils.OPENAI_CLIP_MEAN / OPENAI_CLIP_STD
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_resize_crop(rgb: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Shorter side to ``size`` (longer side ``int(size · long / short)``, as transformers), then centre crop."""
    h, w = rgb.shape[:2]
    if h <= w:
        nh, nw = size, int(size * w / h)
    else:
        nh, nw = int(size * h / w), size
    x = pil_resize(rgb, nh, nw)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[top:top + size, left:left + size]


def clip_preprocess(images: Sequence[np.ndarray], size: int = INPUT_SIZE) -> np.ndarray:
    """uint8 images (any size, grey or RGB) → float32 (B, 3, size, size), CLIP's resize/crop/normalisation."""
    batch = np.stack([clip_resize_crop(as_rgb_uint8(im, i), size) for i, im in enumerate(images)])
    return normalise(batch, CLIP_MEAN, CLIP_STD)


class _CLIPBase(ViTExtractor):
    preprocessing_version = "clip336crop1"

    def preprocess(self, images):
        return clip_preprocess(images)

    def embed(self, model, pixel_values):
        import torch

        e = model(pixel_values=pixel_values).image_embeds
        return torch.nn.functional.normalize(e.float(), dim=-1)


@features.register("clip")
class CLIPExtractor(_CLIPBase):
    """CLIP ViT-L/14@336 projected image embedding (768-d, L2-normalised): the CMMD space."""

    description = "CLIP ViT-L/14@336 projected image embedding (768-d, L2-normalised), CLIP preprocessing: CMMD's space"
    feature_space = "clip"
    dim = 768
    model_spec = ModelSpec("openai/clip-vit-large-patch14-336", "clip-vit-large-patch14-336",
                           description="CLIP ViT-L/14 at 336 px (Radford et al. 2021)")
    expected = {"hidden_size": 1024, "num_hidden_layers": 24, "patch_size": 14, "image_size": 336, "projection_dim": 768}

    def metric_name(self, family: str) -> str:
        return "CMMD" if family == "MMD" else metric_name(self.feature_space, family)

    def load_pretrained(self, folder: Path):
        from transformers import CLIPConfig, CLIPVisionConfig, CLIPVisionModelWithProjection

        cfg = read_config(folder)
        hint = f"the clip space needs {self.model_spec.repo_id} (CLIPModel or CLIPVisionModelWithProjection)"
        if cfg.get("model_type") == "clip":  # the published full checkpoint: vision tower + projection (+ text)
            full = CLIPConfig.from_pretrained(folder)
            config = full.vision_config
            config.projection_dim = full.projection_dim
        else:
            config = CLIPVisionConfig.from_pretrained(folder) if cfg.get("model_type") == "clip_vision_model" else None
        archs = cfg.get("architectures") or []
        if cfg.get("model_type") == "clip_vision_model" and "CLIPVisionModelWithProjection" not in archs:
            raise UsageError(f"weights folder {folder} holds a CLIP vision tower without its projection head "
                             f"({', '.join(archs) or 'CLIPVisionModel'}: no visual_projection); {hint}")
        vision = {**(cfg.get("vision_config") or cfg), "projection_dim": getattr(config, "projection_dim", None)}
        check_architecture(folder, cfg, vision, ("clip", "clip_vision_model"), self.expected,
                           f"CLIP {self.model_spec.repo_id}", hint)
        return load_checked(CLIPVisionModelWithProjection, folder, config, "CLIP with projection head", hint)


@features.register("random-clip")
class RandomCLIPExtractor(_CLIPBase):
    """Tiny random-init CLIP vision tower + projection (64-d, fixed seed): a stand-in, NOT CMMD/FD_clip."""

    description = "Tiny random-init CLIP ViT + projection (64-d, seed 0), CLIP preprocessing: NOT CMMD / FD_clip"
    feature_space = "random-clip"
    substitute = True
    dim = 64

    @classmethod
    def random_config(cls):
        from transformers import CLIPVisionConfig

        return CLIPVisionConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
                                image_size=INPUT_SIZE, patch_size=14, projection_dim=64)

    def build_random(self):
        from transformers import CLIPVisionModelWithProjection

        return CLIPVisionModelWithProjection(self.random_config())
