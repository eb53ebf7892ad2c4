"""Issue 19 audit: promises of the segmentation tasks that the other tests left weak.

- the trained-model cache key covers (kind, training data, classes, task/model version, configuration, seed): each
  change trains a new model; a corrupt or foreign cache file is retrained, never trusted;
- a full seg-utility run without any cache is bit-identical when repeated, and its training seeds matter;
- Dice/HD95 closed forms (identical masks, single pixels at a known distance, a known overlap);
- a structure missing from the generated label maps is skipped with a note, never scored as zero;
- a CAMUS reference scores exactly LV, myocardium (LV convention) and LA;
- the default of three training seeds.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from harness.data import labels as L
from tasks import segmentation as seg
from tasks.seg_utility import SegUtilityTask
from tests.tasks.seg_fixtures import TINY, by_metric, context, labelmap_images, phantom_data

pytestmark = pytest.mark.usefixtures("torch_one_thread")

#: smaller than TINY: these tests check bookkeeping and determinism, not segmentation quality
SMALL = {**TINY, "size": 32, "channels": "8,16", "steps": 25}


@pytest.fixture(scope="module")
def data():
    return phantom_data(n_train=24, n_test=12, n_ref=12)


# the model cache ---------------------------------------------------------------------------------------------------
def _problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (8, 16, 16), dtype=np.uint8)
    y = (x > 128).astype(np.uint8)
    return x, y


CFG = seg.TrainConfig(size=16, channels=(4, 8), res_units=0, steps=3, batch_size=4, lr=1e-2, augment=False)


def test_model_cache_key_covers_everything_that_determines_the_weights(tmp_path, monkeypatch):
    x, y = _problem()
    trained: list[int] = []
    original = seg.train_network
    monkeypatch.setattr(seg, "train_network", lambda *a, **k: trained.append(1) or original(*a, **k))

    def get(x=x, y=y, k=2, cfg=CFG, seed=0, kind="segmenter"):
        net, info = seg.trained_network(kind, x, y, k, cfg, seed, cache_dir=tmp_path)
        return net, info["cache"]

    net0, c = get()
    assert c == "miss" and len(trained) == 1
    net1, c = get()
    assert c == "hit" and len(trained) == 1  # loaded, not trained
    np.testing.assert_array_equal(seg.predict(net0, x), seg.predict(net1, x))
    x2 = x.copy()
    x2[3, 4, 5] ^= 1  # one pixel of one training image
    y3 = y.copy()
    y3[0, 0, 0] ^= 1
    changes = [dict(seed=1), dict(cfg=seg.TrainConfig(**{**CFG.__dict__, "steps": 4})),
               dict(cfg=seg.TrainConfig(**{**CFG.__dict__, "lr": 2e-2})), dict(x=x2), dict(y=y3), dict(k=3)]
    for n, change in enumerate(changes, start=2):
        _, c = get(**change)
        assert c == "miss" and len(trained) == n, change
        assert get(**change)[1] == "hit"
    monkeypatch.setattr(seg, "MODEL_VERSION", seg.MODEL_VERSION + "-next")  # a new task/model version retrains
    assert get()[1] == "miss" and len(trained) == len(changes) + 2


def test_corrupt_or_foreign_cache_file_is_retrained(tmp_path, caplog):
    x, y = _problem()
    _, info = seg.trained_network("segmenter", x, y, 2, CFG, 0, cache_dir=tmp_path)
    path = tmp_path / seg.MODELS_DIR / info["path"].rsplit("/", 1)[1]
    path.write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING):
        _, again = seg.trained_network("segmenter", x, y, 2, CFG, 0, cache_dir=tmp_path)
    assert again["cache"] == "miss" and "cannot be used" in caplog.text
    # another model's file under this model's name: its stored key differs, so it is not used
    _, other = seg.trained_network("segmenter", x, y, 2, CFG, 1, cache_dir=tmp_path)
    (tmp_path / seg.MODELS_DIR / other["path"].rsplit("/", 1)[1]).replace(path)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _, third = seg.trained_network("segmenter", x, y, 2, CFG, 0, cache_dir=tmp_path)
    assert third["cache"] == "miss" and "stored key differs" in caplog.text


# determinism and seeds ---------------------------------------------------------------------------------------------
def test_full_task_rerun_without_cache_is_identical_and_seeds_matter(data):
    def once():
        ctx = context(data, "labelmap", labelmap_images(data.train), data.train.label_maps, cache_dir=None)
        return SegUtilityTask(**SMALL, seeds=2).evaluate(ctx)

    a, b = once(), once()
    assert all(r.details.get("models", [{}])[0].get("cache") == "off" for r in a if r.metric == "mean_dice")
    def key(rows):  # repr: bit-identical floats, NaN equal to NaN
        return [(r.metric, repr(r.value), repr(r.ci_low), repr(r.ci_high), r.n) for r in rows]

    assert key(a) == key(b)
    m = by_metric(a)["mean_dice"].details
    assert m["mean_dice_per_seed"] == by_metric(b)["mean_dice"].details["mean_dice_per_seed"]
    assert m["mean_dice_per_seed"][0] != m["mean_dice_per_seed"][1]  # two seeds, two different networks


def test_default_is_three_training_seeds():
    assert SegUtilityTask.spec.parameters["seeds"] == 3 and seg.parse_seeds(3, "seg-utility") == [0, 1, 2]


# Dice / HD95 closed forms ------------------------------------------------------------------------------------------
def test_dice_hd95_closed_forms():
    p = np.zeros((3, 20, 20), np.uint8)
    g = np.zeros_like(p)
    p[0, 4:10, 4:10] = g[0, 4:10, 4:10] = 1  # identical: Dice 1, HD95 0
    p[1, 5, 5], g[1, 5, 10] = 1, 1  # two single pixels 5 apart: Dice 0, HD95 5
    g[2, 0:10, 0:10] = 1  # prediction = the left half of the truth: Dice = 2·50/(50+100)
    p[2, 0:10, 0:5] = 1
    dice, hd = seg.dice_hd95(p, g, 2)
    assert dice[:, 0] == pytest.approx([1.0, 0.0, 2 * 50 / 150])
    assert hd[0, 0] == pytest.approx(0.0) and hd[1, 0] == pytest.approx(5.0)
    # the truth's right edge (column 9) is 4 px from the prediction's (column 4): HD95 between 0 and 5
    assert 0 < hd[2, 0] <= 5.0


# structures missing on the generated side ---------------------------------------------------------------------------
def test_structure_missing_from_the_generated_maps_is_skipped_not_zero(data):
    maps = [np.where(m == L.LABELS["rv"], L.LABELS["tissue"], m).astype(np.uint8) for m in data.train.label_maps]
    train = seg.LabelledSet(list(labelmap_images(data.train)), maps, "phantom", np.arange(len(maps)), 0)
    test = seg.LabelledSet(list(data.ref.images), list(data.ref.label_maps), "phantom", np.arange(len(data.ref.images)), 0)
    keep, skipped = seg.common_structures(train, test, what_a="training", what_b="reference")
    assert "rv" not in keep and skipped["rv"] == "absent from every training label map" and "lv" in keep
    ctx = context(data, "labelmap", labelmap_images(data.train), maps, cache_dir=None)
    rows = by_metric(SegUtilityTask(**SMALL, seeds=1).evaluate(ctx))
    assert "dice_rv" not in rows and "hd95_rv" not in rows and "dice_lv" in rows
    assert rows["mean_dice"].details["skipped_structures"]["rv"] == "absent from every training label map"
    assert "rv" not in rows["mean_dice"].details["structures"]


def _camus_values(m: np.ndarray) -> np.ndarray:
    """A phantom map as the CAMUS source loads it (phantom values of LV, LV myocardium incl. septum, LA; 0 else)."""
    out = np.zeros_like(m)
    out[L.lv_myocardium(m)] = L.LABELS["myocardium"]
    out[m == L.LABELS["lv"]] = L.LABELS["lv"]
    out[m == L.LABELS["la"]] = L.LABELS["la"]
    return out


def test_camus_reference_scores_lv_myocardium_la(data):
    ctx = context(data, "labelmap", labelmap_images(data.train), data.train.label_maps, cache_dir=None)
    ref_maps = [_camus_values(m) for m in data.ref.label_maps]
    ctx.ref_label_maps, ctx.ref_label_source = (lambda: ref_maps), "camus"
    rows = by_metric(SegUtilityTask(**SMALL, seeds=1).evaluate(ctx))
    assert {m for m in rows if m.startswith("dice_")} == {"dice_lv", "dice_myocardium", "dice_la"}
    d = rows["mean_dice"].details
    assert d["structures"] == ["myocardium", "lv", "la"] and d["myocardium"].startswith("LV myocardium incl. septum")
    assert d["test_label_source"] == "camus" and "not annotated by the reference's source (camus)" in d["skipped_structures"]["rv"]


# anatomy-faithfulness gallery ---------------------------------------------------------------------------------------
def test_gallery_draws_both_contours_where_the_boundaries_are():
    """Label contour green, prediction contour red, exactly on each mask's inner boundary (class maps at half the
    image size are scaled up, nearest neighbour)."""
    from tasks.anatomy_faithfulness import LABEL_COLOUR, PRED_COLOUR, draw_contours

    img = np.full((40, 40), 100, np.uint8)
    truth = np.zeros((20, 20), np.uint8)
    pred = np.zeros_like(truth)
    truth[2:7, 2:7] = 1  # 10x10 at full size, rows/cols 4..13
    pred[12:17, 12:17] = 2  # far away: the contours do not touch
    out = draw_contours(img, truth, pred)

    def ring(r0, r1):
        m = np.zeros((40, 40), bool)
        m[r0:r1, r0:r1] = True
        m[r0 + 1:r1 - 1, r0 + 1:r1 - 1] = False
        return m

    green = (out == LABEL_COLOUR).all(axis=2)
    red = (out == PRED_COLOUR).all(axis=2)
    np.testing.assert_array_equal(green, ring(4, 14))
    np.testing.assert_array_equal(red, ring(24, 34))
    assert (out[~(green | red)] == 100).all()  # the image elsewhere untouched (grey → RGB)
