"""Fault injection: each fault does what it says, and the truth is reported per sample."""

import numpy as np
import pytest

from harness.data.faults import parse_fault, parse_faults, tint
from harness.data.phantom import PhantomSource
from harness.errors import UsageError

SIZE = 32


def _all(src, split, n, batch_size=64, start=0):
    bs = list(src.iter_batches(split, n, batch_size=batch_size, start=start))
    return (np.concatenate([b.images for b in bs]), sum((b.extra["injected"] for b in bs), []),
            sum((b.conditions for b in bs), []), bs)


def _chroma(images):
    return images.max(axis=-1).astype(int) - images.min(axis=-1).astype(int)


def test_parse_valid_and_invalid():
    assert parse_fault("tint:0.03:orange").hue == 30.0
    assert parse_fault("tint:0.5:200").hue == 200.0
    assert parse_fault("drop-condition:asd").condition == "asd"
    assert parse_fault("copy-train:0.1:20").pool == 20
    assert parse_fault("blur:2").fraction == 1.0 and parse_fault("crop:0.2:0.5").fraction == 0.5
    for bad in ("tint:2:orange", "tint:0.1:mauve", "tint:0.1", "drop-condition:tof", "warp:1", "speckle:x",
                "crop:0.95", "blur:-1"):
        with pytest.raises(UsageError, match="Valid forms") as exc:
            parse_fault(bad)
        assert repr(bad) in str(exc.value)
    with pytest.raises(UsageError, match="more than once"):
        parse_faults(["blur:1", "blur:2"])


def test_tint_fraction_chroma_and_nesting():
    src = PhantomSource(size=SIZE, inject=["tint:0.2:orange"])
    images, injected, _, _ = _all(src, "test", 200, batch_size=50)
    assert images.shape == (200, SIZE, SIZE, 3)
    hit = np.array([m == "tint:0.2:orange" for m in injected])
    assert 0.12 < hit.mean() < 0.28  # binomial(200, 0.2): 5 sd band
    chroma = _chroma(images).reshape(200, -1).max(axis=1)
    assert (chroma[hit] > 20).all() and (chroma[~hit] == 0).all()
    # untinted samples are the clean gray images replicated
    clean = _all(PhantomSource(size=SIZE), "test", 200)[0]
    assert np.array_equal(images[~hit][..., 0], clean[~hit])
    # orange: red >= green >= blue
    t = images[hit].astype(int)
    assert (t[..., 0] >= t[..., 1]).all() and (t[..., 1] >= t[..., 2]).all()
    # a smaller fraction selects a subset
    small = np.array([bool(m) for m in _all(PhantomSource(size=SIZE, inject=["tint:0.05:red"]), "test", 200)[1]])
    assert small.sum() > 0 and not (small & ~hit).any()


def test_tint_helper_closed_form():
    g = np.full((2, 2), 200, np.uint8)
    out = tint(g, 240.0, strength=0.5)  # blue
    assert out[0, 0].tolist() == [100, 100, 200]


def test_drop_condition_removes_only_that_condition():
    clean = _all(PhantomSource(size=SIZE), "test", 120)
    dropped = _all(PhantomSource(size=SIZE, inject=["drop-condition:vsd"]), "test", 120)
    assert "vsd" in clean[2] and "vsd" not in dropped[2]
    for i, (c0, c1) in enumerate(zip(clean[2], dropped[2])):
        if c0 == "vsd":
            assert dropped[1][i] == "drop-condition:vsd"
        else:  # the other samples are untouched
            assert c1 == c0 and dropped[1][i] == "" and np.array_equal(clean[0][i], dropped[0][i])


def test_copy_train_copies_exact_train_images():
    src = PhantomSource(size=SIZE, inject=["copy-train:0.3:10"])
    images, injected, _, bs = _all(src, "test", 40, batch_size=16)
    copied = sum((b.extra["copied_from"] for b in bs), [])
    train = _all(PhantomSource(size=SIZE), "train", 10)[0]
    n_hit = 0
    for img, mark, origin in zip(images, injected, copied):
        if mark:
            n_hit += 1
            k = int(origin.rsplit("/", 1)[1])
            assert origin.startswith("phantom/train/") and np.array_equal(img, train[k])
        else:
            assert origin is None and not any(np.array_equal(img, t) for t in train)
    assert 4 <= n_hit <= 22
    with pytest.raises(UsageError, match="held-out"):
        next(src.iter_batches("train", 4))


def test_speckle_crop_blur_change_images():
    clean = _all(PhantomSource(size=64), "test", 4)[0].astype(float)
    for spec in ("speckle:3", "crop:0.3", "blur:2"):
        imgs, injected, _, _ = _all(PhantomSource(size=64, inject=[spec]), "test", 4)
        assert injected == [spec] * 4
        assert np.abs(imgs.astype(float) - clean).mean() > 3, spec
    # blur lowers the high-frequency energy, coarser speckle too
    hf = lambda x: np.abs(np.diff(x.astype(float), axis=2)).mean()
    assert hf(_all(PhantomSource(size=64, inject=["blur:2"]), "test", 4)[0]) < 0.6 * hf(clean)
    assert hf(_all(PhantomSource(size=64, inject=["speckle:3"]), "test", 4)[0]) < hf(clean)
    # crop keeps label maps aligned: the cropped map shows less background
    cb = next(PhantomSource(size=64, inject=["crop:0.3"]).iter_batches("test", 4))
    lb = next(PhantomSource(size=64).iter_batches("test", 4))
    assert (cb.label_maps == 0).mean() < (lb.label_maps == 0).mean()


def test_faults_batch_size_independent():
    src = PhantomSource(size=SIZE, inject=["tint:0.3:green", "blur:1:0.5", "copy-train:0.2"])
    a = _all(src, "test", 12, batch_size=12)
    b = _all(src, "test", 12, batch_size=5)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert src.fingerprint()["inject"] == ["tint:0.3:green", "blur:1:0.5", "copy-train:0.2"]
