"""anatomy-faithfulness on tiny phantom data: real's own images are more faithful than labelmap's flat images to a
real-trained segmenter; a 10-px shift drops that image's Dice; the gallery and per-image values are written."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.anatomy_faithfulness import AnatomyFaithfulnessTask
from tests.tasks.seg_fixtures import TINY, by_metric, context, labelmap_images, phantom_data

OPTS = {k: v for k, v in TINY.items()}

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def data():
    return phantom_data()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("task-models")


def test_labelmap_is_less_faithful_than_real(data, cache, tmp_path):
    real_ctx = context(data, "real", data.test.images, data.test.label_maps, cache_dir=cache)
    real_ctx.artifacts_dir = tmp_path / "real"
    real = by_metric(AnatomyFaithfulnessTask(**OPTS).evaluate(real_ctx))
    low = by_metric(AnatomyFaithfulnessTask(**OPTS).evaluate(
        context(data, "labelmap", labelmap_images(data.test), data.test.label_maps, cache_dir=cache)))
    assert real["mean_dice"].value > low["mean_dice"].value + 0.05
    assert real["mean_dice"].details["segmenter"]["cache"] == "miss"
    assert low["mean_dice"].details["segmenter"]["cache"] == "hit"  # the same real-trained segmenter
    per_image = real["mean_dice"].details["per_image_mean_dice"]
    assert len(per_image) == len(data.test.images) and real["mean_dice"].value == pytest.approx(np.mean(per_image), abs=1e-3)
    assert 0 < real["mean_dice"].details["reference_mean_dice"] <= 1
    assert real_ctx.artifacts["anatomy_faithfulness_gallery"].is_file()
    assert real_ctx.artifacts["anatomy_faithfulness_per_image"].read_text().startswith("index,mean_dice,dice_myocardium")
    assert len(real["mean_dice"].details["least_faithful"]) == 16
    assert not any(r.metric.startswith("hd95") for r in real.values())


def test_shifted_image_drops_its_dice(data, cache):
    """Fault injection: image 5 shifted 10 px to the right (its label map kept) loses faithfulness; others don't."""
    images = [im.copy() for im in data.test.images]
    images[5] = np.roll(images[5], 10, axis=1)
    images[5][:, :10] = 0
    clean = by_metric(AnatomyFaithfulnessTask(**OPTS).evaluate(
        context(data, "real", data.test.images, data.test.label_maps, cache_dir=cache)))
    shifted = by_metric(AnatomyFaithfulnessTask(**OPTS).evaluate(
        context(data, "real", images, data.test.label_maps, cache_dir=cache)))
    a, b = clean["mean_dice"].details["per_image_mean_dice"], shifted["mean_dice"].details["per_image_mean_dice"]
    assert b[5] < a[5] - 0.1
    assert b[:5] + b[6:] == a[:5] + a[6:]
    assert 5 in shifted["mean_dice"].details["least_faithful"][:3]


def test_without_labels_not_applicable(data):
    (row,) = AnatomyFaithfulnessTask(**OPTS).evaluate(context(data, "sd-lora", data.test.images, None))
    assert np.isnan(row.value) and "does not produce labels" in row.details["not_applicable"]
