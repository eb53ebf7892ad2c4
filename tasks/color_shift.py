"""Colour shift (METRICS.md): tinted images that FID hides, gray-level distribution and sector geometry.

Echo images are grayscale; a generator that tints some of them is wrong in a way a distribution distance
barely sees. Stages (images → per-image measures → statistics → result)::

    m_gen = measure_images(gen_images)          # chroma, hue, gray histogram, sector mask per image
    m_ref = measure_images(ref_images)
    res = color_shift(m_gen, m_ref)             # -> ColourShiftResult

Per image, inside the sector (the row-filled non-black region of :func:`harness.features.radiomics.sector_mask`
at the native resolution): **chroma** = √(ā*² + b̄*²), the chroma of the sector's mean colour in CIELAB
(``skimage.color.rgb2lab``, D65; the mean of per-pixel chroma would count zero-mean colour noise as tint:
per-channel noise of σ = 3 gray levels gives a per-pixel mean chroma of ≈ 2.6, above the default threshold
for a gray reference, but a mean-colour chroma of ≈ 0); **hue** = chroma-weighted circular mean of atan2(b*, a*) over the
*chromatic* pixels (chroma > ``chroma_min``), NaN when there are none. Gray images (R = G = B) skip the
LAB conversion: their chroma is exactly 0.

An image is **flagged** when its chroma exceeds ``threshold = quantile_q(reference chroma) + margin``
(default q = 0.995, margin = 2 ΔE units, about one just-noticeable difference); a fixed threshold may be
given instead. Calibrating the q-quantile needs at least ``ceil(1 / (1 − q))`` reference images (200 for
0.995); fewer raise :class:`DataError` naming that minimum. The flagged fraction carries a Wilson 95 % CI;
the reference set's own flag rate is reported beside it.

**Hue classes**: each flagged image is named after the nearest of :data:`HUE_CENTRES`, the CIELAB hue
angles that the harness's own tint (``harness.data.faults.tint``) produces for the named HSV hues (orange
lands at about 70° in the a*b* plane, on the edge of METRICS.md's indicative 20°–70° orange band, so
nearest-centre bins are used; the hue angle itself is always reported).

**Gray-level distance**: 1-D Wasserstein distance (in gray levels, 0–255) between the generated and the
reference luma distributions, each image weighted equally (per-image normalised 256-bin histograms of
BT.601 luma inside the sector, averaged over the set).

**Sector geometry**: sector masks resized to 64×64; each generated mask's IoU with its best-matching
reference mask; the reference set's leave-one-out best IoUs calibrate the threshold
``quantile_{0.005}(ref IoU) − 0.02``; an image whose best IoU is below it departs from the reference geometry.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import DataError, UsageError
from harness.registry import tasks as task_registry
from tasks.base import MetricResult, Task, TaskContext, TaskSpec

__all__ = [
    "HUE_CENTRES",
    "ColorShiftTask",
    "ColourShiftResult",
    "ImageMeasures",
    "calibrate_threshold",
    "color_shift",
    "gray_wasserstein",
    "hue_class",
    "image_measures",
    "measure_images",
    "min_reference_size",
    "sector_iou",
    "wilson_interval",
]
log = logging.getLogger(__name__)

MASK_SIZE = 64
LUMA = np.array([0.299, 0.587, 0.114])
#: CIELAB hue angle (degrees) of ``harness.data.faults.tint(gray, HUES[name])`` (tests check them).
HUE_CENTRES: dict[str, float] = {"red": 22.0, "orange": 70.0, "yellow": 107.0, "green": 142.0, "cyan": 198.0,
                                 "blue": 294.0, "purple": 310.0, "magenta": 325.0, "pink": 347.0}


# per-image measures ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageMeasures:
    """Per-image measures of one image set (row i = image i)."""

    chroma: np.ndarray  # (N,) mean CIELAB chroma inside the sector
    hue: np.ndarray  # (N,) dominant hue angle in degrees [0, 360), NaN without chromatic pixels
    histograms: np.ndarray  # (N, 256) normalised luma histogram inside the sector
    masks: np.ndarray  # (N, MASK_SIZE², ) bool sector masks at MASK_SIZE × MASK_SIZE

    def __len__(self) -> int:
        return int(self.chroma.shape[0])


def image_measures(image: np.ndarray, *, chroma_min: float = 2.0) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(chroma, hue, luma histogram (256,), sector mask (MASK_SIZE²,)) of one uint8 image (H, W[, C])."""
    import cv2

    from harness.data.base import to_rgb
    from harness.features.radiomics import sector_mask

    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or min(img.shape[:2]) < 2:
        raise DataError(f"colour shift: images must be uint8 (H, W) or (H, W, C) arrays; got {img.dtype} {img.shape}")
    rgb = to_rgb(img)
    mask = sector_mask(rgb.max(axis=2) / 255.0)
    pix = rgb[mask]
    luma = np.clip(np.rint(pix @ LUMA), 0, 255).astype(np.int64)
    hist = np.bincount(luma, minlength=256)[:256] / max(luma.size, 1)
    small = cv2.resize(mask.astype(np.float32), (MASK_SIZE, MASK_SIZE), interpolation=cv2.INTER_AREA) > 0.5
    if np.array_equal(pix[:, 0], pix[:, 1]) and np.array_equal(pix[:, 1], pix[:, 2]):
        return 0.0, float("nan"), hist, small.ravel()
    from skimage.color import rgb2lab

    lab = rgb2lab(pix[None].astype(np.float64) / 255.0)[0]
    a, b = lab[:, 1], lab[:, 2]
    chroma = np.hypot(a, b)
    chromatic = chroma > chroma_min
    hue = float("nan")
    if chromatic.any():
        w = chroma[chromatic]
        angle = np.arctan2(b[chromatic], a[chromatic])
        hue = float(np.degrees(np.arctan2((w * np.sin(angle)).sum(), (w * np.cos(angle)).sum())) % 360.0)
    # the chroma of the mean colour: a tint shifts every pixel the same way and survives the mean, while
    # zero-mean colour noise (GAN/JPEG output) averages out instead of adding |noise| to every pixel
    return float(np.hypot(a.mean(), b.mean())), hue, hist, small.ravel()


def measure_images(images: Sequence[np.ndarray], *, chroma_min: float = 2.0) -> ImageMeasures:
    """:func:`image_measures` of every image (sizes may differ)."""
    if len(images) == 0:
        raise DataError("colour shift: the image set is empty")
    rows = [image_measures(im, chroma_min=chroma_min) for im in images]
    return ImageMeasures(chroma=np.array([r[0] for r in rows]), hue=np.array([r[1] for r in rows]),
                         histograms=np.stack([r[2] for r in rows]), masks=np.stack([r[3] for r in rows]))


# statistics -------------------------------------------------------------------------------------
def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n (as ``statsmodels`` ``proportion_confint(method="wilson")``)."""
    from scipy.stats import norm

    if n < 1 or not 0 <= k <= n:
        raise UsageError(f"Wilson interval needs 0 ≤ k ≤ n and n ≥ 1 (got k={k}, n={n})")
    z = float(norm.ppf(0.5 + level / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def min_reference_size(quantile: float) -> int:
    """Reference images needed to calibrate an upper ``quantile``: ceil(1 / (1 − q)) (200 for 0.995)."""
    return int(math.ceil(1.0 / (1.0 - quantile) - 1e-9))


def calibrate_threshold(ref_chroma: np.ndarray, quantile: float = 0.995, margin: float = 2.0) -> float:
    """Chroma threshold = ``quantile`` of the reference chroma + ``margin`` (DataError if too few images)."""
    if not 0.5 <= quantile < 1:
        raise UsageError(f"colour-shift quantile must be in [0.5, 1) (got {quantile})")
    need = min_reference_size(quantile)
    if ref_chroma.size < need:
        raise DataError(
            f"colour shift: the reference set has {ref_chroma.size} images; calibrating the {quantile:g} quantile "
            f"of its chroma needs at least {need}. Use --n-ref {need} or more, a lower color-shift.quantile, or a "
            "fixed color-shift.threshold")
    return float(np.quantile(ref_chroma, quantile) + margin)


def hue_class(hue: float) -> str:
    """Name of the nearest of :data:`HUE_CENTRES` (circular distance); ``"none"`` for NaN."""
    if not np.isfinite(hue):
        return "none"
    names = list(HUE_CENTRES)
    centres = np.array([HUE_CENTRES[n] for n in names])
    dist = np.abs((hue - centres + 180.0) % 360.0 - 180.0)
    return names[int(np.argmin(dist))]


def gray_wasserstein(gen_hist: np.ndarray, ref_hist: np.ndarray) -> float:
    """1-D Wasserstein distance (gray levels) between the mean normalised histograms of two sets."""
    p, q = np.asarray(gen_hist, float).mean(axis=0), np.asarray(ref_hist, float).mean(axis=0)
    return float(np.abs(np.cumsum(p / p.sum()) - np.cumsum(q / q.sum())).sum())


def sector_iou(a: np.ndarray, b: np.ndarray, *, exclude_self: bool = False) -> np.ndarray:
    """Best IoU of each mask in ``a`` (N, P) with any mask in ``b`` (M, P); ``exclude_self`` for a == b."""
    fa, fb = a.astype(np.float32), b.astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(axis=1)[:, None] + fb.sum(axis=1)[None, :] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    if exclude_self:
        np.fill_diagonal(iou, -np.inf)
    return iou.max(axis=1)


# result -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColourShiftResult:
    """Flagged fraction (value) with its Wilson CI and everything around it."""

    value: float
    ci_low: float
    ci_high: float
    n: int
    threshold: float
    flagged: np.ndarray = field(repr=False)  # (N,) bool
    hue_classes: dict[str, int] = field(default_factory=dict)
    ref_flag_rate: float = 0.0
    ref_ci: tuple[float, float] = (0.0, 0.0)
    gray_w1: float = 0.0
    sector_iou: np.ndarray = field(default=None, repr=False)  # (N,) best IoU with a reference mask
    sector_flagged: np.ndarray = field(default=None, repr=False)
    sector_threshold: float = 0.0
    sector_fraction: float = 0.0
    sector_ci: tuple[float, float] = (0.0, 0.0)
    ref_sector_rate: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


def color_shift(gen: ImageMeasures, ref: ImageMeasures, *, quantile: float = 0.995, margin: float = 2.0,
                threshold: float | None = None, sector_quantile: float = 0.005,
                sector_margin: float = 0.02) -> ColourShiftResult:
    """Colour-shift statistics of a generated set against a reference set (see the module docstring)."""
    if threshold is None:
        threshold = calibrate_threshold(ref.chroma, quantile, margin)
    n, nr = len(gen), len(ref)
    flagged = gen.chroma > threshold
    k = int(flagged.sum())
    lo, hi = wilson_interval(k, n)
    ref_k = int((ref.chroma > threshold).sum())
    classes: dict[str, int] = {}
    for h in gen.hue[flagged]:
        name = hue_class(h)
        classes[name] = classes.get(name, 0) + 1
    # sector geometry
    if nr < 2:
        raise DataError("colour shift: sector geometry needs at least 2 reference images")
    ref_best = sector_iou(ref.masks, ref.masks, exclude_self=True)
    s_thr = float(np.quantile(ref_best, sector_quantile) - sector_margin)
    gen_best = sector_iou(gen.masks, ref.masks)
    s_flag = gen_best < s_thr
    sk = int(s_flag.sum())
    return ColourShiftResult(
        value=k / n, ci_low=lo, ci_high=hi, n=n, threshold=float(threshold), flagged=flagged,
        hue_classes=classes, ref_flag_rate=ref_k / nr, ref_ci=wilson_interval(ref_k, nr),
        gray_w1=gray_wasserstein(gen.histograms, ref.histograms),
        sector_iou=gen_best, sector_flagged=s_flag, sector_threshold=s_thr, sector_fraction=sk / n,
        sector_ci=wilson_interval(sk, n), ref_sector_rate=float((ref_best < s_thr).mean()),
        details={"n_flagged": k, "n_ref": nr, "ref_flagged": ref_k, "quantile": quantile, "margin": margin,
                 "ref_chroma_quantile": float(np.quantile(ref.chroma, quantile)),
                 "gen_chroma_mean": float(gen.chroma.mean()), "ref_chroma_mean": float(ref.chroma.mean()),
                 "sector_quantile": sector_quantile, "sector_margin": sector_margin, "n_sector_flagged": sk},
    )


# task -------------------------------------------------------------------------------------------
@task_registry.register("color-shift")
class ColorShiftTask(Task):
    """Tinted images (CIELAB chroma, calibrated on the reference), gray-level W1 and sector-geometry departure."""

    spec = TaskSpec(
        name="color-shift",
        version="1",
        description="Fraction of tinted images (CIELAB chroma above a reference-calibrated threshold), hue class, "
                    "gray-level Wasserstein distance, sector-geometry departure; gallery of flagged images",
        needs_features=False,
        needs_images=True,
        default_features=None,
        parameters={"quantile": 0.995, "margin": 2.0, "threshold": None, "chroma_min": 2.0, "top_k": 16,
                    "sector_quantile": 0.005, "sector_margin": 0.02},
        ranges={"quantile": (0.0, 1.0), "margin": (0.0, 100.0), "threshold": (0.0, 1000.0), "chroma_min": (0.0, 1000.0),
                "top_k": (0, 10_000), "sector_quantile": (0.0, 0.5), "sector_margin": (0.0, 1.0)},
    )

    def evaluate(self, ctx: TaskContext) -> list[MetricResult]:
        if ctx.gen_images is None or ctx.ref_images is None:
            raise UsageError("task 'color-shift' needs generated and reference images")
        p = self.params
        gen_images = ctx.gen_images()
        m_gen = measure_images(gen_images, chroma_min=float(p["chroma_min"]))
        m_ref = measure_images(ctx.ref_images(), chroma_min=float(p["chroma_min"]))
        res = color_shift(m_gen, m_ref, quantile=float(p["quantile"]), margin=float(p["margin"]),
                          threshold=None if p["threshold"] is None else float(p["threshold"]),
                          sector_quantile=float(p["sector_quantile"]), sector_margin=float(p["sector_margin"]))
        order = np.argsort(-m_gen.chroma, kind="stable")
        top = [int(i) for i in order if res.flagged[i]][: int(p["top_k"])]
        top_rows = [{"index": i, "chroma": round(float(m_gen.chroma[i]), 3),
                     "hue_deg": None if not np.isfinite(m_gen.hue[i]) else round(float(m_gen.hue[i]), 1),
                     "hue_class": hue_class(m_gen.hue[i])} for i in top]
        self._write_artifacts(ctx, gen_images, m_gen, res, top_rows)
        base = {**res.details, "threshold": res.threshold}
        return [
            MetricResult("color_shift_fraction", res.value, res.ci_low, res.ci_high, res.n, higher_is_better=False,
                         details={**base, "ref_flag_rate": res.ref_flag_rate, "ref_ci": list(res.ref_ci),
                                  "hue_classes": res.hue_classes, "top_flagged": top_rows,
                                  "ci": "Wilson 95%", "covers": "the probability that a generated image's chroma "
                                  "exceeds this threshold (threshold held fixed)"}),
            MetricResult("gray_level_w1", res.gray_w1, None, None, res.n, higher_is_better=False,
                         details={"units": "gray levels (0-255), 1-D Wasserstein of luma inside the sector",
                                  "n_ref": len(m_ref)}),
            MetricResult("sector_departure_fraction", res.sector_fraction, res.sector_ci[0], res.sector_ci[1], res.n,
                         higher_is_better=False,
                         details={"iou_threshold": res.sector_threshold, "ref_rate": res.ref_sector_rate,
                                  "n_flagged": res.details["n_sector_flagged"],
                                  "gen_iou_median": float(np.median(res.sector_iou)), "ci": "Wilson 95%"}),
        ]

    @staticmethod
    def _write_artifacts(ctx: TaskContext, images, m: ImageMeasures, res: ColourShiftResult, top_rows) -> None:
        if ctx.artifacts_dir is None:
            return
        from tasks.gallery import contact_sheet

        out = ctx.artifacts_dir
        out.mkdir(parents=True, exist_ok=True)
        captions = [f"#{r['index']} C={r['chroma']:.1f} {r['hue_class']}" for r in top_rows]
        title = (f"colour shift: {res.details['n_flagged']}/{res.n} flagged (chroma > {res.threshold:.2f}); "
                 f"top {len(top_rows)}")
        ctx.artifacts["color_shift_gallery"] = contact_sheet([images[r["index"]] for r in top_rows], captions,
                                                             out / "color_shift_gallery.png", title=title)
        ctx.write_csv("color_shift_per_image", "color_shift_per_image.csv",
                      ["index", "chroma", "hue_deg", "hue_class", "flagged", "sector_iou", "sector_departs"],
                      ([i, f"{m.chroma[i]:.4f}", "" if not np.isfinite(m.hue[i]) else f"{m.hue[i]:.2f}",
                        hue_class(m.hue[i]), int(res.flagged[i]), f"{res.sector_iou[i]:.4f}", int(res.sector_flagged[i])]
                       for i in range(len(m))))
