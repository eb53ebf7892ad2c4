"""Benchmark of the embedded phantom (not a test; prints figures).

    python benchmarks/phantom.py [--n 200] [--size 256] [--realism] [--grid docs/phantom-grid.png]

Images/s of ``PhantomSource.render_samples`` (label map + ultrasound image formation) at the given size, as wall
time and per CPU-second (the machine is shared: CPU time is the steadier figure), with the split between drawing
the label map and simulating the image. The target is ≥ 50 images/s at 256×256 on a 2-core CPU. ``--realism``
also prints FD_radiomics to the shared real A4C statistics (as ``harness data realism``).
"""

from __future__ import annotations

# isort: off
import _isolate  # noqa: F401  (first: keeps benchmarks/ off sys.path)
# isort: on

import argparse
import time


def _timed(fn) -> tuple[float, float, object]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def write_grid(path: str, size: int) -> None:
    """4×4 grid of phantom test frames 0..15 (2-pixel black gutters) as a PNG."""
    import numpy as np
    from PIL import Image

    from harness.data.phantom import PhantomSource

    images = PhantomSource(size=size).render_samples("test", range(16)).images
    pad = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    grid = pad.reshape(4, 4, size + 2, size + 2).transpose(0, 2, 1, 3).reshape(4 * (size + 2), 4 * (size + 2))
    Image.fromarray(grid).save(path, optimize=True)
    print(f"wrote {path}")


def main() -> None:
    from harness.data.phantom import PhantomSource, draw_params, label_map

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--realism", action="store_true", help="also print FD_radiomics to the real statistics")
    ap.add_argument("--grid", default=None, help="also write a 4×4 grid PNG of test frames 0..15 to this path")
    args = ap.parse_args()
    if args.grid:
        write_grid(args.grid, args.size)
    src = PhantomSource(size=args.size)
    src.render_samples("test", range(4))  # warm caches
    wall, cpu, _ = _timed(lambda: src.render_samples("test", range(args.n)))
    print(f"phantom {args.size}×{args.size}: {args.n / wall:.1f} images/s wall, {args.n / cpu:.1f} images/s per CPU-second")

    def labels_only():
        for i in range(args.n):
            cond, age, _ = src.draw_condition("test", i)
            label_map(draw_params(src._rng("test", i, 1), cond, age), args.size, args.size)

    wall_l, cpu_l, _ = _timed(labels_only)
    print(f"  label maps alone: {args.n / wall_l:.1f} images/s wall ({100 * cpu_l / cpu:.0f} % of the CPU time); "
          f"image formation: {100 * (1 - cpu_l / cpu):.0f} %")
    if args.realism:
        from harness.commands.data_realism import realism, resolve_stats

        for row in realism(resolve_stats(None), n=300, size=args.size):
            print(f"FD_radiomics {row.source}: {row.fd_radiomics:.3f} ({row.ratio_to_floor:.2f} × the real-vs-real floor)")


if __name__ == "__main__":
    main()
