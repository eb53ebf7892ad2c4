"""Scaling benchmark: ``python benchmarks/scale.py [--n 240] [--processes 1 2] [--generator labelmap] ...``.

Images per second of a whole ``harness run`` (generate the images, extract features, run ``fid``) in 1, 2, ...
processes on this machine (``harness run --num-processes K``, i.e. ``accelerate launch``; gloo on CPU, one
GPU per process on GPUs). Every run starts from an empty image-set home and feature cache.

Fixed costs (Python + torch imports, the launcher, process-group set-up, the reference set, the task) are
measured by a second run with ``--n-small`` images and subtracted: throughput = (n - n_small) / (t_n -
t_small), the marginal cost of one more image. ``per process`` divides it by K (per GPU on a GPU machine).
Prints the cost per 10,000 images at that throughput. Wall times are shown too; nothing is asserted.
"""

from __future__ import annotations

# isort: off
import _isolate  # noqa: F401  (first: keeps benchmarks/ off sys.path, where tasks.py would shadow the tasks package)
# isort: on

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_run(args: list[str], k: int, root: Path) -> float:
    root.mkdir(parents=True)
    env = {**os.environ, "ECHOBENCH_HOME": str(root / "runs"), "ECHOBENCH_CACHE": str(root / "cache"),
           "ECHOBENCH_DB": f"sqlite:///{root / 'echobench.db'}"}
    cmd = [sys.executable, "-m", "harness.cli", *args, "--json", "--num-processes", str(k)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return dt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", default="labelmap")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--features", default="radiomics")
    p.add_argument("--weights", default=None, help="Feature-extractor weights (e.g. the Inception .pt file).")
    p.add_argument("--n", type=int, default=240)
    p.add_argument("--n-small", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--device", default="auto")
    p.add_argument("--json-out", default=None, help="Also write the figures to this JSON file.")
    a = p.parse_args()

    import torch

    gpus = torch.cuda.device_count()
    device = f"{gpus} × {torch.cuda.get_device_name(0)}" if gpus else f"CPU only, {os.cpu_count()} cores"
    print(f"scale benchmark: {a.generator} + {a.features} features + fid, n={a.n} (fixed costs from n={a.n_small}), "
          f"batch {a.batch_size}; {device}; {platform.processor() or platform.machine()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    base = ["run", "--generator", a.generator, "--task", "fid", "--features", a.features, "--n-ref", str(a.n_small),
            "--batch-size", str(a.batch_size), "--device", a.device]
    if a.checkpoint:
        base += ["--checkpoint", a.checkpoint]
    if a.weights:
        base += ["--weights", a.weights]
    rows = []
    with tempfile.TemporaryDirectory(prefix="echobench-scale-") as tmp:
        for k in a.processes:
            t_small = timed_run([*base, "--n", str(a.n_small)], k, Path(tmp) / f"k{k}-small")
            t_n = timed_run([*base, "--n", str(a.n)], k, Path(tmp) / f"k{k}-n")
            rate = (a.n - a.n_small) / max(t_n - t_small, 1e-9)
            rows.append({"processes": k, "wall_s": t_n, "fixed_s": t_small, "images_per_s": rate,
                         "images_per_s_per_process": rate / k, "s_per_10k": 1e4 / rate})
            print(f"  K={k}: wall {t_n:6.1f} s for {a.n} images (fixed costs {t_small:5.1f} s); "
                  f"{rate:6.1f} img/s ({rate / k:6.1f} per process); 10,000 images ≈ {1e4 / rate / 60:6.1f} min")
    if len(rows) > 1:
        print(f"  speed-up K={rows[-1]['processes']} vs K={rows[0]['processes']}: "
              f"{rows[-1]['images_per_s'] / rows[0]['images_per_s']:.2f}×")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({"device": device, "args": vars(a), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
