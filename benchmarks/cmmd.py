"""CMMD benchmark: ``python benchmarks/cmmd.py [--n 10000] [--d 768] [--boot 200] [--block 1024]``.

Measured in one run on the same L2-normalised random embeddings (CLIP-shaped, d = 768):

1. Blockwise CMMD (``tasks.cmmd.cmmd``, no bootstrap) vs the naive full-matrix NumPy translation of the CMMD
   reference code (google-research/cmmd ``distance.mmd``: three N × N kernel matrices, the squared norms from
   ``diag(x @ x.T)``): time ratio, peak memory (``tracemalloc``, which sees NumPy's allocations) and |Δ|.
   Targets: ≥ 3× faster, ≤ 1/10 of the naive peak memory, at N = 10,000.
2. The same with the bootstrap interval (``--boot`` resamples): time and peak memory.
"""

from __future__ import annotations

# isort: off
import _isolate  # noqa: F401  (first: keeps benchmarks/ off sys.path, where tasks.py would shadow the tasks package)
# isort: on

import argparse
import gc
import time
import tracemalloc

import numpy as np

from tasks.cmmd import cmmd


def naive_cmmd(x, y, sigma=10.0, scale=1000.0):
    """google-research/cmmd distance.mmd in NumPy: full N × N matrices."""
    x_sqnorms = np.diag(x @ x.T)
    y_sqnorms = np.diag(y @ y.T)
    gamma = 1 / (2 * sigma**2)
    k_xx = np.mean(np.exp(-gamma * (-2 * x @ x.T + np.expand_dims(x_sqnorms, 1) + np.expand_dims(x_sqnorms, 0))))
    k_xy = np.mean(np.exp(-gamma * (-2 * x @ y.T + np.expand_dims(x_sqnorms, 1) + np.expand_dims(y_sqnorms, 0))))
    k_yy = np.mean(np.exp(-gamma * (-2 * y @ y.T + np.expand_dims(y_sqnorms, 1) + np.expand_dims(y_sqnorms, 0))))
    return scale * (k_xx + k_yy - 2 * k_xy)


def measured(fn, *args, **kwargs):
    """(result, seconds, peak bytes allocated during the call)."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, dt, peak


def embeddings(rng, n, d, shift):
    x = rng.standard_normal((n, d)) + shift
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--block", type=int, default=1024)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    gen, ref = embeddings(rng, args.n, args.d, 0.02), embeddings(rng, args.n, args.d, 0.0)
    ours, t_ours, m_ours = measured(cmmd, gen, ref, n_boot=0, block=args.block)
    want, t_naive, m_naive = measured(naive_cmmd, gen, ref)
    print(f"[1] CMMD, N_gen = N_ref = {args.n}, d = {args.d}, no bootstrap")
    print(f"    naive full-matrix NumPy (reference code) {t_naive:7.2f} s   peak {m_naive / 2**20:8.1f} MiB   CMMD = {want:.12g}")
    print(f"    ours, blockwise (block {args.block})        {t_ours:7.2f} s   peak {m_ours / 2**20:8.1f} MiB   "
          f"|Δ|/CMMD = {abs(ours.value - want) / abs(want):.1e}")
    print(f"    speed-up {t_naive / t_ours:5.2f}× (target ≥ 3×), memory {m_ours / m_naive:.4f} of naive (target ≤ 0.1)")
    if args.boot:
        res, t_boot, m_boot = measured(cmmd, gen, ref, n_boot=args.boot, block=args.block, rng=0)
        print(f"[2] with a {args.boot}-resample bootstrap CI: {t_boot:7.2f} s, peak {m_boot / 2**20:8.1f} MiB; "
              f"CMMD {res.value:.6g} [{res.ci_low:.6g}, {res.ci_high:.6g}]")


if __name__ == "__main__":
    main()
