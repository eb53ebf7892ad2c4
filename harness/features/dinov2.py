"""DINOv2 features (Oquab et al. 2023): ``dinov2`` (ViT-L/14, 1024-d), ``dinov2-base`` (ViT-B/14, 768-d) and the
random-init stand-in ``random-dinov2``.

dgm-eval's protocol (Stein et al. 2023, "Exposing flaws of generative model evaluation metrics", the study
in which FD in DINOv2 space agreed best with human judgement): the whole image is resized to 224 × 224 with
PIL bicubic (no crop; grey images are replicated to 3 channels), scaled to [0, 1] and normalised with the
ImageNet mean/std; the feature is the CLS token after the final layer norm (``Dinov2Model(...).pooler_output``).
This is what ``transformers.BitImageProcessorPil(size={"height": 224, "width": 224}, do_center_crop=False)``
computes (a test compares them). Weights: ``facebook/dinov2-large`` / ``facebook/dinov2-base`` through
:mod:`harness.features.weights` (``--weights DIR`` = a ``save_pretrained`` folder or hub snapshot).

``random-dinov2`` is the same architecture at a tiny size (64-d, 4 layers), random-initialised under a fixed
seed: a substitute for tests and demos whose numbers are never FD_dinov2.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness.features.vit import (
    IMAGENET_MEAN,
    IMAGENET_STD,
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

INPUT_SIZE = 224


def dinov2_preprocess(images: Sequence[np.ndarray], size: int = INPUT_SIZE) -> np.ndarray:
    """uint8 images (any size, grey or RGB) → float32 (B, 3, size, size): PIL bicubic resize, ImageNet mean/std."""
    batch = np.stack([pil_resize(as_rgb_uint8(im, i), size, size) for i, im in enumerate(images)])
    return normalise(batch, IMAGENET_MEAN, IMAGENET_STD)


class _DINOv2Base(ViTExtractor):
    preprocessing_version = "dgm224bicubic1"
    #: the architecture the feature space is defined by (checked against the folder's config.json)
    expected: dict = {}

    def preprocess(self, images):
        return dinov2_preprocess(images)

    def embed(self, model, pixel_values):
        return model(pixel_values=pixel_values).pooler_output  # CLS token after the final layer norm

    def load_pretrained(self, folder: Path):
        from transformers import Dinov2Config, Dinov2Model

        hint = ("ViT-B/14 weights belong to --features dinov2-base; ViT-L/14 to --features dinov2"
                if self.feature_space.startswith("dinov2") else "")
        cfg = read_config(folder)
        check_architecture(folder, cfg, cfg, ("dinov2",), self.expected, f"DINOv2 {self.model_spec.repo_id}", hint)
        return load_checked(Dinov2Model, folder, Dinov2Config.from_pretrained(folder), "DINOv2", hint)


@features.register("dinov2")
class DINOv2Extractor(_DINOv2Base):
    """DINOv2 ViT-L/14 CLS token (1024-d), dgm-eval preprocessing (bicubic 224, ImageNet mean/std)."""

    description = "DINOv2 ViT-L/14 CLS token after the final norm (1024-d), bicubic 224, ImageNet mean/std (dgm-eval)"
    feature_space = "dinov2"
    dim = 1024
    model_spec = ModelSpec("facebook/dinov2-large", "dinov2-large", description="DINOv2 ViT-L/14 (Oquab et al. 2023)")
    expected = {"hidden_size": 1024, "num_hidden_layers": 24, "patch_size": 14}


@features.register("dinov2-base")
class DINOv2BaseExtractor(_DINOv2Base):
    """DINOv2 ViT-B/14 CLS token (768-d), the same preprocessing as ``dinov2``."""

    description = "DINOv2 ViT-B/14 CLS token after the final norm (768-d), bicubic 224, ImageNet mean/std"
    feature_space = "dinov2-base"
    dim = 768
    model_spec = ModelSpec("facebook/dinov2-base", "dinov2-base", description="DINOv2 ViT-B/14 (Oquab et al. 2023)")
    expected = {"hidden_size": 768, "num_hidden_layers": 12, "patch_size": 14}


@features.register("random-dinov2")
class RandomDINOv2Extractor(_DINOv2Base):
    """Tiny random-init DINOv2 (64-d, fixed seed): a stand-in for tests and demos, NOT FD_dinov2."""

    description = "Tiny random-init DINOv2 architecture (64-d, 4 layers, seed 0), dinov2 preprocessing: NOT FD_dinov2"
    feature_space = "random-dinov2"
    substitute = True
    dim = 64

    @classmethod
    def random_config(cls):
        from transformers import Dinov2Config

        return Dinov2Config(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, mlp_ratio=2,
                            image_size=INPUT_SIZE, patch_size=14)

    def build_random(self):
        from transformers import Dinov2Model

        return Dinov2Model(self.random_config())
