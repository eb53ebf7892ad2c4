"""Fault injection into phantom samples: known, recorded faults for validating metrics.

Spec forms (``--inject SPEC``, repeatable)::

    tint:<fraction>:<hue>          colour-tint a fraction of the images (hue: a name or degrees 0..360)
    drop-condition:<name>          never draw <name> (mode dropping); its samples are redrawn
    copy-train:<fraction>[:<pool>] replace a fraction of the images by exact train-split images
                                   (drawn from train indices 0..pool-1, default pool 100)
    speckle:<scale>[:<fraction>]   speckle grain size × scale (all images unless a fraction is given)
    crop:<fraction>[:<fraction>]   cut <fraction> of the field of view (zoom towards the transducer)
    blur:<sigma>[:<fraction>]      Gaussian blur with sigma in pixels

Which samples a fault hits is decided per sample index from its own random stream
``default_rng([seed, split_id, index, 1000, crc32(kind)])``, so it does not depend on the batch size, and a
smaller fraction selects a subset of the samples a larger one selects. Each batch reports the truth in
``extra["injected"]`` (per sample: the specs that hit it joined by ``+``, or ``""``) and
``extra["copied_from"]`` (the train id a copied sample came from, else ``None``). When a tint is injected
the whole batch is RGB (B, H, W, 3), untinted samples being gray replicated.
"""

from __future__ import annotations

import colorsys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from harness.data.base import SampleBatch
from harness.data.labels import CONDITIONS, SPLIT_IDS
from harness.errors import UsageError

FORMS = ("tint:<fraction>:<hue>", "drop-condition:<name>", "copy-train:<fraction>[:<pool>]",
         "speckle:<scale>[:<fraction>]", "crop:<fraction>[:<fraction>]", "blur:<sigma>[:<fraction>]")
HUES: dict[str, float] = {"red": 0.0, "orange": 30.0, "yellow": 60.0, "green": 120.0, "cyan": 180.0,
                          "blue": 240.0, "purple": 270.0, "magenta": 300.0, "pink": 330.0}
TINT_STRENGTH = 0.5
_ORDER = {"copy-train": 0, "crop": 1, "blur": 2, "tint": 3}


@dataclass(frozen=True)
class Fault:
    """One parsed fault spec. ``value`` is the scale (speckle), fraction cut (crop) or sigma (blur)."""

    spec: str
    kind: str
    fraction: float = 1.0
    hue: float = 0.0
    condition: str = ""
    value: float = 0.0
    pool: int = 100


def _bad(spec: str, why: str) -> UsageError:
    return UsageError(f"bad fault spec {spec!r}: {why}. Valid forms: {', '.join(FORMS)}")


def _number(spec: str, text: str, what: str, lo: float, hi: float, *, lo_open: bool = False) -> float:
    try:
        x = float(text)
    except ValueError:
        raise _bad(spec, f"{what} {text!r} is not a number") from None
    if not (lo < x if lo_open else lo <= x) or x > hi or not np.isfinite(x):
        raise _bad(spec, f"{what} {x:g} is outside {'(' if lo_open else '['}{lo:g}, {hi:g}]")
    return x


def parse_hue(spec: str, text: str) -> float:
    """A hue name (``orange``, ``red``, ...) or degrees → degrees in [0, 360)."""
    if text.lower() in HUES:
        return HUES[text.lower()]
    try:
        return float(text) % 360.0
    except ValueError:
        raise _bad(spec, f"hue {text!r} is neither a number of degrees nor one of {', '.join(HUES)}") from None


def parse_fault(spec: str) -> Fault:
    """Parse one fault spec; a malformed spec raises :class:`UsageError` naming it and the valid forms."""

    parts = str(spec).strip().split(":")
    kind, args = parts[0].lower(), parts[1:]
    frac = lambda i, what="fraction": _number(spec, args[i], what, 0.0, 1.0)
    if kind == "tint":
        if len(args) != 2:
            raise _bad(spec, "tint needs a fraction and a hue")
        return Fault(spec, kind, fraction=frac(0), hue=parse_hue(spec, args[1]))
    if kind == "drop-condition":
        if len(args) != 1 or args[0] not in CONDITIONS:
            raise _bad(spec, f"drop-condition needs one of {', '.join(CONDITIONS)}")
        return Fault(spec, kind, condition=args[0])
    if kind == "copy-train":
        if len(args) not in (1, 2):
            raise _bad(spec, "copy-train needs a fraction and optionally a pool size")
        pool = int(_number(spec, args[1], "pool", 1, 1e9)) if len(args) == 2 else 100
        return Fault(spec, kind, fraction=frac(0), pool=pool)
    limits = {"speckle": ("scale", 0.05, 20.0, True), "crop": ("fraction cut", 0.0, 0.9, False),
              "blur": ("sigma", 0.0, 50.0, True)}
    if kind in limits:
        what, lo, hi, lo_open = limits[kind]
        if len(args) not in (1, 2):
            raise _bad(spec, f"{kind} needs a {what} and optionally a fraction of images")
        value = _number(spec, args[0], what, lo, hi, lo_open=lo_open)
        return Fault(spec, kind, fraction=frac(1) if len(args) == 2 else 1.0, value=value)
    raise _bad(spec, f"unknown fault {kind!r}")


def parse_faults(specs: Sequence[str]) -> list[Fault]:
    """Parse several specs (order kept; at most one ``tint`` and one ``copy-train``)."""
    faults = [f if isinstance(f, Fault) else parse_fault(f) for f in specs]
    for kind in ("tint", "copy-train", "speckle", "crop", "blur"):
        if sum(f.kind == kind for f in faults) > 1:
            same = ", ".join(f.spec for f in faults if f.kind == kind)
            raise UsageError(f"fault {kind!r} is given more than once: {same}")
    return faults


def _fault_rng(fault: Fault, seed: int, split_id: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, split_id, int(index), 1000, zlib.crc32(fault.kind.encode())])


def hits(fault: Fault, seed: int, split_id: int, index: int) -> bool:
    """Whether ``fault`` hits sample ``index`` (deterministic, nested in the fraction)."""
    if fault.kind == "drop-condition":
        return False  # decided by the condition draw
    if fault.fraction >= 1.0:
        return True
    return bool(_fault_rng(fault, seed, split_id, index).uniform() < fault.fraction)


def render_options(faults: Sequence[Fault], seed: int, split_id: int, index: int) -> tuple[dict, list[str]]:
    """Renderer keyword arguments for render-time faults (speckle) and the specs that hit."""
    opts, marks = {}, []
    for f in faults:
        if f.kind == "speckle" and hits(f, seed, split_id, index):
            opts["speckle_scale"] = f.value
            marks.append(f.spec)
    return opts, marks


def tint(image: np.ndarray, hue: float, strength: float = TINT_STRENGTH) -> np.ndarray:
    """Gray (H, W) or RGB → RGB uint8 multiplied towards the colour of ``hue`` (degrees)."""
    colour = np.array(colorsys.hsv_to_rgb((hue % 360.0) / 360.0, 1.0, 1.0), dtype=np.float32)
    rgb = image[..., None].astype(np.float32) if image.ndim == 2 else image.astype(np.float32)
    out = rgb * ((1.0 - strength) + strength * colour)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def crop_zoom(image: np.ndarray, fraction: float, *, nearest: bool = False) -> np.ndarray:
    """Cut ``fraction`` of the field of view: keep the top-centre (1-fraction) window, resize back."""
    h, w = image.shape[:2]
    ch, cw = max(2, round(h * (1 - fraction))), max(2, round(w * (1 - fraction)))
    x0 = (w - cw) // 2
    window = np.ascontiguousarray(image[:ch, x0:x0 + cw])
    return cv2.resize(window, (w, h), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (sigma in pixels) of a uint8 image."""
    return cv2.GaussianBlur(image, (0, 0), sigma)


def apply_faults(batch: SampleBatch, faults: Sequence[Fault], source, split: str, indices: list[int],
                 marks: list[list[str]]) -> SampleBatch:
    """Apply the post-render faults to a rendered phantom batch and record what hit each sample.

    ``source`` is the :class:`~harness.data.phantom.PhantomSource` (for ``copy-train``); ``marks`` holds the
    specs already applied at render time per sample.
    """

    split_id = SPLIT_IDS[split]
    images = list(batch.images)
    labels = list(batch.label_maps) if batch.label_maps is not None else None
    copied: list[str | None] = [None] * len(indices)
    for f in sorted((f for f in faults if f.kind in _ORDER), key=lambda f: _ORDER[f.kind]):
        if f.kind == "copy-train" and split == "train":
            raise UsageError(f"fault {f.spec!r} copies train images into a held-out split; "
                             "use it with test or reference")
        for j, index in enumerate(indices):
            if not hits(f, source.seed, split_id, index):
                continue
            marks[j].append(f.spec)
            if f.kind == "copy-train":
                rng = _fault_rng(f, source.seed, split_id, index)
                rng.uniform()
                src = int(rng.integers(f.pool))
                train = source.render_samples("train", [src], apply_faults=False)
                images[j], copied[j] = train.images[0], train.ids[0]
                if labels is not None:
                    labels[j] = train.label_maps[0]
                batch.conditions[j], batch.captions[j] = train.conditions[0], train.captions[0]
                batch.extra["age"][j], batch.extra["phase"][j] = train.extra["age"][0], train.extra["phase"][0]
            elif f.kind == "crop":
                images[j] = crop_zoom(images[j], f.value)
                if labels is not None:
                    labels[j] = crop_zoom(labels[j], f.value, nearest=True)
            elif f.kind == "blur":
                images[j] = blur(images[j], f.value)
            elif f.kind == "tint":
                images[j] = tint(images[j], f.hue)
    if any(f.kind == "tint" for f in faults):
        images = [im if im.ndim == 3 else np.repeat(im[..., None], 3, axis=2) for im in images]
    if images:
        batch.images = np.stack(images)
    if labels:
        batch.label_maps = np.stack(labels)
    batch.extra["injected"] = ["+".join(m) for m in marks]
    batch.extra["copied_from"] = copied
    return batch
