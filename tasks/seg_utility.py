"""``seg-utility``: does the synthetic data help? Train on synthetic, test on real (Gilbert et al., IEEE TMI 2021).

A fixed segmentation network (:mod:`tasks.segmentation`: MONAI ``UNet``, Dice + cross-entropy loss) is trained on
the generated images with the label maps they were made from, once per training seed (default 3), and tested on
the reference set's labelled images. Reported per structure present in the test labels (phantom reference: all
cardiac structures; CAMUS: LV, myocardium, LA; EchoNet: LV; a labelled folder: whatever it annotates), for
structures annotated on both sides (the one table: :mod:`harness.data.labels`; the rest are skipped with a note,
never counted as zero):

- ``dice_<structure>`` and ``hd95_<structure>`` (MONAI's definitions, HD95 in pixels at the network input size):
  mean over the test images whose ground truth has the structure of the per-image score averaged over seeds,
  bootstrap 95% CI over those images; the per-seed means and their SD in the details;
- ``mean_dice``: per test image the mean Dice over the structures it shows, averaged over images, with its CI and
  the spread over seeds.

Baselines: the ``real`` generator is trained on the data source's real **training split** (its own held-out images
may be the reference set): the upper reference; ``labelmap`` (flat label-map images): the lower one. The
leaderboard's "fraction of real" is a run's ``mean_dice`` over the ``real`` run's on the same reference.

A generator without label maps (SD-LoRA, ``images`` without ``labelmaps/``) gets one "not applicable" row: value NaN
(stored as NULL), ``details["not_applicable"]`` the reason. A reference set without label maps, label values outside
the table, or fewer than ``min_test`` labelled test images are a DataError.

Python API: build a :class:`tasks.base.TaskContext` with ``gen_images``/``gen_label_maps`` and
``ref_images``/``ref_label_maps``/``ref_label_source`` and call ``SegUtilityTask(steps=...).evaluate(ctx)``.
"""

from __future__ import annotations

import logging

import numpy as np

from harness.errors import DataError
from tasks.base import MetricResult, Task, TaskContext, TaskSpec
from tasks.segmentation import (
    TRAIN_PARAMETERS,
    LabelledSet,
    TrainConfig,
    dice_hd95,
    labelled_set,
    not_applicable,
    parse_seeds,
    per_image_dice_rows,
    predict,
    resolve_device,
    seg_problem,
    structure_rows,
    summarise_dice,
    trained_network,
)

log = logging.getLogger(__name__)
NAME = "seg-utility"
LABELLED_HELP = ("sources with label maps: phantom (all structures), camus (LV, myocardium, LA), echonet (LV "
                 "tracings), folder:DIR with a labelmaps/ folder beside images/ (phantom label values)")


def check_reference_plan(task: str, min_test: int, spec, n: int | None) -> None:
    """Before the run: a reference source without label maps, fewer than ``min_test`` reference images, or (for a
    folder) a label map that is not single-channel, not its image's size or holds values outside the label table,
    is the DataError :func:`reference_set` would raise after generating the images (naming the file)."""
    source = getattr(spec, "source", None)
    if source is not None and not getattr(source, "has_label_maps", False):
        raise DataError(f"task {task!r} tests on labelled real images, but the reference set has no label maps "
                        f"({LABELLED_HELP}); choose one with --reference")
    if n is not None and n < min_test:
        raise DataError(f"task {task!r}: the reference set has {n} labelled images; at least {min_test} are "
                        "needed for a test set (raise --n-ref or use a larger labelled reference)")
    if source is not None and n is not None and hasattr(source, "check_label_maps"):
        source.check_label_maps(spec.split, n)


def reference_set(ctx: TaskContext, task: str, min_test: int) -> LabelledSet:
    """The reference set's labelled images; a DataError when it has none or fewer than ``min_test``."""
    ref = labelled_set(ctx.ref_images, ctx.ref_label_maps, ctx.ref_label_source)
    if ref is None:
        raise DataError(f"task {task!r} tests on labelled real images, but the reference set has no label maps "
                        f"({LABELLED_HELP}); choose one with --reference")
    if len(ref) < min_test:
        raise DataError(f"task {task!r}: the reference set has {len(ref)} labelled images; at least {min_test} are "
                        "needed for a test set (raise --n-ref or use a larger labelled reference)")
    return ref


class SegUtilityTask(Task):
    """Train on synthetic, test on real: Dice/HD95 per structure of a segmenter trained on the generated images."""

    spec = TaskSpec(
        name=NAME,
        version="1",
        description="Train-on-synthetic/test-on-real segmentation (MONAI UNet, Dice+CE): Dice and HD95 per structure, "
                    "mean Dice, bootstrap CIs over test images, spread over training seeds",
        needs_reference=True,
        needs_features=False,
        needs_images=True,
        needs_labels=True,
        needs_real_train=True,  # only read for the `real` generator (trained on the real training split)
        default_features=None,
        parameters={**TRAIN_PARAMETERS, "seeds": 3, "min_test": 10, "n_boot": 1000, "eval_batch_size": 32},
    )

    def check_plan(self, *, reference=None, reference_n: int | None = None) -> None:
        check_reference_plan(NAME, int(self.params["min_test"]), reference, reference_n)

    def evaluate(self, ctx: TaskContext) -> list[MetricResult]:
        p = self.params
        cfg = TrainConfig.from_params(p, NAME)
        seeds = parse_seeds(p["seeds"], NAME)
        test = reference_set(ctx, NAME, int(p["min_test"]))
        if ctx.generator == "real":
            train = labelled_set(ctx.train_images, ctx.train_label_maps, ctx.train_label_source)
            trained_on = "the data source's real training split (upper reference)"
            if train is None:
                raise DataError(f"task {NAME!r} on the real generator trains on the data source's labelled training "
                                f"split, which has no label maps ({LABELLED_HELP})")
        else:
            train = labelled_set(ctx.gen_images, ctx.gen_label_maps, ctx.gen_label_source)
            trained_on = "the generated images and the label maps they were made from"
            if train is None:
                return [not_applicable("mean_dice", "not applicable: this generator does not produce labels "
                                       "(its image set has no label maps)")]
        prob = seg_problem(NAME, train, test, cfg, what="reference")
        structures, skipped, lv_only, k = prob.structures, prob.skipped, prob.lv_only, prob.k
        x_train, y_train, x_test, y_test = prob.x_train, prob.y_train, prob.x_eval, prob.y_eval
        device = resolve_device(ctx.device)
        ctx.progress(0, total=cfg.steps * len(seeds))
        dice, hd, pred_present, models = [], [], [], []
        for seed in seeds:
            net, info = trained_network("segmenter", x_train, y_train, k, cfg, seed, cache_dir=ctx.cache_dir,
                                        device=device, progress=ctx.progress)
            if info["cache"] == "hit":
                ctx.progress(cfg.steps)
            pred = predict(net, x_test, device=device, batch_size=int(p["eval_batch_size"]))
            d, h = dice_hd95(pred, y_test, k)
            dice.append(d)
            hd.append(h)
            pred_present.append(np.stack([(pred == c).any(axis=(1, 2)) for c in range(1, k)], axis=1))
            models.append(info)
        present = np.stack([(y_test == c).any(axis=(1, 2)) for c in range(1, k)], axis=1)
        scores, overall, per_image, spread = summarise_dice(structures, np.stack(dice), np.stack(hd), present,
                                                            np.stack(pred_present), ctx.rng, n_boot=int(p["n_boot"]))
        common = {
            "structures": structures, "skipped_structures": skipped, "trained_on": trained_on,
            "train_label_source": train.source, "test_label_source": test.source,
            "myocardium": "LV myocardium incl. septum (CAMUS convention)" if lv_only else "as labelled",
            "n_train": len(train), "n_train_unlabelled": train.n_unlabelled, "n_test": len(test),
            "n_test_unlabelled": test.n_unlabelled, "seeds": seeds, "models": models, "device": device,
            "resolution": cfg.size, **spread,
            "averaging": "per structure over test images whose ground truth has it; absent structures reported "
                         "(n_absent, n_absent_false_positive), not averaged",
        }
        self._write_per_image(ctx, structures, test.indices, np.stack(dice).mean(axis=0), present, per_image)
        return structure_rows(scores, overall, spread["n_images"], common)

    @staticmethod
    def _write_per_image(ctx: TaskContext, structures, indices, dice, present, per_image) -> None:
        ctx.write_csv("seg_utility_per_image", "seg_utility_per_image.csv",
                      ["reference_index", "mean_dice", *[f"dice_{s}" for s in structures]],
                      per_image_dice_rows(indices, per_image, dice, present))
