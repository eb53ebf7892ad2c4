"""Full-size DINOv2 / CLIP throughput on a CUDA GPU: ``python benchmarks/gpu_features.py [--batch-sizes 32,64,128,256]``.

Self-contained (torch + transformers only; no EchoBench import, no download): the architectures of
``facebook/dinov2-large`` (ViT-L/14, 1024-d CLS, input 224 × 224) and ``openai/clip-vit-large-patch14-336``
(ViT-L/14 at 336 px + projection to 768-d) are instantiated from their configurations with RANDOM weights. The
numbers are THROUGHPUT ONLY (images per second of the forward pass on already-preprocessed tensors on the GPU,
warm-up excluded, best of ``--repeats`` timed runs of ``--iters`` batches); they say nothing about feature quality.
``fp32`` is what the ``dinov2`` / ``clip`` extractors run; ``bf16`` (autocast) is shown for information.
The CPU-side preprocessing (PIL bicubic resize + normalisation) is timed separately per image.

Exits with status 2 and a one-line message when no CUDA device is visible.
"""

from __future__ import annotations

import argparse
import sys
import time


def dinov2_large():
    from transformers import Dinov2Config, Dinov2Model

    cfg = Dinov2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4, patch_size=14,
                       image_size=518, layerscale_value=1.0, drop_path_rate=0.0)
    return Dinov2Model(cfg), 224, lambda m, x: m(pixel_values=x).pooler_output


def clip_large_336():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    cfg = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                           image_size=336, patch_size=14, projection_dim=768, hidden_act="quick_gelu")
    return CLIPVisionModelWithProjection(cfg), 336, lambda m, x: m(pixel_values=x).image_embeds


MODELS = {"dinov2-large (ViT-L/14, 224)": dinov2_large, "clip-vit-large-patch14-336": clip_large_336}


def preprocess_rate(size: int, n: int = 64) -> float:
    """Images per second of the CPU preprocessing (grey 112 × 112 → RGB, PIL bicubic to size², normalise)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    ims = [rng.integers(0, 256, (112, 112), dtype=np.uint8) for _ in range(n)]
    t0 = time.perf_counter()
    for im in ims:
        rgb = np.repeat(im[..., None], 3, axis=2)
        x = np.asarray(Image.fromarray(rgb).resize((size, size), Image.BICUBIC), np.float32) / 255.0
        _ = ((x - 0.45) / 0.27).transpose(2, 0, 1)
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", default="32,64,128,256")
    ap.add_argument("--iters", type=int, default=10, help="timed batches per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtypes", default="fp32,bf16")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.stderr.write("error: no CUDA device is visible (torch.cuda.is_available() is False); this benchmark "
                         "measures GPU throughput and needs one\n")
        return 2
    dev = torch.device("cuda")
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; RANDOM weights, throughput only")
    import transformers

    print(f"transformers {transformers.__version__}")
    rows = []
    for name, build in MODELS.items():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model, size, forward = build()
        model = model.eval().to(dev)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        pre = preprocess_rate(size)
        for dtype in [d.strip() for d in args.dtypes.split(",") if d.strip()]:
            for bs in [int(b) for b in args.batch_sizes.split(",") if b.strip()]:
                x = torch.randn(bs, 3, size, size, device=dev)
                ctx = torch.autocast("cuda", dtype=torch.bfloat16) if dtype == "bf16" else torch.autocast("cuda", enabled=False)
                try:
                    with torch.inference_mode(), ctx:
                        for _ in range(3):
                            forward(model, x)
                        torch.cuda.synchronize()
                        best = float("inf")
                        for _ in range(args.repeats):
                            t0 = time.perf_counter()
                            for _ in range(args.iters):
                                out = forward(model, x)
                            torch.cuda.synchronize()
                            best = min(best, time.perf_counter() - t0)
                    rate = bs * args.iters / best
                    mem = torch.cuda.max_memory_allocated() / 2**30
                    rows.append((name, f"{params:.0f}M", dtype, bs, f"{rate:8.1f}", f"{mem:5.1f}", f"{pre:6.1f}",
                                 tuple(out.shape[1:])))
                except torch.cuda.OutOfMemoryError:
                    rows.append((name, f"{params:.0f}M", dtype, bs, "OOM", "-", f"{pre:6.1f}", "-"))
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
        del model
        torch.cuda.empty_cache()
    head = ("model", "params", "dtype", "batch", "img/s", "peak GiB", "CPU preproc img/s (1 core)", "feature")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
