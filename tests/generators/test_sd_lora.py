"""SD-LoRA adapter: tiny random SD pipeline trained, saved, reloaded with diffusers, sampled; LoRA counts; bad input.

Everything runs offline (HF_HUB_OFFLINE=1) on a random-weight tiny base; nothing here is a trained model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from generators.sd_lora import base_model
from generators.sd_lora.adapter import SDLoRAGenerator, build_meta_networks
from generators.sd_lora.config import TINY, SDLoRAConfig
from generators.sd_lora.train import (
    STATE_NAME,
    WEIGHTS_NAME,
    caption_stats,
    check_lora_matches_unet,
    lora_parameter_count,
    train_lora,
)
from harness.data.phantom import PhantomSource
from harness.errors import DataError, MissingWeightsError, UsageError

CFG = TINY.replace(n_captioned=4, n_regularisation=4, max_steps=3, save_every=2)


@pytest.fixture(autouse=True)
def _offline_one_thread(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny nets are far faster single-threaded on a shared 2-core machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return base_model.build_tiny_base(tmp_path_factory.mktemp("base") / "tiny")


@pytest.fixture(scope="module")
def phantom() -> PhantomSource:
    return PhantomSource(size=48)


@pytest.fixture(scope="module")
def trained(tiny_base, phantom, tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("lora") / "ckpt"
    steps = []
    train_lora(phantom, out, CFG, base=str(tiny_base), progress=lambda s, t, loss: steps.append((s, t, loss)))
    assert [s for s, _, _ in steps] == [1, 2, 3] and all(t == 3 for _, t, _ in steps)
    assert all(np.isfinite(m["loss"]) for _, _, m in steps)
    return out


def _loaded(ckpt: Path, **options) -> SDLoRAGenerator:
    gen = SDLoRAGenerator(data=None, steps=2, **options)
    gen.load(ckpt, "cpu")
    return gen


def _images(gen, n, **kw) -> np.ndarray:
    return np.concatenate([b.images for b in gen.sample(n, **kw)])


# ---- parameter counts -----------------------------------------------------------------------------


def test_lora_count_sd15_by_hand():
    nets = build_meta_networks("paper")
    unet = nets["unet"]
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964  # the SD 1.5 UNet
    assert sum(p.numel() for p in nets["vae"].parameters()) == 83_653_863
    assert sum(p.numel() for p in nets["text_encoder"].parameters()) == 123_060_480
    # Transformer blocks of SD 1.5: down 2×320, 2×640, 2×1280; mid 1×1280; up 3×1280, 3×640, 3×320 → 16 blocks.
    # Self-attention (attn1): q, k, v, out all h→h: r·(8h). Cross-attention (attn2): q h→h, k and v 768→h,
    # out h→h: r·(6h + 2·768). LoRA A is r×in, B is out×r, no bias.
    r, widths, c = 8, [320] * 5 + [640] * 5 + [1280] * 6, 768
    attn1 = sum(r * 8 * h for h in widths)
    attn2 = sum(r * (6 * h + 2 * c) for h in widths)
    assert attn1 + attn2 == 1_594_368
    assert attn2 == 795_648
    assert lora_parameter_count(unet, SDLoRAConfig()) == 1_594_368
    assert lora_parameter_count(unet, SDLoRAConfig(targets="cross-attention")) == 795_648
    assert lora_parameter_count(unet, SDLoRAConfig(rank=4)) == 797_184


@pytest.mark.parametrize("targets", ["attention", "cross-attention"])
def test_lora_count_matches_peft(targets):
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig

    cfg = SDLoRAConfig(targets=targets)
    unet = UNet2DConditionModel(**base_model.tiny_unet_config())
    expected = lora_parameter_count(unet, cfg)
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=8, lora_alpha=8, target_modules=cfg.target_modules))
    assert sum(p.numel() for p in unet.parameters() if p.requires_grad) == expected > 0


def test_describe_preset_paper_cli():
    from typer.testing import CliRunner

    from harness.cli import app

    assert SDLoRAGenerator.describe_preset("paper")["lora"]["parameters"] == 1_594_368
    res = CliRunner().invoke(app, ["describe", "generator", "sd-lora", "--preset", "paper"])
    assert res.exit_code == 0, res.output
    assert "1594368" in res.output.replace(",", "").replace("_", "")


# ---- train → save → reload → sample -----------------------------------------------------------------


def test_checkpoint_layout_and_config(trained, tiny_base, phantom):
    assert {p.name for p in trained.iterdir()} >= {WEIGHTS_NAME, "config.json", "prompts.txt", STATE_NAME}
    meta = json.loads((trained / "config.json").read_text())
    assert meta["rank"] == 8 and meta["targets"] == "attention" and meta["steps"] == 3
    assert meta["base"]["fingerprint"] == base_model.fingerprint(tiny_base)
    assert meta["data"]["n_captioned"] == 4 and meta["data"]["n_regularisation"] == 4
    assert meta["image_size"] == 48 and meta["resolution"] == 32
    assert meta["lora_parameters"] == 30_720  # 4 tiny transformer blocks, h = 64, cross dim 32: 4·8·(14·64 + 2·32)
    captions = next(b.captions for b in phantom.iter_batches("train", 4))
    assert meta["captions"]["mean_words"] == pytest.approx(np.mean([len(c.split()) for c in captions]))
    assert (trained / "prompts.txt").read_text().splitlines() == list(dict.fromkeys(captions))


def test_plain_diffusers_loads_the_lora(trained, tiny_base):
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_base), safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True)
    pipe.load_lora_weights(str(trained), weight_name=WEIGHTS_NAME)
    saved = load_file(str(trained / WEIGHTS_NAME))
    key = next(k for k in saved if k.endswith("attn2.to_k.lora.down.weight"))
    module = dict(pipe.unet.named_modules())[key[len("unet."):-len(".lora.down.weight")]]
    loaded = next(iter(module.lora_A.values())).weight
    assert torch.equal(loaded, saved[key])
    state = torch.load(trained / STATE_NAME, weights_only=True)
    assert torch.equal(state["lora"][key[len("unet."):].replace("lora.down", "lora_A")], saved[key])


def test_sampling_deterministic_batch_invariant(trained):
    gen = _loaded(trained)
    a = _images(gen, 3, seed=5, batch_size=3)
    assert a.shape == (3, 48, 48, 3) and a.dtype == np.uint8  # resized to the training set's size
    assert np.array_equal(a, _images(gen, 3, seed=5, batch_size=3))
    assert np.array_equal(a, _images(gen, 3, seed=5, batch_size=2))
    assert np.array_equal(a[2:], _images(gen, 3, seed=5, batch_size=2, start=2))
    assert not np.array_equal(a, _images(gen, 3, seed=6, batch_size=3))
    assert not np.array_equal(a[0], a[1])


def test_lora_changes_the_images(trained):
    with_lora = _images(_loaded(trained), 2, seed=0, batch_size=2)
    without = _images(_loaded(trained, lora_scale=0.0), 2, seed=0, batch_size=2)
    assert not np.array_equal(with_lora, without)


def test_prompts_cycle_and_conditions(trained, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("first prompt\n\nsecond prompt\n")
    gen = _loaded(trained, prompts=str(prompts), size=40)
    batches = list(gen.sample(3, seed=0, batch_size=2))
    assert [p for b in batches for p in b.prompts] == ["first prompt", "second prompt", "first prompt"]
    assert batches[0].images.shape == (2, 40, 40, 3)
    with pytest.raises(UsageError, match="either"):
        next(gen.sample(2, seed=0, conditions=["asd"]))
    gen = _loaded(trained)
    batch = next(gen.sample(4, seed=0, batch_size=4, conditions=["asd", "normal"]))
    assert batch.conditions == ["asd", "normal", "asd", "normal"]
    assert batch.prompts[0].startswith("ASD") and batch.prompts[1].startswith("no ASD or VSD")
    with pytest.raises(UsageError):
        next(gen.sample(2, seed=0, conditions=["cat"]))


def test_resume_equals_uninterrupted(trained, tiny_base, phantom, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "resumed"
    train_lora(phantom, out, CFG.replace(max_steps=2), base=str(tiny_base))
    with pytest.raises(UsageError, match="different config"):
        train_lora(phantom, out, CFG, base=str(tiny_base), resume=True)
    train_lora(phantom, out, CFG.replace(max_steps=2), base=str(tiny_base), resume=True)  # nothing left: no-op
    state = torch.load(out / STATE_NAME, weights_only=True)
    assert state["step"] == 2
    train_lora(phantom, out, CFG, base=str(tiny_base), resume=True, force=True)
    a, b = load_file(str(out / WEIGHTS_NAME)), load_file(str(trained / WEIGHTS_NAME))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_alpha_is_kept(tiny_base, phantom, tmp_path):
    out = train_lora(phantom, tmp_path / "a16", CFG.replace(alpha=16.0, max_steps=1), base=str(tiny_base))
    gen = _loaded(out)
    scalings = {v for m in gen.pipe.unet.modules() if hasattr(m, "scaling") for v in m.scaling.values()}
    assert scalings == {2.0}


# ---- base resolution and bad input ------------------------------------------------------------------


def test_tiny_spec_builds_offline_and_deterministically(tiny_base):
    resolved = base_model.resolve_base("tiny")  # into this test's ECHOBENCH_CACHE
    assert resolved.kind == "tiny" and (resolved.path / "unet" / "config.json").is_file()
    assert resolved.fingerprint == base_model.fingerprint(tiny_base)


def test_folder_missing_components(tiny_base, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_base, broken)
    shutil.rmtree(broken / "vae")
    (broken / "tokenizer" / "merges.txt").unlink()
    (broken / "tokenizer" / "tokenizer.json").unlink()
    with pytest.raises(DataError, match=r"vae/.*tokenizer/vocab.json \+ merges.txt"):
        base_model.resolve_base(str(broken))


def test_uncached_hub_id_names_the_download(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(MissingWeightsError, match="huggingface-cli download stable-diffusion-v1-5"):
        base_model.resolve_base("stable-diffusion-v1-5/stable-diffusion-v1-5")
    with pytest.raises(DataError, match="does not exist"):
        base_model.resolve_base(str(tmp_path / "nothing" / "here"))


def test_lora_on_a_different_base(trained, tmp_path):
    other = base_model.build_tiny_base(tmp_path / "other", seed=1)  # same shapes, other weights
    with pytest.raises(DataError, match="trained on base"):
        _loaded(trained, base=str(other))
    _loaded(trained, base=str(other), allow_base_mismatch="true")  # same shapes: allowed when asked
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    wider = UNet2DConditionModel(**{**base_model.tiny_unet_config(), "cross_attention_dim": 48})
    with pytest.raises(DataError, match="different base"):
        check_lora_matches_unet(load_file(str(trained / WEIGHTS_NAME)), wider, trained)


def _folder(tmp_path: Path, n: int, captions: dict[str, str]) -> Path:
    from PIL import Image

    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(d / f"im{i:02d}.png")
    if captions:
        rows = "".join(f'{k},"{v}"\n' for k, v in captions.items())
        (d / "captions.csv").write_text("file,caption\n" + rows)
    return d


def test_folder_captions_bad_input(tiny_base, tmp_path):
    from harness.data.folder import FolderSource

    cfg = CFG.replace(n_captioned=2, n_regularisation=2, max_steps=1)
    d = _folder(tmp_path, 4, {"im00.png": "ASD, four words here", "gone.png": "x", "lost.png": "y"})
    with pytest.raises(DataError, match="gone.png, lost.png"):
        train_lora(FolderSource(d), tmp_path / "o1", cfg, base=str(tiny_base), split="all")
    (d / "captions.csv").write_text("file,caption\nim00.png,a caption\nim01.png,\n")
    with pytest.raises(DataError, match="non-empty caption"):
        train_lora(FolderSource(d), tmp_path / "o2", cfg, base=str(tiny_base), split="all")
    (d / "captions.csv").write_text("file,caption\nim03.png,a b c\nim01.png,a b c d e\n")
    out = train_lora(FolderSource(d), tmp_path / "o3", cfg, base=str(tiny_base), split="all")
    meta = json.loads((out / "config.json").read_text())
    assert meta["data"]["ids"] == ["im01.png", "im03.png", "im00.png", "im02.png"]
    assert meta["captions"]["mean_words"] == 4.0


def test_bad_options():
    with pytest.raises(UsageError, match="rank"):
        TINY.replace(rank=0)
    with pytest.raises(UsageError, match="rank"):
        SDLoRAConfig(rank=-1).validate()
    with pytest.raises(UsageError, match="targets"):
        TINY.replace(targets="everything")
    with pytest.raises(UsageError, match="unknown option"):
        TINY.replace(rnak=8)
    with pytest.raises(UsageError, match="no option"):
        SDLoRAGenerator(data=None, stpes=3)
    with pytest.raises(UsageError, match="checkpoint"):
        SDLoRAGenerator(data=None).load(None)


def test_caption_stats_closed_form():
    s = caption_stats(["a b c", "a b c d e", "one"])
    assert s["mean_words"] == pytest.approx(3.0) and s["median_words"] == 3 and s["min_words"] == 1
    assert s["max_words"] == 5 and s["paper_mean_words"] == 22.95


def test_harness_run_stores_a_result(trained, tmp_path):
    """`harness run --generator sd-lora --checkpoint DIR --task fid --features radiomics` end to end."""
    from typer.testing import CliRunner

    from harness.cli import app

    args = ["run", "--generator", "sd-lora", "--checkpoint", str(trained), "--task", "fid", "--features", "radiomics",
            "--n", "12", "--batch-size", "6", "--data", "phantom", "-o", "steps=2", "--conditions", "asd,normal",
            "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines() if line.startswith("{")]
    assert rows and any(np.isfinite(r["value"]) for r in rows if r.get("value") is not None)
    manifest = next((tmp_path / "runs" / "sd-lora").rglob("manifest.jsonl")).read_text().splitlines()
    first = json.loads(manifest[0])
    assert first["prompt"].startswith("ASD") and first["condition"] == "asd"
