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
from harness.errors import UsageError
from harness.registry import datasets

log = logging.getLogger(__name__)

PHANTOM_VERSION = "1"


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
class PhantomParams:
    """Everything that determines one sample's label map (lengths in units of the sector depth R)."""

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
    ivs: float
    ias: float
    pericardium: float
    valve_open: float  # 0 closed .. 1 open
    defect: tuple[float, float]  # septal gap (u0, u1) in R units, (0, 0) when none


def draw_params(rng: np.random.Generator, condition: str, age: str) -> PhantomParams:
    """Draw the bounded random geometry of one sample for ``condition`` and ``age``."""
    U = rng.uniform
    child = age == "child"
    phase = float(U(0, 1))
    jit = lambda: float(U(0.92, 1.08))
    vent_w, vent_l, wall_f = 1 - 0.15 * phase, 1 - 0.06 * phase, 1 + 0.35 * phase
    atr = 1 + 0.10 * phase
    lv = [0.40 * vent_l * jit(), 0.100 * vent_w * jit(), 0.032 * wall_f * jit()]
    rv = [0.34 * vent_l * jit(), 0.085 * vent_w * jit(), 0.018 * wall_f * jit()]
    la = [0.17 * atr * jit(), 0.095 * atr * jit(), 0.014 * jit()]
    ra = [0.16 * atr * jit(), 0.090 * atr * jit(), 0.014 * jit()]
    ivs, ias = 0.035 * wall_f * jit(), 0.022 * jit()
    if child:  # more globular ventricles, thinner walls, heart larger in the (shallower) field of view
        lv[0] *= 0.9
        rv[0] *= 0.9
        for part in (lv, rv):
            part[1] *= 1.06
            part[2] *= 0.75
        ivs *= 0.75
    variant = ""
    if condition == "dilated-lv":
        lv[0] *= 1.12
        lv[1] *= 1.40
        lv[2] *= 0.85
        la[1] *= 1.1
    elif condition == "dilated-rv":
        rv[0] *= 1.25
        rv[1] *= 1.55
        ra[0] *= 1.15
        ra[1] *= 1.2
    elif condition == "lvh":
        lv[1] *= 0.85
        lv[2] *= 2.0
        ivs *= 1.9
    defect = (0.0, 0.0)
    if condition == "asd":  # gap in the interatrial septum; u < 0 below the crux
        variant = "no-upper-margin" if U() < 0.5 else "margins"
        size = float(U(0.05, 0.08)) * min(la[0], ra[0]) / 0.17
        if variant == "no-upper-margin":  # reaches the atrial roof (far end of the septum)
            defect = (-1.2 * min(la[0], ra[0]), -min(la[0], ra[0]) + size)
        else:
            mid = -float(U(0.4, 0.6)) * min(la[0], ra[0])
            defect = (mid - size / 2, mid + size / 2)
    elif condition == "vsd":
        variant = "perimembranous" if U() < 0.5 else "muscular"
        size = float(U(0.04, 0.07))
        start = 0.01 if variant == "perimembranous" else float(U(0.12, 0.22))
        defect = (start, start + size)
    valve_open = float(U(0.2, 1.0)) if U() < 0.5 else float(U(0.0, 0.15))
    return PhantomParams(
        condition=condition, age=age, variant=variant, phase=phase,
        depth=float(U(0.90, 0.97)), half_angle=math.radians(float(U(36, 42))),
        apex_x=float(U(0.48, 0.52)), crux_depth=float(U(0.58, 0.63) if not child else U(0.56, 0.60)),
        crux_angle=math.radians(float(U(-4, 4))), rotation=math.radians(float(U(-8, 8))),
        scale=float(U(0.82, 0.92)) * (1.08 if child else 1.0),
        lv=tuple(lv), rv=tuple(rv), la=tuple(la), ra=tuple(ra), ivs=ivs, ias=ias,
        pericardium=0.016 * jit(), valve_open=valve_open, defect=defect,
    )


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


def _ellipse_distance(u, v, uc, vc, au, av, q=2.0):
    """Approximate signed distance (negative inside) to the super-ellipse |du/au|^q + |dv/av|^2 = 1."""
    du = (u - uc) / au
    dv = (v - vc) / av
    adu = np.abs(du)
    if q == 2.0:
        f = du * du + dv * dv - 1.0
        gu = 2.0 * adu / au
    else:
        f = adu**q + dv * dv - 1.0
        gu = q * adu ** (q - 1.0) / au
    gv = 2.0 * np.abs(dv) / av
    return f / np.sqrt(gu * gu + gv * gv + 1e-12)


@dataclass
class _Frame:
    """Pixel coordinates of one sample: sector polar coordinates and the rotated heart frame (pixels)."""

    r: np.ndarray  # distance from the transducer, pixels
    theta: np.ndarray  # angle from the beam axis (radians, + = image right)
    u: np.ndarray  # heart long axis, from the crux towards the apex (pixels)
    v: np.ndarray  # heart lateral axis (pixels, + = LV side = image right)
    sector: np.ndarray  # bool
    R: float  # sector depth in pixels
    apex: tuple[float, float]  # transducer (x, y)
    to_xy: tuple[float, float, float, float, float, float]  # (cx, cy, eu_x, eu_y, ev_x, ev_y)


def _frame(p: PhantomParams, h: int, w: int) -> _Frame:
    yy, xx = _grid(h, w)
    R = p.depth * h
    ax, ay = p.apex_x * w, -0.02 * h
    dx, dy = xx - ax, yy - ay
    r = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dx, dy)
    sector = (r <= R) & (np.abs(theta) <= p.half_angle) & (r >= 0.04 * h)
    dc = p.crux_depth * R
    cx, cy = ax + dc * math.sin(p.crux_angle), ay + dc * math.cos(p.crux_angle)
    phi = p.rotation
    eu = (math.sin(phi), -math.cos(phi))  # towards the cardiac apex (up)
    ev = (math.cos(phi), math.sin(phi))  # image right
    ox, oy = xx - cx, yy - cy
    u = ox * eu[0] + oy * eu[1]
    v = ox * ev[0] + oy * ev[1]
    return _Frame(r, theta, u, v, sector, R, (ax, ay), (cx, cy, eu[0], eu[1], ev[0], ev[1]))


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


def label_map(p: PhantomParams, h: int, w: int) -> tuple[np.ndarray, _Frame]:
    """Draw the uint8 label map (values from :data:`LABELS`) of ``p`` at size (h, w)."""
    fr = _frame(p, h, w)
    k = fr.R * p.scale  # R units → pixels
    u, v = fr.u, fr.v
    L = LABELS
    (lv_l, lv_w, lv_t), (rv_l, rv_w, rv_t) = p.lv, p.rv
    (la_h, la_w, la_t), (ra_h, ra_w, ra_t) = p.la, p.ra
    ivs, ias = p.ivs, p.ias
    # chamber distance maps (pixels); ventricles above the crux (u > 0), atria below
    d_lv = _ellipse_distance(u, v, 0.25 * lv_l * k, (ivs / 2 + lv_w) * k, 0.75 * lv_l * k, lv_w * k)
    d_rv = _ellipse_distance(u, v, 0.22 * rv_l * k, -(ivs / 2 + rv_w) * k, 0.78 * rv_l * k, rv_w * k, q=1.6)
    d_la = _ellipse_distance(u, v, -0.45 * la_h * k, (ias / 2 + la_w) * k, 0.60 * la_h * k, la_w * k)
    d_ra = _ellipse_distance(u, v, -0.45 * ra_h * k, -(ias / 2 + ra_w) * k, 0.60 * ra_h * k, ra_w * k)
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
    band_ivs = heart & up & (np.abs(v) < 0.75 * ivs * k) & (u < (rv_l + rv_t) * k)
    band_ias = heart & down & (np.abs(v) < 1.0 * ias * k)
    label[band_ivs] = L["ivs"]
    label[band_ias] = L["ias"]
    label[(d_lv < 0) & up] = L["lv"]
    label[(d_rv < 0) & up] = L["rv"]
    label[(d_la < 0) & down] = L["la"]
    label[(d_ra < 0) & down] = L["ra"]
    if p.condition in ("asd", "vsd"):
        g0, g1 = p.defect[0] * k, p.defect[1] * k
        width = (1.6 * ias if p.condition == "asd" else 1.3 * ivs) * k
        sel = heart & (u >= g0) & (u <= g1) & (np.abs(v) < width)
        left, right = ("ra", "la") if p.condition == "asd" else ("rv", "lv")
        label[sel & (v < 0)] = L[left]
        label[sel & (v >= 0)] = L[right]
    _draw_valves(label, fr, p, k)
    label[~fr.sector] = L["background"]
    return label, fr


def _draw_valves(label: np.ndarray, fr: _Frame, p: PhantomParams, k: float) -> None:
    """Mitral (LV side) and tricuspid (RV side) leaflets hinged at the annulus, opening towards the apex."""
    thick = max(1.6, 0.012 * k)
    opening = p.valve_open
    for name, centre, half, hinge_u, sign in (
        ("mitral", (p.ivs / 2 + p.lv[1]) * k, 0.84 * p.lv[1] * k, 0.0, 1.0),
        ("tricuspid", -(p.ivs / 2 + p.rv[1]) * k, 0.80 * p.rv[1] * k, 0.02 * k, -1.0),
    ):
        for side in (-1.0, 1.0):  # septal and lateral leaflet
            hinge = (hinge_u, centre + side * half)
            length = half * (1.05 if side * sign < 0 else 0.9)
            closed = math.radians(-12.0)  # slightly bowed towards the atrium
            ang = closed + opening * (math.radians(75.0) - closed)
            tip = (hinge[0] + length * math.sin(ang), hinge[1] - side * length * math.cos(ang))
            _stamp_segment(label, fr, hinge, tip, thick, LABELS[name])


# --------------------------------------------------------------------------------------------------
# rendering


def _smooth_field(rng: np.random.Generator, h: int, w: int, cells: int = 12) -> np.ndarray:
    """A smooth random field in about [-1, 1] (low-resolution noise, bicubically upsampled)."""
    low = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC) / 1.5, -1.5, 1.5)


def render_bmode(label: np.ndarray, fr: _Frame, rng: np.random.Generator, *, speckle_scale: float = 1.0,
                 dropout: bool = False, child: bool = False) -> np.ndarray:
    """Render a label map as a pseudo-B-mode image (uint8, same shape). See the module docstring."""
    h, w = label.shape
    px = h / 256.0  # pixel scale relative to the 256-pixel reference size
    echo = _ECHO * rng.uniform(0.85, 1.15, size=_ECHO.shape).astype(np.float32)
    e = echo[label]
    is_tissue = label == LABELS["tissue"]
    texture = _smooth_field(rng, h, w)
    e = np.where(is_tissue, e * np.clip(1.0 + 0.8 * texture, 0.1, None), e * (1.0 + 0.3 * texture))
    walls = (label == LABELS["myocardium"]) | (label == LABELS["ivs"]) | (label == LABELS["ias"]) | (
        label == LABELS["pericardium"])
    if dropout:  # walls parallel to the beam reflect little (specular reflection)
        wf = cv2.GaussianBlur(walls.astype(np.float32), (0, 0), 3.0 * px)
        gx = cv2.Sobel(wf, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(wf, cv2.CV_32F, 0, 1, ksize=3)
        bx, by = np.sin(fr.theta), np.cos(fr.theta)
        cosang = np.abs(gx * bx + gy * by) / (np.sqrt(gx * gx + gy * gy) + 1e-6)
        floor = rng.uniform(0.1, 0.35)
        e = np.where(walls, e * (floor + (1 - floor) * np.sqrt(cosang)), e)
    e = cv2.GaussianBlur(e, (0, 0), 1.2 * px)
    # speckle: complex Gaussian noise on a beam grid (depth × angle), blurred, envelope, scan-converted
    n_r, n_t = max(16, int(fr.R)), max(16, int(w))
    noise = rng.standard_normal((n_r, n_t, 2), dtype=np.float32)
    grain = speckle_scale * (0.8 if child else 1.0)
    sig_ax, sig_lat = 0.8 * px * grain, 2.0 * px * grain
    noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=sig_lat, sigmaY=sig_ax)
    env = np.sqrt(noise[..., 0] ** 2 + noise[..., 1] ** 2)
    env /= np.sqrt(np.mean(env * env)) + 1e-12
    half = float(np.abs(fr.theta[fr.sector]).max()) if fr.sector.any() else 1.0
    map_x = ((fr.theta / half + 1.0) * 0.5 * (n_t - 1)).astype(np.float32)
    map_y = (fr.r / fr.R * (n_r - 1)).astype(np.float32)
    speckle = cv2.remap(env, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    depth = fr.r / fr.R
    alpha = rng.uniform(1.0, 2.2)
    gain = np.exp(-alpha * depth * (1.0 - rng.uniform(0.6, 0.95)))  # attenuation with partial TGC
    lateral = 1.0 - 0.35 * np.clip(np.abs(fr.theta) / half, 0, 1) ** 4
    clutter = 0.3 * np.exp(-depth / 0.07) + 0.004  # near-field haze + noise floor
    x = (e * gain * lateral + clutter) * speckle
    comp = rng.uniform(15.0, 40.0)
    img = np.log1p(comp * x) / math.log1p(comp * 1.4) * rng.uniform(0.9, 1.1)
    edge = cv2.GaussianBlur(fr.sector.astype(np.float32), (0, 0), 0.6 * px)
    img = np.clip(img * edge, 0.0, 1.0)
    return (img * 255.0 + 0.5).astype(np.uint8)


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
               speckle_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, PhantomParams]:
        """One clean sample (image, label map, params), optionally forcing its condition/age."""
        self.check_split(split)
        drawn_cond, drawn_age, _ = self.draw_condition(split, index)
        cond, age = condition or drawn_cond, age or drawn_age
        if cond not in CONDITIONS or age not in AGES:
            raise UsageError(f"phantom: unknown condition {cond!r} or age {age!r}; conditions: {', '.join(CONDITIONS)}")
        params = draw_params(self._rng(split, index, _STREAM_GEOMETRY), cond, age)
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
