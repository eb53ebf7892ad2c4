"""DINOv2 / CLIP extractors: preprocessing vs the transformers image processors, tiny random stand-ins, weights
folders written by save_pretrained (loaded through --weights), wrong-architecture errors, naming, cache keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.errors import MissingWeightsError, UsageError
from harness.features import clip as C
from harness.features import dinov2 as D
from harness.features import weights as W
from harness.features.cache import FeatureCache
from harness.registry import features

TINY_VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2)


def images(n=5, seed=0):
    """Grey and RGB, square and not (the processors' resize/crop arithmetic is exercised)."""
    rng = np.random.default_rng(seed)
    shapes = [(64, 64), (50, 70, 3), (90, 40), (112, 112, 3), (33, 47, 3)]
    return [rng.integers(0, 256, shapes[i % len(shapes)], dtype=np.uint8) for i in range(n)]


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ECHOBENCH_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("ECHOBENCH_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("ECHOBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path


# preprocessing -------------------------------------------------------------------------------------
def test_dinov2_preprocessing_equals_transformers_processor():
    """Reference: transformers' PIL image processor configured as dgm-eval (224 × 224 bicubic, no crop)."""
    from transformers import BitImageProcessorPil
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    proc = BitImageProcessorPil(size={"height": 224, "width": 224}, do_center_crop=False, resample=3,
                                image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD)
    for im in images():
        ours = D.dinov2_preprocess([im])
        rgb = np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im
        ref = np.asarray(proc(rgb, return_tensors="np")["pixel_values"])
        assert ours.shape == ref.shape == (1, 3, 224, 224)
        assert np.abs(ours - ref).max() < 1e-5  # measured: ≤ 5e-7 (float32 rounding)


def test_clip_preprocessing_equals_transformers_processor():
    """Reference: CLIPImageProcessorPil with the clip-vit-large-patch14-336 settings (shortest edge 336, crop 336)."""
    from transformers import CLIPImageProcessor, CLIPImageProcessorPil

    kw = dict(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    proc, fast = CLIPImageProcessorPil(**kw), CLIPImageProcessor(**kw)
    worst_fast = 0.0
    for im in images():
        ours = C.clip_preprocess([im])
        rgb = np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im
        ref = np.asarray(proc(rgb, return_tensors="np")["pixel_values"])
        assert ours.shape == ref.shape == (1, 3, 336, 336)
        assert np.abs(ours - ref).max() < 1e-5  # measured: ≤ 5e-7
        worst_fast = max(worst_fast, float(np.abs(ours - np.asarray(fast(rgb, return_tensors="np")["pixel_values"])).max()))
    # the torchvision backend resizes in float (antialiased bicubic, no uint8 rounding): close, not equal
    assert worst_fast < 0.5


def test_grey_is_replicated_and_dtype_checked():
    g = images(1)[0]
    assert np.array_equal(D.dinov2_preprocess([g]), D.dinov2_preprocess([np.repeat(g[..., None], 3, 2)]))
    from harness.errors import DataError

    with pytest.raises(DataError, match="image 0: dtype float32"):
        C.clip_preprocess([g.astype(np.float32)])


# random stand-ins -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,dim", [("random-dinov2", 64), ("random-clip", 64)])
def test_random_standins(name, dim):
    cls = features.get(name)
    assert cls.substitute and cls.feature_space == name
    a = cls(device="cpu", batch_size=2).extract_batch(images())
    b = cls(device="cpu", batch_size=5).extract_batch(images())  # fresh instance, other batch size
    assert a.shape == (5, dim) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # seeded and batch-size independent
    assert a.std(axis=0).mean() > 0  # images give different features
    if name == "random-clip":
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    with pytest.raises(UsageError, match="takes no weights"):
        cls(weights="/some/dir")


def test_metric_names():
    assert features.get("clip")().metric_name("MMD") == "CMMD"
    assert features.get("clip")().metric_name("FD") == "FD_clip"
    assert features.get("random-clip")().metric_name("MMD") == "MMD_random-clip"
    assert features.get("dinov2")().metric_name("FD") == "FD_dinov2"
    assert features.get("random-dinov2")().metric_name("KD") == "KD_random-dinov2"
    assert not features.get("dinov2").substitute and not features.get("clip").substitute


# weights folders ------------------------------------------------------------------------------------
def _tiny_dinov2(path):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(1)
    model = Dinov2Model(Dinov2Config(**TINY_VIT, mlp_ratio=2, patch_size=14)).eval()
    model.save_pretrained(path)
    return model


def _tiny_clip_full(path):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(2)
    cfg = CLIPConfig(vision_config=dict(**TINY_VIT, intermediate_size=64, image_size=336, patch_size=14),
                     text_config=dict(**TINY_VIT, intermediate_size=64, vocab_size=99), projection_dim=16)
    model = CLIPModel(cfg).eval()
    model.save_pretrained(path)
    return model


def test_dinov2_folder_loads_through_weights(tmp_path, no_weights, monkeypatch):
    model = _tiny_dinov2(tmp_path / "tiny")
    # the real expectations: the tiny folder is the wrong architecture, and the message says what was found
    with pytest.raises(UsageError, match=r"hidden 32, 2 layers.*hidden_size 32 \(needs 1024\)"):
        D.DINOv2Extractor(weights=str(tmp_path / "tiny"), device="cpu").prepare()
    monkeypatch.setattr(D.DINOv2Extractor, "expected", {"hidden_size": 32, "num_hidden_layers": 2, "patch_size": 14})
    monkeypatch.setattr(D.DINOv2Extractor, "dim", 32)
    ext = D.DINOv2Extractor(weights=str(tmp_path / "tiny"), device="cpu", batch_size=2)
    ims = images()
    feats = ext.extract_batch(ims)
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy(D.dinov2_preprocess(ims)))
        direct = out.last_hidden_state[:, 0]  # HF's last_hidden_state is after the final layer norm: its CLS token
    assert torch.equal(direct, out.pooler_output)
    np.testing.assert_allclose(feats, direct.numpy(), rtol=1e-4, atol=1e-5)
    # fingerprint: folder hash (config + weights) and preprocessing version; other weights -> other key
    fp = ext.fingerprint()
    assert fp == f"dinov2-{W.model_dir_hash(tmp_path / 'tiny')}-pdgm224bicubic1"
    _tiny_dinov2(tmp_path / "other")
    other = D.DINOv2Extractor(weights=str(tmp_path / "other"))
    import safetensors.torch as st

    sd = st.load_file(tmp_path / "other" / "model.safetensors")
    sd = {k: v + 0.01 for k, v in sd.items()}
    st.save_file(sd, tmp_path / "other" / "model.safetensors", metadata={"format": "pt"})
    cache = FeatureCache(tmp_path / "fc")
    assert other.fingerprint() != fp and cache.key("h", other) != cache.key("h", ext)
    # a folder holding the model folder by name also works ($ECHOBENCH_WEIGHTS layout)
    (tmp_path / "w").mkdir()
    (tmp_path / "tiny").rename(tmp_path / "w" / "dinov2-large")
    assert D.DINOv2Extractor(weights=str(tmp_path / "w")).model_dir() == tmp_path / "w" / "dinov2-large"
    monkeypatch.setenv("ECHOBENCH_WEIGHTS", str(tmp_path / "w"))
    assert D.DINOv2Extractor().model_dir() == tmp_path / "w" / "dinov2-large"


def test_clip_folder_loads_and_wrong_folders_are_named(tmp_path, no_weights, monkeypatch):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    model = _tiny_clip_full(tmp_path / "clip")
    _tiny_dinov2(tmp_path / "dino")
    CLIPVisionModel(CLIPVisionConfig(**TINY_VIT, intermediate_size=64, image_size=336)).save_pretrained(tmp_path / "noproj")
    monkeypatch.setattr(C.CLIPExtractor, "expected", {"hidden_size": 32, "num_hidden_layers": 2, "patch_size": 14,
                                                      "image_size": 336, "projection_dim": 16})
    monkeypatch.setattr(C.CLIPExtractor, "dim", 16)
    ims = images()
    feats = C.CLIPExtractor(weights=str(tmp_path / "clip"), device="cpu", batch_size=3).extract_batch(ims)
    with torch.no_grad():
        ref = model.get_image_features(pixel_values=torch.from_numpy(C.clip_preprocess(ims)))
        ref = torch.nn.functional.normalize(getattr(ref, "pooler_output", ref), dim=-1).numpy()
    np.testing.assert_allclose(feats, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    with pytest.raises(UsageError, match=r"holds a 'dinov2' \(Dinov2Model\).*not CLIP"):
        C.CLIPExtractor(weights=str(tmp_path / "dino")).prepare()
    with pytest.raises(UsageError, match="without its projection head"):
        C.CLIPExtractor(weights=str(tmp_path / "noproj")).prepare()
    with pytest.raises(UsageError, match=r"holds a 'clip' \(CLIPModel\).*not DINOv2"):
        D.DINOv2Extractor(weights=str(tmp_path / "clip")).prepare()


def test_missing_weights_say_how_to_provide_them(tmp_path, no_weights):
    with pytest.raises(MissingWeightsError, match=r"facebook/dinov2-large.*--weights DIR.*ECHOBENCH_WEIGHTS/dinov2-large"):
        D.DINOv2Extractor().prepare()
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(MissingWeightsError, match="not a transformers model folder"):
        C.CLIPExtractor(weights=str(tmp_path / "notamodel")).prepare()
    assert features.get("clip").availability().startswith("missing weights")


def test_hub_cache_snapshot_is_found(tmp_path, no_weights):
    snap = tmp_path / "hub" / "models--facebook--dinov2-large" / "snapshots" / "abc123"
    _tiny_dinov2(snap)
    assert W.find_model_dir(D.DINOv2Extractor.model_spec) == snap


def test_download_checks_sha256_and_is_atomic(tmp_path, monkeypatch):
    """The hub is faked (no network here): files are verified against the SHA-256 the hub publishes (ETag)."""
    import hashlib
    import types

    import huggingface_hub

    monkeypatch.delenv("ECHOBENCH_OFFLINE", raising=False)
    monkeypatch.setenv("ECHOBENCH_CACHE", str(tmp_path / "cache"))
    payload = {"config.json": b'{"model_type": "dinov2"}', "model.safetensors": b"weights" * 100}
    published = {k: hashlib.sha256(v).hexdigest() for k, v in payload.items()}

    def meta(url, timeout=None):
        return types.SimpleNamespace(etag=f'"{published[url.rsplit("/", 1)[1]]}"')

    def download(repo, name, local_dir, etag_timeout=None):
        (local_dir / name).write_bytes(payload[name])
        return str(local_dir / name)

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", meta)  # the extractor calls it through the module
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(huggingface_hub, "hf_hub_url", lambda repo, name: f"https://hub/{repo}/{name}")
    spec = D.DINOv2Extractor.model_spec
    path = W.download_model(spec)
    assert path == tmp_path / "cache" / "weights" / "dinov2-large"
    assert (path / "model.safetensors").read_bytes() == payload["model.safetensors"]
    published["model.safetensors"] = "0" * 64  # a corrupted transfer
    with pytest.raises(MissingWeightsError, match="SHA-256"):
        W.download_model(spec, dest_dir=tmp_path / "other")
    assert not (tmp_path / "other" / "dinov2-large").exists() and not list((tmp_path / "other").glob(".*part"))
