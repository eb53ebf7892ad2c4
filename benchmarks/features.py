"""ViT feature extraction on the CPU: ``python benchmarks/features.py [--images 64] [--batch 32]``.

Images per second of the tiny random-init stand-ins ``random-dinov2`` (224 px input) and ``random-clip``
(336 px input) through the EchoBench extractors (preprocessing included), and of the preprocessing alone,
on grey 112 × 112 images (EchoNet's size). Throughput only: the stand-ins are tiny (64-d, 4 layers) and say
nothing about the full models, whose GPU throughput ``benchmarks/gpu_features.py`` measures.
"""

from __future__ import annotations

# isort: off
import _isolate  # noqa: F401  (first: keeps benchmarks/ off sys.path, where tasks.py would shadow the tasks package)
# isort: on

import argparse
import time

import numpy as np

from harness.features.clip import clip_preprocess
from harness.features.dinov2 import dinov2_preprocess
from harness.registry import features


def best(fn, repeats=3):
    t = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    ims = [rng.integers(0, 256, (112, 112), dtype=np.uint8) for _ in range(args.images)]
    print(f"{args.images} grey 112×112 images, CPU, batch {args.batch}, best of 3 (RANDOM-INIT tiny stand-ins: throughput only)")
    for name, pre in (("random-dinov2", dinov2_preprocess), ("random-clip", clip_preprocess)):
        ext = features.get(name)(device="cpu", batch_size=args.batch)
        ext.extract_batch(ims[:2])  # build the model outside the timing
        t_all = best(lambda: ext.extract_batch(ims))
        t_pre = best(lambda: pre(ims))
        print(f"  {name:14s} extraction {args.images / t_all:7.1f} img/s   preprocessing alone {args.images / t_pre:7.1f} img/s"
              f"   ({ext.dim}-d, fingerprint {ext.fingerprint()})")


if __name__ == "__main__":
    main()
