"""The embedded A4C phantom: determinism, splits, shapes, labels, captions, the registry."""

import numpy as np
import pytest

from harness.data.base import open_data_spec
from harness.data.phantom import (
    CONDITIONS,
    LABELS,
    PHANTOM_VERSION,
    PhantomSource,
    caption_for,
    colorize_labels,
    render_labelmap_image,
)
from harness.errors import UsageError

SIZE = 64


def _collect(source, split, n, start=0, batch_size=64):
    batches = list(source.iter_batches(split, n, start=start, batch_size=batch_size))
    return (np.concatenate([b.images for b in batches]), np.concatenate([b.label_maps for b in batches]),
            sum((b.ids for b in batches), []), sum((b.conditions for b in batches), []))


def test_same_seed_identical_and_seed_matters():
    a = _collect(PhantomSource(size=SIZE, seed=3), "test", 6)
    b = _collect(PhantomSource(size=SIZE, seed=3), "test", 6)
    c = _collect(PhantomSource(size=SIZE, seed=4), "test", 6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[3] == b[3]
    assert not np.array_equal(a[0], c[0])


def test_batch_size_and_start_independent():
    src = PhantomSource(size=SIZE)
    full = _collect(src, "train", 7, batch_size=7)
    small = _collect(src, "train", 7, batch_size=2)
    assert np.array_equal(full[0], small[0]) and np.array_equal(full[1], small[1])
    tail = _collect(src, "train", 3, start=4, batch_size=1)
    assert np.array_equal(full[0][4:], tail[0])
    assert tail[2] == ["phantom/train/000004", "phantom/train/000005", "phantom/train/000006"]


def test_splits_never_overlap():
    src = PhantomSource(size=SIZE)
    imgs = {s: _collect(src, s, 5)[0] for s in ("train", "test", "reference")}
    for s1 in imgs:
        for s2 in imgs:
            if s1 < s2:
                for x in imgs[s1]:
                    assert not any(np.array_equal(x, y) for y in imgs[s2])


def test_shape_dtype_and_sector():
    b = next(PhantomSource(size=SIZE).iter_batches("test", 3))
    assert b.images.shape == (3, SIZE, SIZE) and b.images.dtype == np.uint8
    assert b.label_maps.shape == (3, SIZE, SIZE) and b.label_maps.dtype == np.uint8
    outside = b.label_maps == LABELS["background"]
    assert (b.images[outside] <= 8).mean() > 0.99  # black outside the fan
    assert b.images[~outside].mean() > 30
    assert b.images[:, 0, 0].max() == 0 and b.images[:, -1, 0].max() == 0  # corners outside the fan


def test_every_label_present_in_normal_maps():
    src = PhantomSource(size=128, conditions="normal")
    b = next(src.iter_batches("test", 4))
    for lm in b.label_maps:
        assert set(np.unique(lm)) == set(LABELS.values())


def test_blood_darker_than_walls():
    b = next(PhantomSource(size=128).iter_batches("test", 4))
    blood = np.isin(b.label_maps, [LABELS[k] for k in ("lv", "rv", "la", "ra")])
    walls = np.isin(b.label_maps, [LABELS[k] for k in ("myocardium", "ivs", "pericardium")])
    assert b.images[blood].mean() + 40 < b.images[walls].mean()


def test_conditions_change_geometry():
    src = PhantomSource(size=128)
    lv = LABELS["lv"]
    _, lab_n, _ = src.render("test", 0, condition="normal", age="adult")
    _, lab_d, _ = src.render("test", 0, condition="dilated-lv", age="adult")
    assert (lab_d == lv).sum() > 1.3 * (lab_n == lv).sum()
    _, lab_h, _ = src.render("test", 0, condition="lvh", age="adult")
    assert (lab_h == LABELS["ivs"]).sum() > 1.4 * (lab_n == LABELS["ivs"]).sum()
    _, lab_a, _ = src.render("test", 0, condition="asd", age="adult")
    assert (lab_a == LABELS["ias"]).sum() < (lab_n == LABELS["ias"]).sum()
    # the defect connects the atria: the left atrium touches the right atrium somewhere
    la, ra = lab_a == LABELS["la"], lab_a == LABELS["ra"]
    assert (la[:, 1:] & ra[:, :-1]).any() or (la[:, :-1] & ra[:, 1:]).any()
    _, lab_v, _ = src.render("test", 0, condition="vsd", age="adult")
    assert (lab_v == LABELS["ivs"]).sum() < (lab_n == LABELS["ivs"]).sum()


def test_conditions_option_and_default_frequencies():
    conds = _collect(PhantomSource(size=16), "train", 200)[3]
    counts = {c: conds.count(c) for c in CONDITIONS}
    assert max(counts, key=counts.get) == "normal" and all(counts.values())
    only = _collect(PhantomSource(size=16, conditions=["asd", "vsd"]), "train", 20)[3]
    assert set(only) <= {"asd", "vsd"}


def test_caption_style():
    cap = caption_for("asd", "child", "no-upper-margin")
    assert cap == ("ASD, without upper margin, LVH absent, heart cavities not dilated, right and left side "
                   "unchanged, 4-chamber position, echocardiogram of the child")
    b = next(PhantomSource(size=SIZE).iter_batches("test", 8))
    for cap, cond, age in zip(b.captions, b.conditions, b.extra["age"]):
        assert cap.endswith(f"4-chamber position, echocardiogram of the {age}")
        assert ("LVH present" in cap) == (cond == "lvh")
        assert ("heart cavities not dilated" in cap) != cond.startswith("dilated")
        assert cap.startswith("ASD,") == (cond == "asd") and cap.startswith("VSD,") == (cond == "vsd")


def test_fingerprint_and_spec():
    src, split = open_data_spec("phantom", size="32", seed=1)
    assert split == "test" and isinstance(src, PhantomSource) and src.size == 32
    fp = src.fingerprint()
    assert fp["version"] == PHANTOM_VERSION and fp["size"] == 32 and fp["seed"] == 1 and fp["inject"] == []
    assert open_data_spec("phantom:reference")[1] == "reference"
    assert src.count("train") is None
    with pytest.raises(UsageError, match="no split"):
        open_data_spec("phantom:validation")
    with pytest.raises(UsageError, match="unknown option"):
        open_data_spec("phantom", sise=32)
    with pytest.raises(UsageError, match="conditions"):
        PhantomSource(conditions=["normal", "tof"])


def test_labelmap_render_and_colorize():
    lm = next(PhantomSource(size=SIZE).iter_batches("test", 2)).label_maps
    flat = render_labelmap_image(lm)
    assert flat.shape == lm.shape and flat.dtype == np.uint8
    for value in LABELS.values():  # one gray level per label
        assert len(np.unique(flat[lm == value])) <= 1
    assert (flat[lm == 0] == 0).all()
    assert colorize_labels(lm).shape == lm.shape + (3,)


def test_ed_es_label_maps_differ_by_configured_wall_motion():
    from harness.data.phantom import MOTION, phase_factors

    src = PhantomSource(size=256)
    area = lambda lm, name: float((lm == LABELS[name]).sum())
    img_ed, ed, p_ed = src.render("test", 1, condition="normal", age="adult", phase=0.0)
    img_es, es, p_es = src.render("test", 1, condition="normal", age="adult", phase=1.0)
    assert (p_ed.phase, p_es.phase) == (0.0, 1.0) and p_ed.scale == p_es.scale  # same patient, other phase
    f = phase_factors(1.0)
    assert p_es.lv[1] == pytest.approx(p_ed.lv[1] * (1 - MOTION.lv_width))
    assert p_es.lv[2] == pytest.approx(p_ed.lv[2] * (1 + MOTION.wall_thickening))
    # chamber areas scale with the product of the configured length and width changes
    assert area(es, "rv") / area(ed, "rv") == pytest.approx(f["rv_width"] * f["rv_length"], rel=0.03)
    assert area(es, "la") / area(ed, "la") == pytest.approx(f["atria"] ** 2, rel=0.03)
    assert area(es, "lv") / area(ed, "lv") == pytest.approx(f["lv_width"] * f["lv_length"], rel=0.12)
    assert area(es, "myocardium") > area(ed, "myocardium")  # walls thicken
    assert not np.array_equal(img_ed, img_es)
    # a dilated LV contracts less
    _, ed_d, _ = src.render("test", 1, condition="dilated-lv", age="adult", phase=0.0)
    _, es_d, _ = src.render("test", 1, condition="dilated-lv", age="adult", phase=1.0)
    assert area(es_d, "lv") / area(ed_d, "lv") > area(es, "lv") / area(ed, "lv") + 0.15


def test_anatomy_in_proportion():
    """A4C proportions: LV longer than the RV and ~2x the RV's width; atria below the AV plane; apex near the
    transducer."""
    src = PhantomSource(size=256, conditions="normal", ages="adult")
    for i in range(3):
        _, lm, p = src.render("test", i, phase=0.0)
        assert p.lv[0] > p.rv[0] and 1.7 < p.lv[0] / (2 * p.rv[1]) < 2.8
        ys_lv = np.nonzero(lm == LABELS["lv"])[0]
        ys_la = np.nonzero(lm == LABELS["la"])[0]
        assert ys_lv.min() < 0.25 * 256  # LV apex in the upper quarter, near the transducer
        assert np.median(ys_la) > np.median(ys_lv)  # atria below the ventricles
        heart = np.isin(lm, [LABELS[k] for k in ("lv", "rv", "la", "ra", "myocardium", "ivs", "ias")])
        assert heart.sum() > 0.35 * (lm > 0).sum()  # the heart fills much of the sector


def test_phase_option_keeps_determinism():
    src = PhantomSource(size=SIZE)
    a = src.render("test", 3, phase=0.4)
    b = src.render("test", 3, phase=0.4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2].phase == 0.4
