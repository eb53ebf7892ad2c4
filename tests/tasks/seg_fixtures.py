"""Tiny phantom data and contexts shared by the segmentation-task tests (64 px, a few dozen images, no download)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.data.base import SampleBatch
from harness.data.phantom import PhantomSource, render_labelmap_image
from tasks.base import TaskContext

SIZE = 64
#: the tiny training configuration of every test (seconds per model on a loaded 2-core CPU)
TINY = {"size": 64, "channels": "16,32,64", "res_units": 0, "steps": 200, "batch_size": 8, "lr": 5e-3, "n_boot": 200}


@dataclass
class PhantomData:
    train: SampleBatch
    test: SampleBatch  # what the `real` generator yields (the held-out split)
    ref: SampleBatch


def phantom_data(n_train: int = 40, n_test: int = 24, n_ref: int = 16, **options) -> PhantomData:
    src = PhantomSource(size=SIZE, **options)

    def get(split: str, n: int) -> SampleBatch:
        return next(src.iter_batches(split, n, batch_size=n))

    return PhantomData(get("train", n_train), get("test", n_test), get("reference", n_ref))


def labelmap_images(batch: SampleBatch) -> np.ndarray:
    return render_labelmap_image(batch.label_maps)


def context(data: PhantomData, generator: str, images, label_maps, *, cache_dir: Path | None = None,
            conditions=None, ref_labels: bool = True, seed: int = 0) -> TaskContext:
    """A TaskContext as the runner builds it for the segmentation tasks (phantom label tables everywhere)."""
    images, label_maps = list(images), None if label_maps is None else list(label_maps)
    return TaskContext(
        feature_space=None, rng=np.random.default_rng(seed), generator=generator, device="cpu", cache_dir=cache_dir,
        gen_images=lambda: images, gen_label_maps=None if label_maps is None else (lambda: label_maps),
        gen_label_source="phantom", gen_conditions=None if conditions is None else (lambda: list(conditions)),
        ref_images=lambda: list(data.ref.images),
        ref_label_maps=(lambda: list(data.ref.label_maps)) if ref_labels else None, ref_label_source="phantom",
        ref_conditions=lambda: list(data.ref.conditions),
        train_images=lambda: list(data.train.images), train_label_maps=lambda: list(data.train.label_maps),
        train_label_source="phantom", train_conditions=lambda: list(data.train.conditions),
    )


def by_metric(results) -> dict:
    return {r.metric: r for r in results}
