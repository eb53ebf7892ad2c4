"""Weight-free ultrasound texture and intensity features (``radiomics``), built on scikit-image.

In the spirit of the Fréchet Radiomic Distance (Konz et al. 2025): hand-crafted, deterministic features
that run offline, here tuned for echocardiography (speckle, sector geometry, tint). Distances in this
space are reported as ``FD_radiomics``, never FID.

Pipeline for one image
----------------------
1. ``to_rgb``, then PIL bilinear (antialiased) resize of the uint8 RGB image to 128×128 (``WORK_SIZE``),
   values scaled to [0, 1]. Grayscale Y = 0.299 R + 0.587 G + 0.114 B (BT.601 luma).
2. Sector mask: pixels whose brightest channel exceeds 10/255, filled row-wise between the first and the
   last such pixel of each row (a fan is row-convex, so dark chambers inside it stay in the mask). With
   fewer than 64 mask pixels the whole image is used.
3. Features, in this fixed order (``feature_names()`` gives all 97 names; ``DIM = 97``):

   ========================  ===  =====================================================================
   block                     n    content (inside the mask)
   ========================  ===  =====================================================================
   first-order               12   mean, std, skew*, kurtosis* (excess), entropy (32 bins, bits),
                                  percentiles 5/25/50/75/95, speckle SNR (log(mean/std)), mask fraction
   histogram                 16   fraction of pixels in 16 equal Y bins on [0, 1]
   colour                    5    mean Cb = B−Y, mean Cr = R−Y, mean/std/95th pct of chroma √(Cb²+Cr²)
   GLCM                      21   contrast†, dissimilarity†, homogeneity, ASM‡, energy, correlation at
                                  distances 1, 2, 4 (mean over 0°, 45°, 90°, 135°), and anisotropy
                                  log((contrast 0° + ε)/(contrast 90° + ε)) per distance
   LBP                       28   uniform LBP histograms, P=8 R=1 (10 bins) and P=16 R=2 (18 bins)
   gradient                  3    Sobel magnitude mean, std, 90th pct
   multi-scale               12   at 64×64 and 32×32 (block means): std, speckle SNR, GLCM d=1 contrast†,
                                  homogeneity, correlation, Sobel mean
   ========================  ===  =====================================================================

   The GLCM uses 16 gray levels (``GLCM_LEVELS``) inside the mask; pixel pairs that leave the mask are
   not counted (outside pixels get an extra level 0 that is dropped). LBP and gradient statistics use the
   mask eroded by 2 px so that the sector border is not counted as texture.

Scale transforms (fixed, no data-dependent standardisation): FD weighs every coordinate equally, so
features are kept in comparable O(1) ranges. Most features already lie in [0, 1] (intensities,
fractions, homogeneity, energy, correlation) or a few units (entropy). The heavy-tailed ones are
compressed: * signed ``log1p`` (skew, kurtosis), † ``log1p`` (GLCM contrast and dissimilarity, up to 225
and 15), ‡ ``log`` (ASM, which spans orders of magnitude), and the speckle SNR is a log-ratio.

Speed: about 9 ms per 256×256 image on one core of the development machine (~115 images/s).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.data.base import to_rgb
from harness.errors import UsageError
from harness.features.base import FeatureExtractor
from harness.registry import features

WORK_SIZE = 128
BLACK_LEVEL = 10 / 255
MIN_MASK_PIXELS = 64
GLCM_LEVELS = 16
GLCM_DISTANCES = (1, 2, 4)
GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "ASM", "energy", "correlation")
LBP_SETTINGS = ((8, 1), (16, 2))
PERCENTILES = (5, 25, 50, 75, 95)
HIST_BINS = 16
ENTROPY_BINS = 32
EPS = 1e-6
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def feature_names() -> list[str]:
    """Names of the ``DIM`` features, in output order."""
    names = ["mean", "std", "skew", "kurtosis", "entropy", *[f"p{p}" for p in PERCENTILES], "snr", "mask_fraction"]
    names += [f"hist{i:02d}" for i in range(HIST_BINS)]
    names += ["cb_mean", "cr_mean", "chroma_mean", "chroma_std", "chroma_p95"]
    names += [f"glcm_{p}_d{d}" for d in GLCM_DISTANCES for p in GLCM_PROPS]
    names += [f"glcm_anisotropy_d{d}" for d in GLCM_DISTANCES]
    for P, R in LBP_SETTINGS:
        names += [f"lbp_P{P}R{R}_{i:02d}" for i in range(P + 2)]
    names += ["grad_mean", "grad_std", "grad_p90"]
    for s in (2, 4):
        parts = ("std", "snr", "glcm_contrast", "glcm_homogeneity", "glcm_correlation", "grad_mean")
        names += [f"s{s}_{n}" for n in parts]
    return names


DIM = len(feature_names())


# preprocessing ---------------------------------------------------------------------------------
def working_image(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 image (H, W[, C]) → (rgb float64 (128,128,3) in [0,1], luma Y (128,128), sector mask)."""
    from PIL import Image

    rgb8 = to_rgb(np.asarray(image, dtype=np.uint8))
    if rgb8.shape[:2] != (WORK_SIZE, WORK_SIZE):
        rgb8 = np.asarray(Image.fromarray(rgb8).resize((WORK_SIZE, WORK_SIZE), Image.BILINEAR))
    rgb = rgb8.astype(np.float64) / 255.0
    y = rgb @ LUMA
    return rgb, y, sector_mask(rgb.max(axis=2))


def sector_mask(brightness: np.ndarray) -> np.ndarray:
    """Row-wise fill between the first and last pixel brighter than ``BLACK_LEVEL`` (see module doc)."""
    bright = brightness > BLACK_LEVEL
    w = bright.shape[1]
    any_row = bright.any(axis=1)
    left = np.argmax(bright, axis=1)
    right = w - 1 - np.argmax(bright[:, ::-1], axis=1)
    cols = np.arange(w)
    mask = (cols[None, :] >= left[:, None]) & (cols[None, :] <= right[:, None]) & any_row[:, None]
    if mask.sum() < MIN_MASK_PIXELS:
        mask = np.ones_like(mask)
    return mask


def erode(mask: np.ndarray, iterations: int = 2) -> np.ndarray:
    """3×3 binary erosion (falls back to ``mask`` when nothing would remain)."""
    from scipy.ndimage import binary_erosion

    out = binary_erosion(mask, iterations=iterations, border_value=0)
    return out if out.sum() >= MIN_MASK_PIXELS else mask


def quantise(y: np.ndarray, mask: np.ndarray, levels: int = GLCM_LEVELS) -> np.ndarray:
    """Y in [0,1] → uint8 gray levels 1..``levels`` inside the mask, 0 outside (dropped from the GLCM)."""
    q = 1 + np.minimum((y * levels).astype(np.int64), levels - 1)
    return np.where(mask, q, 0).astype(np.uint8)


# feature blocks --------------------------------------------------------------------------------
def _slog1p(x: float) -> float:
    return float(np.sign(x) * np.log1p(abs(x)))


def percentiles(sorted_values: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """``np.percentile(values, qs)`` (default 'linear' method) from already sorted values."""
    pos = np.asarray(qs, dtype=np.float64) / 100.0 * (sorted_values.size - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, sorted_values.size - 1)
    return sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])


def first_order(values: np.ndarray, mask_fraction: float) -> list[float]:
    """12 first-order statistics of the masked intensities (biased skew/kurtosis as ``scipy.stats``)."""
    mean, std = float(values.mean()), float(values.std())
    if std > 0:
        z2 = ((values - mean) / std) ** 2
        skew = float(np.mean(z2 * (values - mean)) / std)
        kurt = float(np.mean(z2 * z2) - 3.0)
    else:
        skew = kurt = 0.0
    counts = np.bincount(np.minimum((values * ENTROPY_BINS).astype(np.int64), ENTROPY_BINS - 1), minlength=ENTROPY_BINS)
    p = counts[counts > 0] / values.size
    entropy = float(-(p * np.log2(p)).sum())
    pct = percentiles(np.sort(values), PERCENTILES)
    snr = float(np.log((mean + EPS) / (std + EPS)))
    return [mean, std, _slog1p(skew), _slog1p(kurt), entropy, *pct.tolist(), snr, mask_fraction]


def histogram(values: np.ndarray) -> list[float]:
    counts = np.bincount(np.minimum((values * HIST_BINS).astype(np.int64), HIST_BINS - 1), minlength=HIST_BINS)
    return (counts / values.size).tolist()


def colour(rgb: np.ndarray, y: np.ndarray, mask: np.ndarray) -> list[float]:
    cb = rgb[..., 2][mask] - y[mask]
    cr = rgb[..., 0][mask] - y[mask]
    chroma = np.sqrt(cb**2 + cr**2)
    p95 = percentiles(np.sort(chroma), (95,))[0]
    return [float(cb.mean()), float(cr.mean()), float(chroma.mean()), float(chroma.std()), float(p95)]


def glcm_props(P: np.ndarray) -> dict[str, np.ndarray]:
    """``skimage.feature.graycoprops`` for all of ``GLCM_PROPS`` at once (same formulas and conventions:
    each (distance, angle) matrix normalised to sum 1, an empty matrix left at 0, correlation 1 where a
    marginal standard deviation is below 1e-15). Returns ``{prop: array (n_distances, n_angles)}``."""
    P = P.astype(np.float64)
    sums = P.sum(axis=(0, 1), keepdims=True)
    sums[sums == 0] = 1
    P = P / sums
    n = P.shape[0]
    I = np.arange(n, dtype=np.float64).reshape(n, 1, 1, 1)
    J = I.reshape(1, n, 1, 1)
    d2 = (I - J) ** 2
    asm = np.sum(P * P, axis=(0, 1))
    di = I - np.sum(I * P, axis=(0, 1))
    dj = J - np.sum(J * P, axis=(0, 1))
    std_i = np.sqrt(np.sum(P * di**2, axis=(0, 1)))
    std_j = np.sqrt(np.sum(P * dj**2, axis=(0, 1)))
    cov = np.sum(P * di * dj, axis=(0, 1))
    flat = (std_i < 1e-15) | (std_j < 1e-15)
    corr = np.where(flat, 1.0, cov / np.where(flat, 1.0, std_i * std_j))
    return {
        "contrast": np.sum(P * d2, axis=(0, 1)),
        "dissimilarity": np.sum(P * np.sqrt(d2), axis=(0, 1)),
        "homogeneity": np.sum(P / (1.0 + d2), axis=(0, 1)),
        "ASM": asm,
        "energy": np.sqrt(asm),
        "correlation": corr,
    }


def glcm_matrix(q: np.ndarray, distances: Sequence[int] = GLCM_DISTANCES) -> np.ndarray:
    """Symmetric co-occurrence counts of levels 1..``GLCM_LEVELS`` (pairs touching level 0 dropped)."""
    from skimage.feature import graycomatrix

    return graycomatrix(q, list(distances), list(GLCM_ANGLES), levels=GLCM_LEVELS + 1, symmetric=True)[1:, 1:]


def glcm_raw(q: np.ndarray, distances: Sequence[int] = GLCM_DISTANCES) -> dict[str, np.ndarray]:
    """GLCM properties of the masked quantised image: ``{prop: array (n_distances, n_angles)}``."""
    return glcm_props(glcm_matrix(q, distances))


def glcm_block(raw: dict[str, np.ndarray]) -> list[float]:
    """21 features from :func:`glcm_raw` (mean over angles, transforms of the module docstring)."""
    out: list[float] = []
    for i in range(len(GLCM_DISTANCES)):
        m = {p: float(raw[p][i].mean()) for p in GLCM_PROPS}
        out += [np.log1p(m["contrast"]), np.log1p(m["dissimilarity"]), m["homogeneity"],
                float(np.log(m["ASM"] + EPS)), m["energy"], m["correlation"]]
    c = raw["contrast"]
    out += [float(np.log((c[i, 0] + EPS) / (c[i, 2] + EPS))) for i in range(len(GLCM_DISTANCES))]
    return [float(v) for v in out]


def lbp_block(y8: np.ndarray, inner: np.ndarray) -> list[float]:
    from skimage.feature import local_binary_pattern

    out: list[float] = []
    for P, R in LBP_SETTINGS:
        codes = local_binary_pattern(y8, P, R, method="uniform").astype(np.int64)[inner]
        out += (np.bincount(codes, minlength=P + 2)[: P + 2] / max(codes.size, 1)).tolist()
    return out


def gradient(y: np.ndarray, inner: np.ndarray) -> np.ndarray:
    from skimage.filters import sobel

    return sobel(y)[inner]


def downsample(y: np.ndarray, mask: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Block-mean downsampling by ``factor``; a block is in the mask when most of it is."""
    h, w = y.shape
    ys = y.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
    ms = mask.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3)) > 0.5
    if ms.sum() < 16:
        ms = np.ones_like(ms)
    return ys, ms


def multiscale(y: np.ndarray, mask: np.ndarray, factor: int) -> list[float]:
    ys, ms = downsample(y, mask, factor)
    v = ys[ms]
    mean, std = float(v.mean()), float(v.std())
    raw = glcm_raw(quantise(ys, ms), distances=(1,))
    inner = erode(ms, 1) if ms.sum() > MIN_MASK_PIXELS else ms
    return [std, float(np.log((mean + EPS) / (std + EPS))), float(np.log1p(raw["contrast"].mean())),
            float(raw["homogeneity"].mean()), float(raw["correlation"].mean()), float(gradient(ys, inner).mean())]


def radiomics_features(image: np.ndarray) -> np.ndarray:
    """All ``DIM`` features of one uint8 image (H, W[, C]) as float64."""
    rgb, y, mask = working_image(image)
    values = y[mask]
    inner = erode(mask)
    g = gradient(y, inner)
    y8 = np.round(y * 255).astype(np.uint8)
    feats = (
        first_order(values, float(mask.mean()))
        + histogram(values)
        + colour(rgb, y, mask)
        + glcm_block(glcm_raw(quantise(y, mask)))
        + lbp_block(y8, inner)
        + [float(g.mean()), float(g.std()), float(percentiles(np.sort(g), (90,))[0])]
        + multiscale(y, mask, 2)
        + multiscale(y, mask, 4)
    )
    return np.asarray(feats, dtype=np.float64)


@features.register("radiomics")
class RadiomicsExtractor(FeatureExtractor):
    """Weight-free ultrasound texture/intensity features (scikit-image)."""

    description = (
        "Weight-free ultrasound texture/intensity features (first-order, GLCM, LBP, gradient, colour; scikit-image)"
    )
    feature_space = "radiomics"
    substitute = False
    dim = DIM
    preprocessing_version = "1"

    def __init__(self, *, device: str = "auto", batch_size: int = 32, weights: str | None = None):
        if weights is not None:
            raise UsageError(f"radiomics features take no weights (got {weights!r})")
        super().__init__(device=device, batch_size=batch_size, weights=None)

    def extract_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 images of any size → float32 (B, 97). ``device`` is ignored (CPU, one process)."""
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([radiomics_features(im) for im in images]).astype(np.float32)
