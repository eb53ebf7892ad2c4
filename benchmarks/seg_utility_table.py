"""The downstream-utility table on the phantom (not a test; prints figures): seg-utility (train on the generator's
images, test on 200 real reference images) and anatomy-faithfulness (a real-trained segmenter on the generator's
images) for the ``real`` (upper), ``labelmap`` (lower) and a ``cyclegan`` ``tiny`` generator, at the tasks' default
parameters.

    python benchmarks/seg_utility_table.py [--device cuda] [--n 800] [--n-test 200] [--no-cyclegan] [--quick]
"""

from __future__ import annotations

# isort: off
import _isolate  # noqa: F401  (first: keeps benchmarks/ off sys.path, where tasks.py would shadow the tasks package)
# isort: on

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    from generators.cyclegan import CycleGANGenerator
    from harness.data.phantom import PhantomSource, render_labelmap_image
    from tasks.anatomy_faithfulness import AnatomyFaithfulnessTask
    from tasks.base import TaskContext
    from tasks.seg_utility import SegUtilityTask
    from tasks.segmentation import resolve_device

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n", type=int, default=800, help="generated (and real training) images")
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--no-cyclegan", action="store_true")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny N, 20 steps, 1 seed, 1-epoch CycleGAN")
    ap.add_argument("--option", action="append", default=[], help="task option KEY=VALUE for both tasks")
    args = ap.parse_args()
    device = resolve_device(args.device)
    n, n_test = (32, 12) if args.quick else (args.n, args.n_test)
    opts = {"steps": 20} if args.quick else {}
    for item in args.option:
        key, _, value = item.partition("=")
        opts[key] = value
    src = PhantomSource()
    train = next(src.iter_batches("train", n, batch_size=n))
    test = next(src.iter_batches("test", n, batch_size=n))
    ref = next(src.iter_batches("reference", n_test, batch_size=n_test))
    gens = {"real": (list(test.images), list(test.label_maps)),
            "labelmap": (list(render_labelmap_image(test.label_maps)), list(test.label_maps))}
    if not args.no_cyclegan:
        t0 = time.perf_counter()
        cg = CycleGANGenerator()
        config = cg.resolve_config("tiny")
        if args.quick:
            config = config.replace(n_epochs=1, n_train=8)
        ck = cg.fit(src, Path(tempfile.mkdtemp()) / "cg", config, device=device)
        cg.load(ck, device)
        batches = list(cg.sample(n, seed=0, batch_size=64))
        gens["cyclegan-tiny"] = ([im for b in batches for im in b.images], [m for b in batches for m in b.label_maps])
        print(f"cyclegan tiny: trained and sampled {n} in {time.perf_counter() - t0:.0f} s", flush=True)
    cache = Path(tempfile.mkdtemp())
    print(f"{'generator':14s} {'seg-utility mean Dice [95% CI]':34s} {'seed SD':8s} {'LV Dice':8s} "
          f"{'faithfulness mean Dice [CI]':30s} {'s':>5s}", flush=True)
    for name, (images, maps) in gens.items():
        t0 = time.perf_counter()
        ctx = TaskContext(feature_space=None, rng=np.random.default_rng(0), generator=name, device=device,
                          cache_dir=cache, gen_images=lambda im=images: im, gen_label_maps=lambda m=maps: m,
                          ref_images=lambda: list(ref.images), ref_label_maps=lambda: list(ref.label_maps),
                          ref_label_source="phantom", train_images=lambda: list(train.images),
                          train_label_maps=lambda: list(train.label_maps), train_label_source="phantom")
        util = {r.metric: r for r in SegUtilityTask(**opts, **({"seeds": 1} if args.quick else {})).evaluate(ctx)}
        faith = {r.metric: r for r in AnatomyFaithfulnessTask(**opts).evaluate(ctx)}
        u, f = util["mean_dice"], faith["mean_dice"]
        sd = u.details.get("seed_sd")
        print(f"{name:14s} {u.value:.3f} [{u.ci_low:.3f}, {u.ci_high:.3f}]{'':14s} "
              f"{'-' if sd is None else f'{sd:.3f}':8s} {util['dice_lv'].value:.3f}    "
              f"{f.value:.3f} [{f.ci_low:.3f}, {f.ci_high:.3f}]{'':10s} {time.perf_counter() - t0:5.0f}", flush=True)
        print("   per structure (utility): " + ", ".join(f"{m[5:]} {r.value:.2f}" for m, r in util.items()
                                                          if m.startswith("dice_")), flush=True)
        print(f"   faithfulness ceiling (segmenter on real reference): {f.details.get('reference_mean_dice')}",
              flush=True)


if __name__ == "__main__":
    main()
