"""Benchmark the CycleGAN / CUT adapters on their ``tiny`` presets (this machine's CPU or GPU).

Reports training iterations/s, ``sample()`` images/s (batched, phantom label maps included), the
generator network alone batched vs a plain per-image loop, and their ratio.

Usage: ``python benchmarks/gan.py [--models cyclegan,cut,fastcut] [--iters 20] [--n 128] [--batch-size 64]``
"""

from __future__ import annotations

# isort: off
import _isolate  # noqa: F401  (first: keeps benchmarks/ off sys.path, where tasks.py would shadow the tasks package)
# isort: on

import argparse
import json
import tempfile
import time
from pathlib import Path


def bench(name: str, iters: int, n: int, batch_size: int) -> dict:
    import torch

    from generators.cut import CUTGenerator, FastCUTGenerator
    from generators.cyclegan import CycleGANGenerator
    from generators.translation import encode_label_maps, label_map_source
    from harness.data.phantom import PhantomSource

    cls = {"cyclegan": CycleGANGenerator, "cut": CUTGenerator, "fastcut": FastCUTGenerator}[name]
    tiny = cls.preset("tiny")
    epochs = max(1, round(iters * tiny.batch_size / tiny.n_train))
    config = tiny.replace(n_epochs=epochs, n_epochs_decay=0, save_every=epochs)
    train, _ = PhantomSource.from_spec("train", size=config.image_size)
    stamps: list[float] = []
    gen = cls()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        gen.fit(train, Path(tmp), config, progress=lambda i, t, losses: stamps.append(time.perf_counter()))
        fit_s = time.perf_counter() - t0
        gen.load(Path(tmp))
    list(gen.sample(batch_size, seed=0, batch_size=batch_size))  # warm-up
    t0 = time.perf_counter()
    count = sum(len(b) for b in gen.sample(n, seed=0, batch_size=batch_size))
    sample_ips = count / (time.perf_counter() - t0)

    net = gen.nets[gen.sampler]
    maps = next(label_map_source(config.image_size, 0).iter_batches("test", n, batch_size=n)).label_maps
    x = encode_label_maps(maps, gen.n_labels).to(gen.device)
    with torch.no_grad():
        t0 = time.perf_counter()
        for lo in range(0, n, batch_size):
            net(x[lo:lo + batch_size])
        batched = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(n):
            net(x[i:i + 1])
        loop = n / (time.perf_counter() - t0)
    return {
        "model": name, "device": gen.device, "threads": torch.get_num_threads(), "image_size": config.image_size,
        "train_iterations": len(stamps), "train_batch_size": config.batch_size,
        "train_its_per_s": round(len(stamps) / fit_s, 2),  # whole fit: data, steps, checkpoint
        "train_its_per_s_steps": round((len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-9), 2),  # steps alone
        "sample_images_per_s": round(sample_ips, 1),
        "net_batched_images_per_s": round(batched, 1), "net_per_image_loop_images_per_s": round(loop, 1),
        "batched_over_loop": round(batched / loop, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cyclegan,cut,fastcut")
    parser.add_argument("--iters", type=int, default=32, help="training iterations (rounded to whole epochs)")
    parser.add_argument("--n", type=int, default=128, help="images to sample")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    for name in args.models.split(","):
        print(json.dumps(bench(name, args.iters, args.n, args.batch_size)))


if __name__ == "__main__":
    main()
