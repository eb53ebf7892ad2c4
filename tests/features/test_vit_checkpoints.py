"""Issue 18 audit, "Bad input": CLIP/DINOv2 weights folders that must be refused with one line naming what was found.

Beyond tests/features/test_vit_features.py: a full CLIP checkpoint whose projection weights were stripped (the config
promises a projection, the file lacks it: the embedding would be random), a vision-tower-with-projection folder
(accepted, same embedding as CLIPModel), a CLIP at 224 px for the 336-px space, ViT-B DINOv2 weights given to the
ViT-L space (the message points to ``dinov2-base``), and a folder whose weight file is not a checkpoint.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.errors import EchoBenchError, UsageError
from harness.features import clip as C
from harness.features import dinov2 as D
from tests.features.test_vit_features import TINY_VIT, _tiny_clip_full, images

TINY_CLIP_EXPECTED = {"hidden_size": 32, "num_hidden_layers": 2, "patch_size": 14, "image_size": 336, "projection_dim": 16}


@pytest.fixture
def tiny_clip_space(monkeypatch, tmp_path):
    monkeypatch.setenv("ECHOBENCH_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(C.CLIPExtractor, "expected", dict(TINY_CLIP_EXPECTED))
    monkeypatch.setattr(C.CLIPExtractor, "dim", 16)


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert isinstance(exc, EchoBenchError) and exc.exit_code == 2 and "\n" not in msg
    return msg


def test_clip_checkpoint_with_its_projection_weights_stripped_is_refused(tmp_path, tiny_clip_space):
    import safetensors.torch as st

    _tiny_clip_full(tmp_path / "clip")
    f = tmp_path / "clip" / "model.safetensors"
    sd = st.load_file(f)
    assert "visual_projection.weight" in sd
    st.save_file({k: v for k, v in sd.items() if not k.startswith("visual_projection")}, f, metadata={"format": "pt"})
    with pytest.raises(UsageError, match=r"lacks weights CLIP with projection head needs \(1: visual_projection\.weight\)"
                                         r"; they would be random") as info:
        C.CLIPExtractor(weights=str(tmp_path / "clip"), device="cpu").prepare()
    _one_line(info.value)


def test_vision_tower_with_projection_folder_is_accepted_and_equals_clipmodel(tmp_path, tiny_clip_space):
    from transformers import CLIPVisionModelWithProjection

    model = _tiny_clip_full(tmp_path / "clip")
    # the vision tower + projection of the same CLIPModel, saved as its own folder
    from transformers import CLIPVisionConfig

    cfg = CLIPVisionConfig(**TINY_VIT, intermediate_size=64, image_size=336, patch_size=14, projection_dim=16)
    vision = CLIPVisionModelWithProjection(cfg).eval()
    vision.vision_model.load_state_dict(model.vision_model.state_dict())
    vision.visual_projection.load_state_dict(model.visual_projection.state_dict())
    vision.save_pretrained(tmp_path / "vision")
    ims = images()
    a = C.CLIPExtractor(weights=str(tmp_path / "clip"), device="cpu").extract_batch(ims)
    b = C.CLIPExtractor(weights=str(tmp_path / "vision"), device="cpu").extract_batch(ims)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)


def test_clip_at_another_resolution_names_what_was_found(tmp_path, tiny_clip_space):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_VIT, intermediate_size=64, image_size=224, patch_size=14,
                                                   projection_dim=16)).save_pretrained(tmp_path / "clip224")
    with pytest.raises(UsageError, match=r"image size 224: image_size 224 \(needs 336\); it is not CLIP") as info:
        C.CLIPExtractor(weights=str(tmp_path / "clip224")).prepare()
    _one_line(info.value)


def test_dinov2_base_weights_for_the_large_space_point_to_dinov2_base(tmp_path, monkeypatch):
    from transformers import Dinov2Config

    monkeypatch.setenv("ECHOBENCH_OFFLINE", "1")
    # a ViT-B/14-shaped config (hidden 768, 12 layers) at minimal depth cost: the check reads config.json first
    cfg = Dinov2Config(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, patch_size=14, image_size=28)
    cfg.save_pretrained(tmp_path / "base")
    (tmp_path / "base" / "model.safetensors").write_bytes(b"never read: the config is refused first")
    with pytest.raises(UsageError, match=r"hidden_size 768 \(needs 1024\), num_hidden_layers 12 \(needs 24\).*"
                                         r"ViT-B/14 weights belong to --features dinov2-base") as info:
        D.DINOv2Extractor(weights=str(tmp_path / "base")).prepare()
    _one_line(info.value)


@pytest.mark.parametrize("name", ["model.safetensors", "pytorch_model.bin"])
def test_weight_file_that_is_not_a_checkpoint(name, tmp_path, tiny_clip_space):
    """Found by this audit: a corrupt safetensors file escaped as a SafetensorError (a traceback, exit 1)."""
    _tiny_clip_full(tmp_path / "clip")
    (tmp_path / "clip" / "model.safetensors").unlink()
    (tmp_path / "clip" / name).write_bytes(b"\x00" * 64)
    with pytest.raises(EchoBenchError, match=r"weights folder .*clip could not be loaded as CLIP") as info:
        C.CLIPExtractor(weights=str(tmp_path / "clip")).prepare()
    _one_line(info.value)


def test_dinov2_base_option_is_vit_b_named_in_its_own_space():
    from harness.registry import features

    cls = features.get("dinov2-base")
    assert cls.dim == 768 and cls.expected == {"hidden_size": 768, "num_hidden_layers": 12, "patch_size": 14}
    assert cls.model_spec.repo_id == "facebook/dinov2-base" and not cls.substitute
    assert cls().metric_name("FD") == "FD_dinov2-base" and cls().metric_name("KD") == "KD_dinov2-base"
