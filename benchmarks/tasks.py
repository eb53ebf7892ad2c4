"""Benchmark of the diversity / colour-shift tasks (not a test; prints figures).

    python benchmarks/tasks.py [--quick]

Images/s of colour-shift measures (gray and tinted) and of MS-SSIM pairs on 256×256 phantom images;
prdc and Vendi wall time at N = 800 and N = 10,000 on random 2048-d features (``--quick``: N = 800 only).
"""

from __future__ import annotations

# isort: off
import _isolate  # noqa: F401  (first: keeps benchmarks/ off sys.path, where tasks.py would shadow the tasks package)
# isort: on

import argparse
import time

import numpy as np


def _time(fn, repeat: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def main() -> None:
    import torch

    from harness.data.faults import HUES, tint
    from harness.data.phantom import PhantomSource
    from tasks.color_shift import measure_images
    from tasks.diversity import intra_ms_ssim, prdc, vendi

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    images = list(next(PhantomSource(size=256).iter_batches("test", 64, batch_size=64)).images)
    tinted = [tint(im, HUES["orange"]) for im in images]
    for name, ims in (("gray", images), ("tinted", tinted)):
        t = _time(lambda: measure_images(ims))
        print(f"colour-shift measures, 256×256 {name}: {len(ims) / t:.1f} images/s")
    pairs = 128
    t = _time(lambda: intra_ms_ssim(images, rng=np.random.default_rng(0), n_pairs=pairs))
    print(f"MS-SSIM, 256×256: {pairs / t:.1f} pairs/s")
    rng = np.random.default_rng(0)
    for n in (800,) if args.quick else (800, 10_000):
        real, fake = rng.standard_normal((n, 2048)), rng.standard_normal((n, 2048))
        print(f"prdc N={n} d=2048: {_time(lambda: prdc(real, fake, 5)):.2f} s")
        method = "gram" if n <= 2048 else "covariance"
        print(f"vendi N={n} d=2048 ({method}): {_time(lambda: vendi(fake)):.2f} s")
        if n > 2048:
            print(f"vendi N={n} gram (n×n): skipped (O(N³) eigendecomposition); covariance form used")


if __name__ == "__main__":
    import sys
    from pathlib import Path

    # this file is named tasks.py: keep it from shadowing the `tasks` package when run as a script
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != here]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
