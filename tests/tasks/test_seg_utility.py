"""seg-utility on tiny phantom data: real > labelmap, deterministic reruns, the model cache, not-applicable rows and
bad input."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import DataError
from tasks import segmentation as seg
from tasks.seg_utility import SegUtilityTask
from tests.tasks.seg_fixtures import TINY, by_metric, context, labelmap_images, phantom_data

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def data():
    return phantom_data()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("task-models")


@pytest.fixture(scope="module")
def real_results(data, cache):
    ctx = context(data, "real", data.test.images, data.test.label_maps, cache_dir=cache)
    return SegUtilityTask(**TINY, seeds=1).evaluate(ctx)


def test_real_beats_labelmap(data, cache, real_results):
    ctx = context(data, "labelmap", labelmap_images(data.train), data.train.label_maps, cache_dir=cache)
    low = by_metric(SegUtilityTask(**TINY, seeds=1).evaluate(ctx))
    high = by_metric(real_results)
    assert high["mean_dice"].value > low["mean_dice"].value + 0.05
    assert high["dice_lv"].value > low["dice_lv"].value
    assert high["mean_dice"].details["trained_on"].startswith("the data source's real training split")
    assert low["mean_dice"].details["trained_on"].startswith("the generated images")


def test_rows_per_structure_present_in_the_test_labels(data, real_results):
    rows = by_metric(real_results)
    structures = rows["mean_dice"].details["structures"]
    assert "tissue" not in structures and {"lv", "rv", "la", "ra", "myocardium"} <= set(structures)
    for s in structures:
        d, h = rows[f"dice_{s}"], rows[f"hd95_{s}"]
        assert 0.0 <= d.value <= 1.0 and d.higher_is_better and not h.higher_is_better
        assert d.n == int(sum((m == seg_label(s)).any() for m in data.ref.label_maps))
        assert d.ci_low is None or d.ci_low <= d.value <= d.ci_high
    m = rows["mean_dice"]
    assert m.ci_low <= m.value <= m.ci_high and m.n == len(data.ref.images)
    assert m.details["n_test"] == len(data.ref.images) and m.details["seeds"] == [0]


def seg_label(name: str) -> int:
    from harness.data.labels import LABELS

    return LABELS[name]


def test_rerun_is_identical_and_cache_hit_skips_training(data, cache, real_results, monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("the cached model should have been loaded")

    monkeypatch.setattr(seg, "train_network", no_training)
    ctx = context(data, "real", data.test.images, data.test.label_maps, cache_dir=cache)
    again = SegUtilityTask(**TINY, seeds=1).evaluate(ctx)
    assert [(r.metric, r.value, r.ci_low, r.ci_high) for r in again] == \
        [(r.metric, r.value, r.ci_low, r.ci_high) for r in real_results]
    assert again[0].details["models"][0]["cache"] == "hit"
    assert real_results[0].details["models"][0]["cache"] == "miss"


def test_real_trains_on_the_training_split_not_on_its_generated_images(data, cache, real_results):
    """The `real` generator's segmenter comes from the source's training split: blank generated images change
    nothing (the same cached model, the same numbers)."""
    blank = [np.zeros_like(im) for im in data.test.images]
    ctx = context(data, "real", blank, data.test.label_maps, cache_dir=cache)
    again = SegUtilityTask(**TINY, seeds=1).evaluate(ctx)
    assert again[0].details["models"][0]["cache"] == "hit"
    assert again[0].details["n_train"] == len(data.train.images)
    assert [(r.metric, repr(r.value)) for r in again] == [(r.metric, repr(r.value)) for r in real_results]


def test_training_is_deterministic_without_cache(data):
    x = seg.prepare_images(data.train.images[:16], 32)
    y = seg.resize_maps([(m == 3).astype(np.uint8) for m in data.train.label_maps[:16]], 32)
    cfg = seg.TrainConfig(size=32, channels=(4, 8), res_units=0, steps=5, batch_size=4, lr=1e-2)
    a = seg.predict(seg.train_network("segmenter", x, y, 2, cfg, 7), x)
    b = seg.predict(seg.train_network("segmenter", x, y, 2, cfg, 7), x)
    np.testing.assert_array_equal(a, b)


def test_generator_without_labels_is_not_applicable(data):
    ctx = context(data, "sd-lora", data.test.images, None)
    (row,) = SegUtilityTask(**TINY, seeds=1).evaluate(ctx)
    assert row.metric == "mean_dice" and np.isnan(row.value)
    assert row.details["not_applicable"].startswith("not applicable: this generator does not produce labels")
    ctx = context(data, "images", data.test.images, [None] * len(data.test.images))
    assert "not_applicable" in SegUtilityTask(**TINY, seeds=1).evaluate(ctx)[0].details


def test_reference_without_labels_names_labelled_sources(data):
    ctx = context(data, "labelmap", labelmap_images(data.train), data.train.label_maps, ref_labels=False)
    with pytest.raises(DataError, match="reference set has no label maps.*phantom.*camus.*echonet.*folder"):
        SegUtilityTask(**TINY, seeds=1).evaluate(ctx)


def test_too_few_labelled_test_images(data):
    ctx = context(data, "labelmap", labelmap_images(data.train), data.train.label_maps)
    maps = list(data.ref.label_maps[:9]) + [None] * (len(data.ref.label_maps) - 9)
    ctx.ref_label_maps = lambda: maps
    with pytest.raises(DataError, match="has 9 labelled images; at least 10"):
        SegUtilityTask(**TINY, seeds=1).evaluate(ctx)


def test_label_value_outside_the_table(data):
    maps = [m.copy() for m in data.train.label_maps]
    maps[3][0, 0] = 42
    ctx = context(data, "labelmap", labelmap_images(data.train), maps)
    with pytest.raises(DataError, match=r"training image 3: label value\(s\) \[42\] are not in the phantom label table"):
        SegUtilityTask(**TINY, seeds=1).evaluate(ctx)


def test_echonet_reference_scores_lv_only(data, cache):
    """An LV-only reference (EchoNet values: LV = 3, else 0): only dice_lv/hd95_lv, the rest skipped with a note."""
    ref_maps = [np.where(m == 3, 3, 0).astype(np.uint8) for m in data.ref.label_maps]
    ctx = context(data, "labelmap", labelmap_images(data.train), data.train.label_maps, cache_dir=cache)
    ctx.ref_label_maps, ctx.ref_label_source = (lambda: ref_maps), "echonet"
    rows = by_metric(SegUtilityTask(**TINY, seeds=1).evaluate(ctx))
    assert set(rows) == {"mean_dice", "dice_lv", "hd95_lv"}
    assert "not annotated by the reference's source (echonet)" in rows["mean_dice"].details["skipped_structures"]["rv"]
