"""Benchmark of the seg-utility task (not a test; prints figures).

    python benchmarks/seg_utility.py [--device cpu|cuda|auto] [--n-train 800] [--n-test 200] [--quick] [--json OUT]

1. Wall time of the default ``seg-utility`` (default parameters: 128 px, 3 training seeds) on the phantom for the
   ``real`` generator (trained on N = 800 real training images, tested on 200 reference images), no model cache,
   split into data preparation (phantom rendering, the runner's job, shown apart), training and evaluation.
   Target: ≤ 5 min on 2 CPU cores (``taskset -c 0,1`` with ``OMP_NUM_THREADS=2`` on a bigger machine).
2. Training steps/s of the task's loop (:func:`tasks.segmentation.train_network`, with and without augmentation)
   vs a plain PyTorch loop with the same MONAI network, loss, optimiser and batches; target ratio ≥ 0.9.
3. Dice + HD95 (MONAI) time for the test set.

``--quick``: N = 64 train / 16 test, 20 steps, 1 seed (a smoke run of the script).
"""

from __future__ import annotations

# isort: off
import _isolate  # noqa: F401  (first: keeps benchmarks/ off sys.path, where tasks.py would shadow the tasks package)
# isort: on

import argparse
import json
import os
import time

import numpy as np


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain_loop(x_u8: np.ndarray, y_u8: np.ndarray, n_classes: int, cfg, steps: int, device: str) -> float:
    """Steps/s of the plainest loop with the same network, loss, optimiser and batch size (no augmentation)."""
    import torch

    from tasks.segmentation import build_network

    torch.manual_seed(0)
    net = build_network("segmenter", cfg, n_classes).to(device).train()
    from monai.losses import DiceCELoss

    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    x = torch.from_numpy(x_u8).to(device).unsqueeze(1).float() / 255.0
    y = torch.from_numpy(y_u8.astype(np.int64)).to(device).unsqueeze(1)
    g = torch.Generator().manual_seed(0)

    def step() -> None:
        idx = torch.randint(0, len(x), (cfg.batch_size,), generator=g).to(device)
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x[idx]), y[idx]).backward()
        opt.step()

    for _ in range(3):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps / (time.perf_counter() - t0)


def task_loop(x_u8, y_u8, n_classes, cfg, steps, device, augment: bool) -> float:
    import dataclasses

    from tasks.segmentation import train_network

    warm = dataclasses.replace(cfg, steps=3, augment=augment)
    train_network("segmenter", x_u8, y_u8, n_classes, warm, 0, device=device)
    run = dataclasses.replace(cfg, steps=steps + 3, augment=augment)
    marks: list[float] = []

    def tick(_k: int) -> None:  # per-step rate like the plain loop: setup (network, data upload) and 3 warm-up steps excluded
        if len(marks) < 3:
            _sync(device)
            marks.append(time.perf_counter())
        else:
            marks.append(0.0)

    train_network("segmenter", x_u8, y_u8, n_classes, run, 0, device=device, progress=tick)
    _sync(device)
    return steps / (time.perf_counter() - marks[2])


def main() -> None:
    import torch

    from harness.data.phantom import PhantomSource
    from tasks import segmentation as seg
    from tasks.base import TaskContext
    from tasks.seg_utility import SegUtilityTask

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    ap.add_argument("--n-train", type=int, default=800)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--bench-steps", type=int, default=40, help="steps timed for the loop comparison")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    device = seg.resolve_device(args.device)
    n_train, n_test = (64, 16) if args.quick else (args.n_train, args.n_test)
    opts = {"steps": 20, "seeds": 1} if args.quick else {}
    out: dict = {"device": device, "torch_threads": torch.get_num_threads(), "cpus": len(os.sched_getaffinity(0)),
                 "n_train": n_train, "n_test": n_test}
    if device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name(0)
    print(f"device {device}, torch threads {out['torch_threads']}, CPUs available {out['cpus']}", flush=True)

    t0 = time.perf_counter()
    src = PhantomSource()  # the default phantom (256 px); the task resizes to its 128 px input
    train = next(src.iter_batches("train", n_train, batch_size=n_train))
    ref = next(src.iter_batches("reference", n_test, batch_size=n_test))
    out["data_s"] = time.perf_counter() - t0
    print(f"phantom data (runner's job): {n_train} + {n_test} images in {out['data_s']:.1f} s", flush=True)

    task = SegUtilityTask(**opts)
    timings = {"train_s": 0.0}
    real_train = seg.train_network

    def timed_train(*a, **k):
        t = time.perf_counter()
        net = real_train(*a, **k)
        _sync(device)
        timings["train_s"] += time.perf_counter() - t
        return net

    seg.train_network = timed_train
    ctx = TaskContext(feature_space=None, rng=np.random.default_rng(0), generator="real", device=device,
                      gen_images=lambda: [], gen_label_maps=lambda: [],
                      ref_images=lambda: list(ref.images), ref_label_maps=lambda: list(ref.label_maps),
                      ref_label_source="phantom", train_images=lambda: list(train.images),
                      train_label_maps=lambda: list(train.label_maps), train_label_source="phantom")
    t0, c0 = time.perf_counter(), time.process_time()
    rows = {r.metric: r for r in task.evaluate(ctx)}
    out["task_s"], out["task_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    seg.train_network = real_train
    out["train_s"] = timings["train_s"]
    out["mean_dice"] = rows["mean_dice"].value
    out["mean_dice_ci"] = [rows["mean_dice"].ci_low, rows["mean_dice"].ci_high]
    out["seed_sd"] = rows["mean_dice"].details["seed_sd"]
    out["dice"] = {m[5:]: round(r.value, 4) for m, r in rows.items() if m.startswith("dice_")}
    out["hd95"] = {m[5:]: round(r.value, 2) for m, r in rows.items() if m.startswith("hd95_")}
    p = task.params
    print(f"seg-utility default ({p['size']} px, {p['steps']} steps × {len(rows['mean_dice'].details['seeds'])} seeds, "
          f"batch {p['batch_size']}): {out['task_s']:.1f} s total, of which training {out['train_s']:.1f} s "
          f"(+ data {out['data_s']:.1f} s) → {out['task_s'] + out['data_s']:.1f} s with data; process CPU time "
          f"{out['task_cpu_s']:.1f} s (on a shared machine: wall ≈ CPU time / threads when unloaded)", flush=True)
    print(f"  mean Dice {out['mean_dice']:.3f} [{out['mean_dice_ci'][0]:.3f}, {out['mean_dice_ci'][1]:.3f}], "
          f"seed SD {out['seed_sd']}", flush=True)
    print(f"  Dice {out['dice']}\n  HD95 {out['hd95']}", flush=True)

    cfg = seg.TrainConfig.from_params(task.params, "seg-utility")
    structures = rows["mean_dice"].details["structures"]
    x = seg.prepare_images(train.images, cfg.size)
    y = seg.class_maps(train.label_maps, "phantom", structures, lv_myocardium_only=False, size=cfg.size, what="train")
    k = len(structures) + 1
    steps = 5 if args.quick else args.bench_steps
    out["plain_steps_s"] = plain_loop(x, y, k, cfg, steps, device)
    out["task_steps_s"] = task_loop(x, y, k, cfg, steps, device, augment=False)
    out["task_aug_steps_s"] = task_loop(x, y, k, cfg, steps, device, augment=True)
    out["ratio"] = out["task_steps_s"] / out["plain_steps_s"]
    out["ratio_aug"] = out["task_aug_steps_s"] / out["plain_steps_s"]
    print(f"training steps/s (batch {cfg.batch_size}, {cfg.size} px): plain PyTorch loop {out['plain_steps_s']:.2f}, "
          f"task loop {out['task_steps_s']:.2f} (ratio {out['ratio']:.2f}), with augmentation "
          f"{out['task_aug_steps_s']:.2f} (ratio {out['ratio_aug']:.2f})", flush=True)

    yt = seg.class_maps(ref.label_maps, "phantom", structures, lv_myocardium_only=False, size=cfg.size, what="ref")
    pred = np.roll(yt, 2, axis=2)  # a near-miss prediction: every structure present on both sides
    t0 = time.perf_counter()
    seg.dice_hd95(pred, yt, k)
    out["metrics_s"] = time.perf_counter() - t0
    print(f"MONAI Dice + HD95, {len(yt)} images × {k - 1} structures: {out['metrics_s']:.2f} s", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
