"""SD-LoRA throughput: training steps/s and sampling images/s.

Default: the tiny random-weight pipeline on CPU (offline, ~1 minute), e.g.

    python benchmarks/sd_lora.py --threads 1

``--full`` (GPU, needs SD 1.5 weights: ``--base DIR`` or the hub id in the local cache): the ``paper`` preset
at 256 and 512 px, batch 2, fp16 mixed precision, 20 training steps and 8 images of 50 PNDM steps. Prints one
JSON line per measurement. Numbers from the tiny pipeline say nothing about SD 1.5 speed.
"""

from __future__ import annotations

# isort: off
import _isolate  # noqa: F401  (first: keeps benchmarks/ off sys.path, where tasks.py would shadow the tasks package)
# isort: on

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def bench(base: str, config, *, device: str, n_images: int, batch_size: int, sample_steps: int, label: str) -> dict:
    import torch

    from generators.sd_lora.adapter import SDLoRAGenerator
    from generators.sd_lora.train import train_lora
    from harness.data.phantom import PhantomSource

    data = PhantomSource(size=config.resolution)
    with tempfile.TemporaryDirectory() as tmp:
        times: list[float] = []
        t0 = time.perf_counter()

        def progress(step, total, loss):
            times.append(time.perf_counter())

        train_lora(data, Path(tmp) / "ckpt", config, base=base, progress=progress, device=device)
        setup = times[0] - t0 if times else float("nan")
        steady = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
        gen = SDLoRAGenerator(data=data, steps=sample_steps)
        gen.load(Path(tmp) / "ckpt", device)
        next(gen.sample(batch_size, seed=0, batch_size=batch_size))  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        made = sum(len(b) for b in gen.sample(n_images, seed=1, batch_size=batch_size))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t1
    return {"label": label, "device": device, "threads": torch.get_num_threads(), "resolution": config.resolution,
            "train_batch": config.batch_size, "train_steps": len(times), "train_steps_per_s": round(steady, 3),
            "first_step_s_incl_setup": round(setup, 2), "sample_images": made, "sample_steps": sample_steps,
            "sample_batch": batch_size, "sample_images_per_s": round(made / dt, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="SD 1.5 on a GPU (needs the weights)")
    ap.add_argument("--base", default=None, help="base for --full (default: the SD 1.5 hub id, local cache only)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from generators.sd_lora.config import PAPER, TINY

    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.full:
        cfg = TINY.replace(epochs=2, max_steps=12, n_captioned=8, n_regularisation=8, save_every=100)
        print(json.dumps(bench("tiny", cfg, device="cpu", n_images=16, batch_size=8, sample_steps=10,
                               label="tiny-cpu")))
        return
    if not torch.cuda.is_available():
        raise SystemExit("--full needs a CUDA GPU")
    base = args.base or "stable-diffusion-v1-5/stable-diffusion-v1-5"
    for res in (256, 512):
        cfg = PAPER.replace(resolution=res, max_steps=20, n_captioned=40, n_regularisation=40, save_every=1000,
                            mixed_precision="fp16")
        print(json.dumps(bench(base, cfg, device="cuda", n_images=8, batch_size=8, sample_steps=50,
                               label=f"sd15-{res}-fp16")), flush=True)


if __name__ == "__main__":
    main()
