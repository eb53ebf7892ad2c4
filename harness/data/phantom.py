"""The embedded apical-4-chamber (A4C) echo phantom: label maps, pseudo-B-mode images, captions.

Each sample is drawn from its own random stream ``numpy.random.default_rng([seed, split_id, index, k])``,
so a sample depends only on (seed, split, index, condition) and never on the batch size or the start
offset; the splits ``train`` / ``test`` / ``reference`` use distinct ``split_id`` values and never overlap.

Geometry (see ``docs``/PHANTOM.md): the fan-shaped ultrasound sector has its apex (the transducer) at the
top; the heart's crux (the atrioventricular valve plane) lies at about 58 % of the sector depth, the
ventricles above it (LV on the image right, RV on the left, as displayed clinically), the atria below. The
chambers are ellipses (the RV a pointed super-ellipse) in a rotated heart frame ``(u, v)``: ``u`` runs from
the crux towards the cardiac apex, ``v`` to the image right. Walls, septa and pericardium are bands of
approximate distance around the chambers. Conditions change the geometry (dilation, wall thickness, septal
gaps) and the caption.

Rendering (:func:`render_bmode`): echogenicity per label (blood dark, myocardium and valves bright,
pericardium brightest) with a smooth tissue texture, optional dropout of walls parallel to the beam,
boundary blur, multiplicative Rayleigh speckle (complex Gaussian noise blurred in beam coordinates and
scan-converted, so grains are elongated laterally and grow with depth), depth attenuation with partial
time-gain compensation, near-field clutter, log compression and the black background outside the sector.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from harness.data.base import DataSource, SampleBatch
from harness.data.labels import AGES, CONDITION_WEIGHTS, CONDITIONS, LABEL_NAMES, LABELS, SPLIT_IDS  # noqa: F401 (re-exported)
from harness.data.ultrasound import (
    Beam,
    SectorGeometry,
    attenuation,
    envelope,
    log_compress,
    pixel_grid,
    psf_filter,
    scan_convert,
    scan_maps,
    scatterers,
    tgc,
    to_beam,
)
from harness.errors import UsageError
from harness.registry import datasets

log = logging.getLogger(__name__)

PHANTOM_VERSION = "2"


# stream numbers inside one sample's seed sequence
_STREAM_CONDITION, _STREAM_GEOMETRY, _STREAM_RENDER = 0, 1, 2

# flat gray level per label for render_labelmap_image (blood dark, walls bright, like the echo)
_FLAT_LEVELS = np.array([0, 70, 170, 25, 35, 45, 55, 190, 180, 225, 215, 250], dtype=np.uint8)
# colours for viewing label maps
_PALETTE = np.array(
    [[0, 0, 0], [90, 90, 90], [200, 60, 60], [40, 90, 220], [40, 180, 220], [120, 60, 200], [200, 80, 200],
     [240, 150, 40], [240, 220, 60], [60, 220, 90], [150, 240, 120], [255, 255, 255]],
    dtype=np.uint8,
)
# echogenicity per label: background, tissue, myocardium, LV, RV, LA, RA, IVS, IAS, MV, TV, pericardium
_ECHO = np.array([0.0, 0.13, 0.32, 0.008, 0.008, 0.01, 0.01, 0.38, 0.34, 0.70, 0.65, 1.0], dtype=np.float32)


# --------------------------------------------------------------------------------------------------
# public helpers


def render_labelmap_image(label_maps: np.ndarray) -> np.ndarray:
    """Render label maps as flat-intensity pseudo-images: one gray level per label, black outside the sector.

    Parameters
    ----------
    label_maps : uint8 array (H, W) or (B, H, W) with values from :data:`LABELS`.

    Returns
    -------
    uint8 array of the same shape.
    """
    label_maps = np.asarray(label_maps)
    if label_maps.max(initial=0) >= len(_FLAT_LEVELS):
        raise UsageError(f"label map value {int(label_maps.max())} is not a phantom label (0..{len(_FLAT_LEVELS) - 1})")
    return _FLAT_LEVELS[label_maps]


def colorize_labels(label_maps: np.ndarray) -> np.ndarray:
    """Label maps (..., H, W) → RGB uint8 (..., H, W, 3) with one distinct colour per label (for viewing)."""
    label_maps = np.asarray(label_maps)
    return _PALETTE[np.clip(label_maps, 0, len(_PALETTE) - 1)]


def caption_for(condition: str, age: str, variant: str = "") -> str:
    """The paper-style caption of a sample, e.g.

    ``"ASD, without upper margin, LVH absent, heart cavities not dilated, right and left side unchanged,
    4-chamber position, echocardiogram of the child"``.
    """
    if condition == "asd":
        defect = "ASD, without upper margin" if variant == "no-upper-margin" else "ASD, with preserved margins"
    elif condition == "vsd":
        defect = "VSD, perimembranous" if variant == "perimembranous" else "VSD, muscular"
    else:
        defect = "no ASD or VSD, septa intact"
    lvh = "LVH present" if condition == "lvh" else "LVH absent"
    if condition == "dilated-lv":
        cavities, sides = "left ventricle dilated", "left side enlarged, right side unchanged"
    elif condition == "dilated-rv":
        cavities, sides = "right ventricle dilated", "right side enlarged, left side unchanged"
    else:
        cavities, sides = "heart cavities not dilated", "right and left side unchanged"
    who = "echocardiogram of the child" if age == "child" else "echocardiogram of the adult"
    return f"{defect}, {lvh}, {cavities}, {sides}, 4-chamber position, {who}"


# --------------------------------------------------------------------------------------------------
# geometry


@dataclass(frozen=True)
class CardiacMotion:
    """Fractional change of each dimension from end-diastole (phase 0) to end-systole (phase 1).

    Adult normal values: LV fractional shortening of the transverse dimension ~30 %, long-axis shortening
    (mitral annular excursion ~1.5 cm of ~8 cm) ~12 %, systolic wall thickening ~40 %, atria filling
    during ventricular systole. A dilated (poorly contracting) LV moves ``dilated_lv_factor`` as much.
    """

    lv_width: float = 0.30
    lv_length: float = 0.12
    rv_width: float = 0.22
    rv_length: float = 0.10
    wall_thickening: float = 0.40
    atrial_growth: float = 0.15
    dilated_lv_factor: float = 0.35


MOTION = CardiacMotion()


@dataclass(frozen=True)
class PhantomParams:
    """Everything that determines one sample's label map (lengths in units of the sector depth R).

    ``phase`` is the contraction state: 0 = end-diastole (ED), 1 = end-systole (ES); the chamber and wall
    dimensions below are already moved to that phase (ED dimensions × the :class:`CardiacMotion` factors).
    Frames of the filling period (contraction state going back from 1 to 0) have open AV valves.
    """

    condition: str
    age: str
    variant: str  # asd: "no-upper-margin" | "margins"; vsd: "perimembranous" | "muscular"; else ""
    phase: float  # 0 = end-diastole, 1 = end-systole
    depth: float  # sector depth as a fraction of the image height
    half_angle: float  # radians
    apex_x: float  # transducer position, fraction of the width
    crux_depth: float  # fraction of R
    crux_angle: float  # direction of the crux seen from the transducer (radians, + = image right)
    rotation: float  # heart long-axis rotation (radians)
    scale: float
    lv: tuple[float, float, float]  # length, half-width, wall
    rv: tuple[float, float, float]
    la: tuple[float, float, float]  # height, half-width, wall
    ra: tuple[float, float, float]
    ivs: float  # septal thickness at mid-level (thicker at the base)
    ias: float
    pericardium: float
    valve_open: float  # 0 closed .. 1 open
    defect: tuple[float, float]  # septal gap (u0, u1) in R units, (0, 0) when none


def phase_factors(phase: float, condition: str = "normal", motion: CardiacMotion = MOTION) -> dict[str, float]:
    """Multipliers of the ED dimensions at contraction state ``phase`` (0 = ED, 1 = ES)."""
    lv_move = motion.dilated_lv_factor if condition == "dilated-lv" else 1.0
    return {
        "lv_width": 1.0 - motion.lv_width * lv_move * phase,
        "lv_length": 1.0 - motion.lv_length * lv_move * phase,
        "rv_width": 1.0 - motion.rv_width * phase,
        "rv_length": 1.0 - motion.rv_length * phase,
        "wall": 1.0 + motion.wall_thickening * phase,
        "atria": 1.0 + motion.atrial_growth * phase,
    }


def draw_params(rng: np.random.Generator, condition: str, age: str, *, phase: float | None = None) -> PhantomParams:
    """Draw the bounded random geometry of one sample for ``condition`` and ``age``.

    Adult proportions at ED (units of a 16 cm sector depth): LV 8 cm long, 4.6 cm wide, 0.9 cm walls;
    RV shorter (6.7 cm) and narrower (3.5 cm); septum 1 cm; atria 4.3 × 3.8 cm below the AV plane, which lies
    at ~62 % of the depth so that the LV apex is close to the transducer. ``phase`` (0 = ED .. 1 = ES) forces
    the contraction state; the random stream is consumed the same way either way, so a patient keeps its
    anatomy when only the phase changes.
    """
    U = rng.uniform
    child = age == "child"
    drawn_phase = float(U(0, 1))
    phase = drawn_phase if phase is None else float(np.clip(phase, 0.0, 1.0))
    jit = lambda: float(U(0.92, 1.08))
    lv = [0.50 * jit(), 0.145 * jit(), 0.052 * jit()]
    rv = [0.41 * jit(), 0.108 * jit(), 0.024 * jit()]
    la = [0.27 * jit(), 0.118 * jit(), 0.018 * jit()]
    ra = [0.26 * jit(), 0.112 * jit(), 0.018 * jit()]
    ivs, ias = 0.060 * jit(), 0.020 * jit()
    if child:  # more globular ventricles, thinner walls
        lv[0] *= 0.88
        rv[0] *= 0.9
        for part in (lv, rv):
            part[1] *= 1.08
            part[2] *= 0.7
        ivs *= 0.7
    variant = ""
    if condition == "dilated-lv":  # dilated cardiomyopathy: large, round, thin-walled, poorly contracting LV
        lv[0] *= 1.12
        lv[1] *= 1.45
        lv[2] *= 0.75
        la[1] *= 1.15
        la[0] *= 1.1
    elif condition == "dilated-rv":  # RV larger than the LV, reaching the apex
        rv[0] *= 1.28
        rv[1] *= 1.6
        ra[0] *= 1.15
        ra[1] *= 1.25
    elif condition == "lvh":
        lv[1] *= 0.85
        lv[2] *= 2.0
        ivs *= 1.9
    f = phase_factors(phase, condition)
    lv = [lv[0] * f["lv_length"], lv[1] * f["lv_width"], lv[2] * f["wall"]]
    rv = [rv[0] * f["rv_length"], rv[1] * f["rv_width"], rv[2] * f["wall"]]
    la = [la[0] * f["atria"], la[1] * f["atria"], la[2]]
    ra = [ra[0] * f["atria"], ra[1] * f["atria"], ra[2]]
    ivs *= f["wall"]
    defect = (0.0, 0.0)
    if condition == "asd":  # gap in the interatrial septum; u < 0 below the crux
        variant = "no-upper-margin" if U() < 0.5 else "margins"
        size = float(U(0.06, 0.10)) * min(la[0], ra[0]) / 0.17
        if variant == "no-upper-margin":  # reaches the atrial roof (far end of the septum)
            defect = (-1.2 * min(la[0], ra[0]), -min(la[0], ra[0]) + size)
        else:
            mid = -float(U(0.4, 0.6)) * min(la[0], ra[0])
            defect = (mid - size / 2, mid + size / 2)
    elif condition == "vsd":
        variant = "perimembranous" if U() < 0.5 else "muscular"
        size = float(U(0.05, 0.08))
        start = 0.01 if variant == "perimembranous" else float(U(0.15, 0.25))
        defect = (start, start + size)
    valve_open = float(U(0.2, 1.0)) if U() < 0.5 else float(U(0.0, 0.15))
    return PhantomParams(
        condition=condition, age=age, variant=variant, phase=phase,
        depth=float(U(0.92, 0.98)), half_angle=math.radians(float(U(38, 45))),
        apex_x=float(U(0.48, 0.52)), crux_depth=float(U(0.60, 0.66) if not child else U(0.58, 0.64)),
        crux_angle=math.radians(float(U(-5, 5))), rotation=math.radians(float(U(-10, 10))),
        scale=float(U(0.88, 1.04)) * (1.05 if child else 1.0),
        lv=tuple(lv), rv=tuple(rv), la=tuple(la), ra=tuple(ra), ivs=ivs, ias=ias,
        pericardium=0.020 * jit(), valve_open=valve_open, defect=defect,
    )


def _ellipse_distance(u, v, uc, vc, au, av, q=2.0):
    """Approximate signed distance (negative inside) to the super-ellipse |du/au|^q + |dv/av|^2 = 1
    (the implicit function divided by its gradient's norm)."""
    du = (u - uc) * (1.0 / au)
    dv = (v - vc) * (1.0 / av)
    if q == 2.0:
        du2 = du * du
        f = du2 + dv * dv - 1.0
        gu2 = du2 * (4.0 / (au * au))
    else:
        adu = np.abs(du)
        pw = adu ** (q - 1.0)
        f = adu * pw + dv * dv - 1.0
        gu2 = pw * pw * (q * q / (au * au))
    return f / np.sqrt(gu2 + dv * dv * (4.0 / (av * av)) + 1e-12)


def sector_geometry(p: PhantomParams, h: int, w: int) -> SectorGeometry:
    """The fan of sample ``p`` at image size (h, w) with its beam grid (``n_r = h`` depths, ``0.75 w`` beams)."""
    return SectorGeometry(apex_x=p.apex_x * w, apex_y=-0.02 * h, r0=0.04 * h, R=p.depth * h,
                          half_angle=p.half_angle, n_r=max(16, h), n_t=max(16, int(0.75 * w)))


@dataclass
class _Frame:
    """Pixel coordinates of one sample: the sector and the rotated heart frame (pixels)."""

    geom: SectorGeometry
    u: np.ndarray  # heart long axis, from the crux towards the apex (pixels)
    v: np.ndarray  # heart lateral axis (pixels, + = LV side = image right)
    sector: np.ndarray  # bool
    R: float  # sector depth in pixels
    scan_maps: tuple[np.ndarray, np.ndarray]  # cv2.remap maps of the scan conversion
    to_xy: tuple[float, float, float, float, float, float]  # (cx, cy, eu_x, eu_y, ev_x, ev_y)


def _frame(p: PhantomParams, h: int, w: int) -> _Frame:
    geom = sector_geometry(p, h, w)
    xx, yy = pixel_grid(h, w)
    maps = scan_maps(geom, h, w)
    sector = (maps[1] >= 0) & (maps[1] <= geom.n_r - 1) & (np.abs(maps[0] - 0.5 * (geom.n_t - 1)) <= 0.5 * (geom.n_t - 1))
    R = geom.R
    dc = p.crux_depth * R
    cx, cy = geom.apex_x + dc * math.sin(p.crux_angle), geom.apex_y + dc * math.cos(p.crux_angle)
    phi = p.rotation
    eu = (math.sin(phi), -math.cos(phi))  # towards the cardiac apex (up)
    ev = (math.cos(phi), math.sin(phi))  # image right
    ox, oy = xx - cx, yy - cy
    u = ox * eu[0] + oy * eu[1]
    v = ox * ev[0] + oy * ev[1]
    return _Frame(geom, u, v, sector, R, maps, (cx, cy, eu[0], eu[1], ev[0], ev[1]))


def _stamp_segment(label, fr: _Frame, p0, p1, thick, value):
    """Paint the thick segment p0→p1 (heart-frame pixel coords (u, v)) with ``value`` inside the sector."""
    cx, cy, eux, euy, evx, evy = fr.to_xy
    pts = [(cx + pu * eux + pv * evx, cy + pu * euy + pv * evy) for pu, pv in (p0, p1)]
    m = thick + 2
    h, w = label.shape
    x0 = max(int(min(pts[0][0], pts[1][0]) - m), 0)
    x1 = min(int(max(pts[0][0], pts[1][0]) + m) + 1, w)
    y0 = max(int(min(pts[0][1], pts[1][1]) - m), 0)
    y1 = min(int(max(pts[0][1], pts[1][1]) + m) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return
    u, v = fr.u[y0:y1, x0:x1], fr.v[y0:y1, x0:x1]
    du, dv = p1[0] - p0[0], p1[1] - p0[1]
    length2 = du * du + dv * dv + 1e-9
    t = np.clip(((u - p0[0]) * du + (v - p0[1]) * dv) / length2, 0.0, 1.0)
    eu_, ev_ = u - p0[0] - t * du, v - p0[1] - t * dv
    hit = (eu_ * eu_ + ev_ * ev_ <= (thick / 2) ** 2) & fr.sector[y0:y1, x0:x1]
    label[y0:y1, x0:x1][hit] = value


_CLOSE_KERNEL = functools.lru_cache(maxsize=8)(lambda k: cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))


def _septum_half(u, length, thickness):
    """Half-thickness of the interventricular septum at height ``u``: thickest at the base, tapering to the apex."""
    return 0.5 * thickness * (1.3 - 0.6 * np.clip(u / length, 0.0, 1.0))


def label_map(p: PhantomParams, h: int, w: int) -> tuple[np.ndarray, _Frame]:
    """Draw the uint8 label map (values from :data:`LABELS`) of ``p`` at size (h, w).

    Chambers are (super-)ellipses in the heart frame, each cut by its septum so that the septal side is
    straight while the free wall is curved; the LV's axis leans towards the septum so that the LV forms the
    cardiac apex; the tricuspid annulus sits slightly more apical than the mitral one.
    """
    fr = _frame(p, h, w)
    k = fr.R * p.scale  # R units → pixels
    u, v = fr.u, fr.v
    L = LABELS
    (lv_l, lv_w, lv_t), (rv_l, rv_w, rv_t) = p.lv, p.rv
    (la_h, la_w, la_t), (ra_h, ra_w, ra_t) = p.la, p.ra
    ivs, ias = p.ivs, p.ias
    sep = _septum_half(u, lv_l * k, ivs * k)
    # chamber distance maps (pixels); ventricles above the crux (u > 0), atria below
    lean_lv = 0.55 * lv_w * k * np.clip(u / (lv_l * k), 0.0, 1.0)
    d_lv = np.maximum(_ellipse_distance(u, v + lean_lv, 0.22 * lv_l * k, (0.5 * 1.3 * ivs + 0.92 * lv_w) * k,
                                        0.78 * lv_l * k, lv_w * k), sep - v)
    lean_rv = 0.45 * rv_w * k * np.clip(u / (rv_l * k), 0.0, 1.0)
    d_rv = np.maximum(_ellipse_distance(u, v - lean_rv, 0.2 * rv_l * k, -(0.5 * 1.3 * ivs + 0.92 * rv_w) * k,
                                        0.8 * rv_l * k, rv_w * k, q=1.6), v + sep)
    ias_h = 0.5 * ias * k
    d_la = np.maximum(_ellipse_distance(u, v, -0.45 * la_h * k, (ias / 2 + 0.95 * la_w) * k, 0.60 * la_h * k, la_w * k),
                      ias_h - v)
    d_ra = np.maximum(_ellipse_distance(u, v, -0.45 * ra_h * k, -(ias / 2 + 0.95 * ra_w) * k, 0.60 * ra_h * k,
                                        ra_w * k), v + ias_h)
    tv_off = 0.03 * k  # the tricuspid annulus is more apical than the mitral annulus
    up, down = u >= 0, u < 0
    peri_t = p.pericardium * k
    heart = (((d_lv < lv_t * k) | (d_rv < rv_t * k)) & (u > -0.6 * lv_t * k)) | (
        ((d_la < la_t * k) | (d_ra < ra_t * k)) & (u < 0.6 * la_t * k))
    close = max(3, round(0.06 * k) | 1)
    heart = cv2.morphologyEx(heart.view(np.uint8), cv2.MORPH_CLOSE, _CLOSE_KERNEL(close)).view(bool)
    peri = cv2.dilate(heart.view(np.uint8), _CLOSE_KERNEL(max(3, round(2 * peri_t) | 1))).view(bool)

    label = np.where(fr.sector, np.uint8(L["tissue"]), np.uint8(L["background"]))
    label[peri] = L["pericardium"]
    label[heart] = L["myocardium"]
    band_ivs = heart & (u > -0.3 * ivs * k) & (np.abs(v) < sep) & (u < (rv_l + rv_t) * k)
    band_ias = heart & down & (np.abs(v) < ias_h)
    label[band_ivs] = L["ivs"]
    label[band_ias] = L["ias"]
    label[(d_lv < 0) & up] = L["lv"]
    label[(d_rv < 0) & (u >= tv_off)] = L["rv"]
    label[(d_la < 0) & down] = L["la"]
    label[(d_ra < 0) & (u < tv_off)] = L["ra"]
    if p.condition in ("asd", "vsd"):
        g0, g1 = p.defect[0] * k, p.defect[1] * k
        width = (1.6 * ias if p.condition == "asd" else 1.0 * ivs) * k
        sel = heart & (u >= g0) & (u <= g1) & (np.abs(v) < width)
        left, right = ("ra", "la") if p.condition == "asd" else ("rv", "lv")
        label[sel & (v < 0)] = L[left]
        label[sel & (v >= 0)] = L[right]
    _draw_valves(label, fr, p, k)
    label[~fr.sector] = L["background"]
    return label, fr


def _draw_valves(label: np.ndarray, fr: _Frame, p: PhantomParams, k: float) -> None:
    """Mitral (LV side) and tricuspid (RV side) leaflets hinged at the annulus, opening towards the apex."""
    thick = max(1.6, 0.014 * k)
    opening = p.valve_open
    base_sep = 0.5 * 1.3 * p.ivs
    for name, centre, half, hinge_u, sign in (
        ("mitral", (base_sep + 0.92 * p.lv[1]) * k, 0.9 * p.lv[1] * k, 0.0, 1.0),
        ("tricuspid", -(base_sep + 0.92 * p.rv[1]) * k, 0.85 * p.rv[1] * k, 0.03 * k, -1.0),
    ):
        for side in (-1.0, 1.0):  # septal and lateral leaflet
            hinge = (hinge_u, centre + side * half)
            length = half * (1.05 if side * sign < 0 else 0.9)
            closed = math.radians(-12.0)  # slightly bowed towards the atrium
            ang = closed + opening * (math.radians(75.0) - closed)
            tip = (hinge[0] + length * math.sin(ang), hinge[1] - side * length * math.cos(ang))
            _stamp_segment(label, fr, hinge, tip, thick, LABELS[name])


# --------------------------------------------------------------------------------------------------
# rendering: image formation (see harness/data/ultrasound.py)


@dataclass(frozen=True)
class Tissue:
    """Backscatter per label: mean power in dB relative to the pericardium, its spatial spread (dB, smooth
    random field), and the scatterer density (< 1: sparse scatterers, e.g. blood)."""

    db: float
    spread_db: float = 0.0
    density: float = 1.0


#: tissue properties per label value (background is never insonified)
TISSUES: tuple[Tissue, ...] = (
    Tissue(-80.0),  # background
    Tissue(-29.0, 8.0),  # tissue around the heart: dark, uneven (lung, fat, liver)
    Tissue(-14.0, 7.0),  # myocardium: bright, uneven
    Tissue(-44.0, 3.0, 0.08),  # LV blood: nearly anechoic, faint clutter
    Tissue(-44.0, 3.0, 0.08),  # RV
    Tissue(-43.0, 3.0, 0.08),  # LA
    Tissue(-43.0, 3.0, 0.08),  # RA
    Tissue(-13.0, 5.0),  # IVS
    Tissue(-18.0, 3.0),  # IAS (thin, often weak)
    Tissue(-3.0, 3.0),  # mitral leaflets
    Tissue(-4.0, 3.0),  # tricuspid leaflets
    Tissue(1.0, 9.0),  # pericardium: brightest
)


_WALLS = np.zeros(256, bool)
_WALLS[[LABELS["myocardium"], LABELS["ivs"], LABELS["ias"], LABELS["pericardium"]]] = True


@dataclass(frozen=True)
class Scanner:
    """Scanner and patient settings drawn per sample (see :func:`draw_scanner`)."""

    beam: Beam
    alpha: float  # attenuation, nepers per sector depth (round trip)
    tgc_compensation: float  # fraction of the attenuation undone by TGC
    dynamic_range_db: float
    gain_db: float  # shift of the display window (+ = brighter)
    noise_db: float  # electronic noise power relative to the pericardium
    haze_db: float  # near-field clutter power at the transducer
    haze_depth: float  # its decay length (fraction of R)
    specular: float  # how much walls parallel to the beam lose (0 = none, 1 = all)
    lateral_falloff: float  # brightness lost at the sector edges
    edge_db: float  # clutter power at the sides of the fan
    knee: float  # soft black level of the display curve (fraction of the display range)
    display_blur: float  # display smoothing, pixels at 256×256


def draw_scanner(rng: np.random.Generator, *, child: bool, dropout: bool, speckle_scale: float = 1.0) -> Scanner:
    """Random but bounded scanner settings: a child is scanned with a higher frequency (finer speckle)."""
    U = rng.uniform
    grain = U(0.9, 1.1) * (0.85 if child else 1.0) * speckle_scale
    beam = Beam(axial_sigma=0.008, lateral_near=0.005, lateral_far=0.018).scaled(grain)
    return Scanner(beam=beam, alpha=U(1.0, 2.0), tgc_compensation=U(0.7, 0.95),
                   dynamic_range_db=U(48.0, 60.0), gain_db=U(-21.0, -15.0), noise_db=U(-54.0, -48.0),
                   haze_db=U(-30.0, -20.0), haze_depth=U(0.05, 0.10),
                   specular=U(0.55, 0.85) if dropout else U(0.15, 0.4), lateral_falloff=U(0.2, 0.5),
                   edge_db=U(-15.0, -11.0), knee=U(0.02, 0.05), display_blur=U(0.6, 1.0))


def _smooth(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """A smooth zero-mean unit-variance-ish random field (low-resolution noise, bicubically upsampled)."""
    low = rng.standard_normal(cells).astype(np.float32)
    return cv2.resize(low, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def echogenicity(label_beam: np.ndarray, geom: SectorGeometry, rng: np.random.Generator,
                 scanner: Scanner) -> tuple[np.ndarray, np.ndarray]:
    """Backscatter power and scatterer density on the beam grid from the label map sampled there."""
    n_r, n_t = label_beam.shape
    db_tab = np.array([t.db for t in TISSUES], np.float32) + rng.normal(0.0, 1.5, len(TISSUES)).astype(np.float32)
    spread = np.array([t.spread_db for t in TISSUES], np.float32)
    dens = np.array([t.density for t in TISSUES], np.float32)
    coarse, fine = _smooth(rng, (n_r, n_t), (10, 8)), _smooth(rng, (n_r, n_t), (24, 18))
    db = db_tab[label_beam] + spread[label_beam] * (0.65 * coarse + 0.35 * fine)
    # the pericardium: a patchy line, brightest behind the heart (posterior), weak at the lateral sides
    peri = label_beam == LABELS["pericardium"]
    depth = geom.depths()[:, None] / geom.R
    db = np.where(peri, db_tab[LABELS["pericardium"]] + spread[LABELS["pericardium"]] * fine + 12.0 * (depth - 0.7), db)
    # specular reflection: interfaces perpendicular to the beam are bright, walls parallel to it weak
    walls = _WALLS[label_beam]
    wf = cv2.GaussianBlur(walls.astype(np.float32), (0, 0), 2.0)
    r = geom.depths()[:, None]
    g_r = cv2.Sobel(wf, cv2.CV_32F, 0, 1, ksize=1, scale=0.5) / geom.dr  # central differences
    g_t = cv2.Sobel(wf, cv2.CV_32F, 1, 0, ksize=1, scale=0.5) / np.maximum(r * geom.dtheta, 1e-3)
    g2 = g_r * g_r + g_t * g_t
    edge = np.minimum(np.sqrt(g2) * 6.0, 1.0)  # only near interfaces
    loss = scanner.specular * edge * (g_t * g_t / (g2 + 1e-6))  # 1 - cos² of the beam-to-normal angle
    db += np.where(walls, 10.0 * np.log10(1.0 - loss + 1e-3), 0.0)
    power = np.exp(db * np.float32(math.log(10.0) / 10.0))
    return power, dens[label_beam]


def render_bmode(label: np.ndarray, fr: _Frame, rng: np.random.Generator, *, speckle_scale: float = 1.0,
                 dropout: bool = False, child: bool = False) -> np.ndarray:
    """Simulate the B-mode image of a label map (uint8, same shape): the convolution model in beam coordinates.

    Scatterers with the label's echogenicity and density → depth-dependent PSF (FFT) → attenuation + near-field
    clutter + electronic noise → TGC → envelope → log compression → scan conversion (black outside the fan).
    """
    h, w = label.shape
    geom = fr.geom
    scanner = draw_scanner(rng, child=child, dropout=dropout, speckle_scale=speckle_scale)
    label_beam = to_beam(label, geom, nearest=True)
    echo, density = echogenicity(label_beam, geom, rng, scanner)
    depth = (geom.depths() / geom.R)[:, None]
    att = attenuation(depth, scanner.alpha)
    # near-field clutter (reverberation haze) and electronic noise: the noise enters after attenuation, so it is
    # added as scatterer power / attenuation² (band-limited by the same PSF as the echoes)
    power = echo + np.float32(10.0 ** (scanner.haze_db / 10.0)) * np.exp(-depth / scanner.haze_depth).astype(np.float32)
    # clutter at the sides of the fan (rib and lung reverberation, side lobes), entering like the noise after the
    # attenuation: the fan's edge stays visible at every depth
    theta = np.abs(geom.angles()[None, :]) / geom.half_angle
    edge = np.float32(10.0 ** (scanner.edge_db / 10.0)) * (theta**16).astype(np.float32)
    extra = power - echo + (np.float32(10.0 ** (scanner.noise_db / 10.0)) + edge) / (att * att)
    power = echo + extra
    density = (echo * density + extra) / power  # clutter and noise are dense even inside the sparse blood
    iq = psf_filter(scatterers(power, rng, density), geom, scanner.beam)
    env = envelope(iq)
    env *= att * tgc(depth, scanner.alpha, scanner.tgc_compensation)
    theta = geom.angles()[None, :] / geom.half_angle
    env *= (1.0 - scanner.lateral_falloff * np.abs(theta) ** 3).astype(np.float32)
    img = log_compress(env, scanner.dynamic_range_db, reference=10.0 ** (-scanner.gain_db / 20.0), knee=scanner.knee)
    out = scan_convert(img, geom, h, w, maps=fr.scan_maps)
    # display smoothing (scan-conversion interpolation, video compression of the stored clip)
    # (normalised inside the fan, so that the black outside does not darken its edge, which stays sharp)
    sigma = scanner.display_blur * h / 256.0
    inside = fr.sector.astype(np.float32)
    out = cv2.GaussianBlur(out, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(inside, (0, 0), sigma), 1e-3)
    out[~fr.sector] = 0.0
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# the data source


def _as_list(value, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    try:
        return [str(s).strip() for s in value]
    except TypeError:
        raise UsageError(f"phantom option {what}: expected a comma-separated string or a list, got {value!r}") from None


@datasets.register("phantom")
class PhantomSource(DataSource):
    """Procedural apical-4-chamber echo phantom (embedded, offline).

    Parameters
    ----------
    size : image side in pixels (square images), default 256.
    seed : base seed, default 0.
    conditions : the conditions to draw from (subset of :data:`CONDITIONS`); default all, ``normal`` the
        most frequent (weights :data:`CONDITION_WEIGHTS`).
    ages : subset of ``("child", "adult")`` (equally likely), default both.
    inject : fault specs (see :mod:`harness.data.faults`), e.g. ``["tint:0.03:orange"]``.
    dropout : probability that a sample shows the "walls not visible" dropout artifact, default 0.3.
    """

    description = "Procedural apical-4-chamber echo phantom (embedded, offline)"
    splits = ("train", "test", "reference")
    default_split = "test"
    reference_split = "reference"  # `harness run`'s default reference set
    heldout_split = "test"  # what the `real` baseline samples: disjoint from the reference set
    has_label_maps = True
    OPTIONS = ("size", "seed", "conditions", "ages", "inject", "dropout")

    def __init__(self, size: int = 256, seed: int = 0, conditions: Sequence[str] | str | None = None,
                 ages: Sequence[str] | str | None = None, inject: Sequence[str] | str | None = None,
                 dropout: float = 0.3):
        from harness.data.faults import parse_faults

        try:
            self.size = int(size)
            self.seed = int(seed)
            self.dropout = float(dropout)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"phantom options size/seed/dropout must be numbers: {exc}") from None
        if not 16 <= self.size <= 4096:
            raise UsageError(f"phantom option size={self.size}: must be between 16 and 4096 pixels")
        if not 0.0 <= self.dropout <= 1.0:
            raise UsageError(f"phantom option dropout={self.dropout}: must be a probability in [0, 1]")
        conds = _as_list(conditions, "conditions") or list(CONDITIONS)
        bad = [c for c in conds if c not in CONDITIONS]
        if bad:
            raise UsageError(f"phantom option conditions: unknown {', '.join(bad)}; valid: {', '.join(CONDITIONS)}")
        self.conditions = tuple(c for c in CONDITIONS if c in conds)
        ages_ = _as_list(ages, "ages") or list(AGES)
        bad = [a for a in ages_ if a not in AGES]
        if bad:
            raise UsageError(f"phantom option ages: unknown {', '.join(bad)}; valid: {', '.join(AGES)}")
        self.ages = tuple(a for a in AGES if a in ages_)
        self.faults = parse_faults(_as_list(inject, "inject") if isinstance(inject, str) else (inject or []))
        dropped = {f.condition for f in self.faults if f.kind == "drop-condition"}
        if dropped and not set(self.conditions) - dropped:
            raise UsageError("drop-condition removes every condition the phantom draws from")
        self._drawn = tuple(c for c in self.conditions if c not in dropped)

    @classmethod
    def from_spec(cls, arg: str | None, **options) -> tuple[PhantomSource, str]:
        unknown = sorted(set(options) - set(cls.OPTIONS))
        if unknown:
            raise UsageError(f"phantom: unknown option(s) {', '.join(unknown)}; valid: {', '.join(cls.OPTIONS)}")
        requested = (arg or "").lstrip("@").strip().lower() or None  # phantom:test (or phantom@test)
        split = requested or cls.default_split
        source = cls(**options)
        source.check_split(split)
        source.requested_split = requested
        return source, split

    def count(self, split: str) -> int | None:
        self.check_split(split)
        return None

    def fingerprint(self) -> dict:
        return {"source": "phantom", "version": PHANTOM_VERSION, "size": self.size, "seed": self.seed,
                "conditions": list(self.conditions), "ages": list(self.ages), "dropout": self.dropout,
                "inject": [f.spec for f in self.faults]}

    def fingerprint_hash(self) -> str:
        """Short sha256 of :meth:`fingerprint`."""
        return hashlib.sha256(json.dumps(self.fingerprint(), sort_keys=True).encode()).hexdigest()[:16]

    # sampling ---------------------------------------------------------------------------------
    def _rng(self, split: str, index: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLIT_IDS[split], int(index), stream])

    def draw_condition(self, split: str, index: int) -> tuple[str, str, str | None]:
        """(condition, age, dropped) of sample ``index``; ``dropped`` names a dropped condition it replaced."""
        rng = self._rng(split, index, _STREAM_CONDITION)
        weights = np.array([CONDITION_WEIGHTS[c] for c in self.conditions])
        cond = self.conditions[int(rng.choice(len(self.conditions), p=weights / weights.sum()))]
        age = self.ages[int(rng.integers(len(self.ages)))]
        dropped = None
        if cond not in self._drawn:  # only the samples of a dropped condition change
            w2 = np.array([CONDITION_WEIGHTS[c] for c in self._drawn])
            dropped, cond = cond, self._drawn[int(rng.choice(len(self._drawn), p=w2 / w2.sum()))]
        return cond, age, dropped

    def render(self, split: str, index: int, *, condition: str | None = None, age: str | None = None,
               speckle_scale: float = 1.0, phase: float | None = None) -> tuple[np.ndarray, np.ndarray, PhantomParams]:
        """One clean sample (image, label map, params), optionally forcing its condition/age and its cardiac
        phase (0 = end-diastole .. 1 = end-systole; the same patient, scanner and speckle otherwise)."""
        self.check_split(split)
        drawn_cond, drawn_age, _ = self.draw_condition(split, index)
        cond, age = condition or drawn_cond, age or drawn_age
        if cond not in CONDITIONS or age not in AGES:
            raise UsageError(f"phantom: unknown condition {cond!r} or age {age!r}; conditions: {', '.join(CONDITIONS)}")
        params = draw_params(self._rng(split, index, _STREAM_GEOMETRY), cond, age, phase=phase)
        label, fr = label_map(params, self.size, self.size)
        rng = self._rng(split, index, _STREAM_RENDER)
        dropout = bool(rng.uniform() < self.dropout)
        image = render_bmode(label, fr, rng, speckle_scale=speckle_scale, dropout=dropout, child=age == "child")
        return image, label, params

    def render_samples(self, split: str, indices: Sequence[int], *, conditions: Sequence[str] | None = None,
                       apply_faults: bool = True) -> SampleBatch:
        """A batch of the given sample indices (faults applied unless ``apply_faults=False``)."""
        from harness.data.faults import apply_faults as _apply
        from harness.data.faults import render_options

        self.check_split(split)
        faults = self.faults if apply_faults else []
        images, labels, conds, caps, ages, phases, injected = [], [], [], [], [], [], []
        for j, index in enumerate(indices):
            cond, age, dropped = self.draw_condition(split, index)
            if conditions is not None:
                cond = conditions[j]
            opts, marks = render_options(faults, self.seed, SPLIT_IDS[split], index)
            if dropped and conditions is None:
                marks.append(next(f.spec for f in faults if f.kind == "drop-condition" and f.condition == dropped))
            image, label, params = self.render(split, index, condition=cond, age=age, **opts)
            images.append(image)
            labels.append(label)
            conds.append(params.condition)
            caps.append(caption_for(params.condition, params.age, params.variant))
            ages.append(params.age)
            phases.append(round(params.phase, 4))
            injected.append(marks)
        batch = SampleBatch(
            images=np.stack(images) if images else np.zeros((0, self.size, self.size), np.uint8),
            ids=[f"phantom/{split}/{i:06d}" for i in indices],
            label_maps=np.stack(labels) if labels else np.zeros((0, self.size, self.size), np.uint8),
            conditions=conds, captions=caps,
            extra={"age": ages, "phase": phases},
        )
        return _apply(batch, faults, self, split, list(indices), injected)

    def iter_batches(self, split: str, n: int, *, start: int = 0, batch_size: int = 64) -> Iterator[SampleBatch]:
        self.check_split(split)
        if n < 0 or start < 0 or batch_size < 1:
            raise UsageError(f"phantom: need n >= 0, start >= 0, batch_size >= 1 (got {n}, {start}, {batch_size})")
        for b0 in range(start, start + n, batch_size):
            yield self.render_samples(split, range(b0, min(b0 + batch_size, start + n)))
