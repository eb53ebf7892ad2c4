"""``anatomy-faithfulness``: did the generator keep the anatomy of the label map it was given?

A segmenter (the fixed network of :mod:`tasks.segmentation`) is trained once on the data source's real training
split (cached by training-data hash, model version, parameters and seed) and segments every generated image that
has a label map; the Dice between its prediction and the label map the image was generated from is the image's
faithfulness. This answers "did CycleGAN move the walls?", the known failure of unpaired translation.

Reported: ``mean_dice`` (per image, the mean over the structures its label map has; mean over images, bootstrap
95% CI) and ``dice_<structure>`` per structure annotated in both the training labels and the generated label maps
(:mod:`harness.data.labels`); ``details["per_image_mean_dice"]`` holds every image's value (aligned with
``details["image_indices"]``) for the agreement report. When the reference set has label maps, the same segmenter's
mean Dice on it is given as ``details["reference_mean_dice"]``: the ceiling (how well the segmenter does on real
images). Artifacts: a per-image CSV and a gallery of the 16 least faithful images with both contours drawn (green:
the label map the image was made from; red: what the real-trained segmenter sees).

A generator without label maps gets a "not applicable" row (value NaN, ``details["not_applicable"]``); a training
split without label maps is a DataError.
"""

from __future__ import annotations

import logging

import numpy as np

from harness.errors import DataError
from tasks.base import MetricResult, Task, TaskContext, TaskSpec
from tasks.seg_utility import LABELLED_HELP
from tasks.segmentation import (
    TRAIN_PARAMETERS,
    TrainConfig,
    class_maps,
    dice_hd95,
    labelled_set,
    not_applicable,
    per_image_dice_rows,
    predict,
    prepare_images,
    resolve_device,
    seg_problem,
    structure_rows,
    summarise_dice,
    trained_network,
)

log = logging.getLogger(__name__)
NAME = "anatomy-faithfulness"
LABEL_COLOUR = (60, 220, 90)
PRED_COLOUR = (235, 60, 60)


def draw_contours(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """RGB copy of ``image`` with the boundaries of class maps ``truth`` (green) and ``pred`` (red) drawn on it;
    the class maps are resized (nearest) to the image size."""
    import cv2
    from skimage.segmentation import find_boundaries

    from harness.data.base import to_rgb

    out = to_rgb(np.asarray(image, dtype=np.uint8)).copy()
    h, w = out.shape[:2]
    for m, colour in ((truth, LABEL_COLOUR), (pred, PRED_COLOUR)):
        big = cv2.resize(np.ascontiguousarray(m, dtype=np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        out[find_boundaries(big, mode="inner") & (big > 0)] = colour
    return out


class AnatomyFaithfulnessTask(Task):
    """Dice between a real-trained segmenter's prediction on each generated image and that image's label map."""

    spec = TaskSpec(
        name=NAME,
        version="1",
        description="Dice between a real-trained segmenter's prediction on each generated image and the label map it "
                    "was generated from (per structure, mean, per image); gallery of the least faithful images",
        needs_reference=True,  # optional: the segmenter's Dice on labelled reference images (the ceiling)
        needs_features=False,
        needs_images=True,
        needs_labels=True,
        needs_real_train=True,
        default_features=None,
        parameters={**TRAIN_PARAMETERS, "seed": 0, "n_boot": 1000, "top_k": 16, "eval_batch_size": 32},
    )

    def evaluate(self, ctx: TaskContext) -> list[MetricResult]:
        p = self.params
        cfg = TrainConfig.from_params(p, NAME)
        train = labelled_set(ctx.train_images, ctx.train_label_maps, ctx.train_label_source)
        if train is None:
            raise DataError(f"task {NAME!r} trains its segmenter on the data source's labelled training split, which "
                            f"has no label maps ({LABELLED_HELP})")
        gen = labelled_set(ctx.gen_images, ctx.gen_label_maps, ctx.gen_label_source)
        if gen is None:
            return [not_applicable("mean_dice", "not applicable: this generator does not produce labels "
                                   "(its image set has no label maps)")]
        prob = seg_problem(NAME, train, gen, cfg, what="generated")
        structures, skipped, lv_only, k = prob.structures, prob.skipped, prob.lv_only, prob.k
        x_train, y_train, x_gen, y_gen = prob.x_train, prob.y_train, prob.x_eval, prob.y_eval
        device = resolve_device(ctx.device)
        ctx.progress(0, total=cfg.steps)
        net, info = trained_network("segmenter", x_train, y_train, k, cfg, int(p["seed"]), cache_dir=ctx.cache_dir,
                                    device=device, progress=ctx.progress)
        pred = predict(net, x_gen, device=device, batch_size=int(p["eval_batch_size"]))
        dice, hd = dice_hd95(pred, y_gen, k, hd95=False)
        present = np.stack([(y_gen == c).any(axis=(1, 2)) for c in range(1, k)], axis=1)
        pred_present = np.stack([(pred == c).any(axis=(1, 2)) for c in range(1, k)], axis=1)
        scores, overall, per_image, spread = summarise_dice(structures, dice[None], hd[None], present,
                                                            pred_present[None], ctx.rng, n_boot=int(p["n_boot"]))
        common = {
            "structures": structures, "skipped_structures": skipped, "segmenter": info,
            "train_label_source": train.source, "generated_label_source": gen.source,
            "myocardium": "LV myocardium incl. septum (CAMUS convention)" if lv_only else "as labelled",
            "n_train": len(train), "n_generated": len(gen), "n_generated_unlabelled": gen.n_unlabelled,
            "device": device, "resolution": cfg.size,
            "image_indices": [int(i) for i in gen.indices],
            "per_image_mean_dice": [None if not np.isfinite(v) else round(float(v), 4) for v in per_image],
            **self._reference_dice(ctx, net, structures, lv_only, cfg, device, int(p["eval_batch_size"])),
        }
        order = [int(i) for i in np.argsort(np.where(np.isfinite(per_image), per_image, np.inf), kind="stable")]
        worst = [i for i in order if np.isfinite(per_image[i])][: int(p["top_k"])]
        common["least_faithful"] = [int(gen.indices[i]) for i in worst]
        self._write_artifacts(ctx, gen, structures, dice, present, per_image, y_gen, pred, worst)
        return structure_rows(scores, overall, spread["n_images"], common, hd95=False)

    @staticmethod
    def _reference_dice(ctx: TaskContext, net, structures, lv_only, cfg, device, batch) -> dict:
        """The segmenter's mean Dice on the labelled reference images (the ceiling), when there are any."""
        ref = labelled_set(ctx.ref_images, ctx.ref_label_maps, ctx.ref_label_source)
        if ref is None:
            return {"reference_mean_dice": None, "reference_note": "the reference set has no label maps"}
        from harness.data.labels import scored_structures

        usable = [s for s in structures if s in scored_structures(ref.source)]
        if len(usable) != len(structures):
            return {"reference_mean_dice": None,
                    "reference_note": f"the reference labels ({ref.source}) do not annotate all of {structures}"}
        y = class_maps(ref.label_maps, ref.source, structures, lv_myocardium_only=lv_only, size=cfg.size,
                       what="reference")
        pred = predict(net, prepare_images(ref.images, cfg.size), device=device, batch_size=batch)
        dice, _ = dice_hd95(pred, y, len(structures) + 1, hd95=False)
        present = np.stack([(y == c).any(axis=(1, 2)) for c in range(1, len(structures) + 1)], axis=1)
        counts = present.sum(axis=1)
        ok = counts > 0
        value = float(((dice * present).sum(axis=1)[ok] / counts[ok]).mean()) if ok.any() else None
        return {"reference_mean_dice": value, "n_reference": int(ok.sum())}

    @staticmethod
    def _write_artifacts(ctx: TaskContext, gen, structures, dice, present, per_image, y_gen, pred, worst) -> None:
        if ctx.artifacts_dir is None:
            return
        from tasks.gallery import contact_sheet

        out = ctx.artifacts_dir
        ctx.write_csv("anatomy_faithfulness_per_image", "anatomy_faithfulness_per_image.csv",
                      ["index", "mean_dice", *[f"dice_{s}" for s in structures]],
                      per_image_dice_rows(gen.indices, per_image, dice, present))
        cells = [draw_contours(gen.images[i], y_gen[i], pred[i]) for i in worst]
        captions = [f"#{int(gen.indices[i])} Dice {per_image[i]:.2f}" for i in worst]
        ctx.artifacts["anatomy_faithfulness_gallery"] = contact_sheet(
            cells, captions, out / "anatomy_faithfulness_gallery.png",
            title=f"least faithful {len(worst)} of {len(gen)}: green = label map, red = real-trained segmenter")
