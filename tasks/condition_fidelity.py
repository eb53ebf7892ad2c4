"""``condition-fidelity``: does a conditional generator draw the condition it was asked for?

A classifier (the fixed MONAI ``Classifier`` of :mod:`tasks.segmentation`, cross-entropy) is trained once on the
data source's real training split and its condition labels (phantom conditions; the conditions of a labelled
folder's captions), cached like the segmenters. It predicts the condition of every generated image whose requested
condition is one of its classes. Reported:

- ``condition_accuracy``: fraction of those images whose predicted condition is the requested one, Wilson 95% CI;
  details: the confusion matrix (rows: requested, columns: predicted; ``sklearn.metrics.confusion_matrix``), the
  recall per requested condition, balanced accuracy, and the **chance level** Σ_c p_requested(c)·p_predicted(c) —
  the accuracy a generator that ignores the condition gets from this classifier with these predictions' marginal
  (a generator at chance draws images independent of what was asked);
- ``details["reference_accuracy"]``: the classifier's accuracy on the labelled reference images (the ceiling), when
  the reference set has conditions.

An unconditional generator (no condition recorded per image) gets a "not applicable" row (value NaN,
``details["not_applicable"]``); images whose requested condition the classifier does not know are left out and
counted. A training split without conditions, or with a single condition, is a DataError.
"""

from __future__ import annotations

import logging

import numpy as np

from harness.errors import DataError
from tasks.base import MetricResult, Task, TaskContext, TaskSpec
from tasks.color_shift import wilson_interval
from tasks.segmentation import (
    TRAIN_PARAMETERS,
    TrainConfig,
    data_hash,
    not_applicable,
    predict,
    prepare_images,
    resolve_device,
    trained_network,
)

log = logging.getLogger(__name__)
NAME = "condition-fidelity"


def condition_classes(conditions: list[str]) -> list[str]:
    """The classifier's classes: the phantom's conditions in their usual order, then any other names sorted."""
    from harness.data.labels import CONDITIONS

    seen = set(conditions)
    return [c for c in CONDITIONS if c in seen] + sorted(seen - set(CONDITIONS))


def chance_accuracy(requested: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """Σ_c p_requested(c) · p_predicted(c): the expected accuracy when predictions are independent of requests."""
    pr = np.bincount(requested, minlength=n_classes) / max(len(requested), 1)
    pp = np.bincount(predicted, minlength=n_classes) / max(len(predicted), 1)
    return float(pr @ pp)


class ConditionFidelityTask(Task):
    """Accuracy of a real-trained condition classifier on generated images against the requested condition."""

    spec = TaskSpec(
        name=NAME,
        version="1",
        description="Accuracy (Wilson CI) and confusion matrix of a real-trained condition classifier on the generated "
                    "images against the requested condition; chance level; not applicable to unconditional generators",
        needs_reference=True,  # optional: the classifier's accuracy on the reference set (the ceiling)
        needs_features=False,
        needs_images=True,
        needs_conditions=True,
        needs_real_train=True,
        default_features=None,
        parameters={**TRAIN_PARAMETERS, "steps": 400, "seed": 0, "eval_batch_size": 32},
    )

    def evaluate(self, ctx: TaskContext) -> list[MetricResult]:
        p = self.params
        cfg = TrainConfig.from_params(p, NAME)
        gen_conds = list(ctx.gen_conditions()) if ctx.gen_conditions is not None else []
        if not any(c is not None for c in gen_conds):
            return [not_applicable("condition_accuracy", "not applicable: unconditional generator (no requested "
                                   "condition is recorded for its images)")]
        if ctx.train_images is None or ctx.train_conditions is None:
            raise DataError(f"task {NAME!r} trains its classifier on the data source's training split with condition "
                            "labels, which this context does not provide")
        train_conds = list(ctx.train_conditions())
        keep = [i for i, c in enumerate(train_conds) if c is not None]
        classes = condition_classes([train_conds[i] for i in keep])
        if len(classes) < 2:
            raise DataError(f"task {NAME!r}: the training split has condition labels for {len(keep)} images and "
                            f"{len(classes)} distinct condition(s) ({', '.join(classes) or 'none'}); at least two "
                            "are needed (the phantom, or a folder whose captions name conditions, has them)")
        index = {c: j for j, c in enumerate(classes)}
        train_images = list(ctx.train_images())
        x_train = prepare_images([train_images[i] for i in keep], cfg.size)
        y_train = np.array([index[train_conds[i]] for i in keep], dtype=np.int64)
        device = resolve_device(ctx.device)
        ctx.progress(0, total=cfg.steps)
        net, info = trained_network("classifier", x_train, y_train, len(classes), cfg, int(p["seed"]),
                                    cache_dir=ctx.cache_dir, device=device, progress=ctx.progress,
                                    train_hash=data_hash(x_train, y_train, extra=classes))
        scored = [i for i, c in enumerate(gen_conds) if c in index]
        unknown = sorted({c for c in gen_conds if c is not None and c not in index})
        if not scored:
            return [not_applicable("condition_accuracy", "not applicable: none of the requested conditions "
                                   f"({', '.join(unknown)}) is a class of the classifier ({', '.join(classes)})")]
        gen_images = list(ctx.gen_images())
        requested = np.array([index[gen_conds[i]] for i in scored], dtype=np.int64)
        predicted = predict(net, prepare_images([gen_images[i] for i in scored], cfg.size), device=device,
                            batch_size=int(p["eval_batch_size"]))
        from sklearn.metrics import balanced_accuracy_score, confusion_matrix

        hits = int((predicted == requested).sum())
        n = len(scored)
        lo, hi = wilson_interval(hits, n)
        cm = confusion_matrix(requested, predicted, labels=list(range(len(classes))))
        recall = {c: (float(cm[j, j] / cm[j].sum()) if cm[j].sum() else None) for j, c in enumerate(classes)}
        details = {
            "classes": classes, "confusion_matrix": cm.tolist(), "confusion_rows": "requested",
            "confusion_columns": "predicted", "recall_per_condition": recall,
            "balanced_accuracy": float(balanced_accuracy_score(requested, predicted)),
            "chance": chance_accuracy(requested, predicted, len(classes)),
            "n_correct": hits, "n_without_condition": sum(c is None for c in gen_conds),
            "n_unknown_condition": sum(c is not None and c not in index for c in gen_conds),
            "unknown_conditions": unknown, "classifier": info, "n_train": len(keep), "device": device,
            "resolution": cfg.size, "ci": "Wilson 95%",
            **self._reference_accuracy(ctx, net, index, cfg, device, int(p["eval_batch_size"])),
        }
        self._write_artifact(ctx, classes, cm)
        return [MetricResult("condition_accuracy", hits / n, lo, hi, n, higher_is_better=True, details=details)]

    @staticmethod
    def _reference_accuracy(ctx: TaskContext, net, index, cfg, device, batch) -> dict:
        if ctx.ref_images is None or ctx.ref_conditions is None:
            return {"reference_accuracy": None}
        conds = list(ctx.ref_conditions())
        rows = [i for i, c in enumerate(conds) if c in index]
        if not rows:
            return {"reference_accuracy": None}
        images = list(ctx.ref_images())
        pred = predict(net, prepare_images([images[i] for i in rows], cfg.size), device=device, batch_size=batch)
        truth = np.array([index[conds[i]] for i in rows])
        return {"reference_accuracy": float((pred == truth).mean()), "n_reference": len(rows)}

    @staticmethod
    def _write_artifact(ctx: TaskContext, classes, cm) -> None:
        ctx.write_csv("condition_confusion", "condition_confusion.csv", ["requested \\ predicted", *classes],
                      ([c, *[int(v) for v in row]] for c, row in zip(classes, cm)))
