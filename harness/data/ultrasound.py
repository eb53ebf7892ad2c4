"""Fast 2-D ultrasound image formation in beam (polar) coordinates: the convolution model of B-mode.

The classic model (Bamber & Dickinson 1980; Gao et al. 2009, "COLE"): the received complex (IQ) signal is the
tissue's scatterer field convolved with the system's point-spread function (PSF); the B-mode image is its
envelope, attenuated with depth, compensated by time-gain compensation (TGC), log-compressed and scan-converted
from beam coordinates (depth × angle) to the displayed fan. Everything here works on arrays and an explicit
``numpy.random.Generator``; :mod:`harness.data.phantom` supplies the anatomy.

Pieces (each tested against a closed form in ``tests/data/test_ultrasound.py``):

* :class:`SectorGeometry`: the fan (transducer position, first and last depth, half angle) and its beam grid
  of ``n_r`` depths × ``n_t`` beam angles; :meth:`~SectorGeometry.polar_to_cart`,
  :meth:`~SectorGeometry.cart_to_grid`, :func:`to_beam` (sample an image or label map on the beam grid) and
  :func:`scan_convert` (beam grid → Cartesian image, bilinear, black outside the fan).
* :func:`scatterers`: circular complex Gaussian scatterer field with amplitude √(echogenicity) and, where the
  scatterer density is below 1, sparse scatterers (blood: few, weak → faint clutter instead of speckle).
* :class:`Beam` and :func:`psf_filter`: a Gaussian axial pulse (baseband, stationary) and a Gaussian lateral
  beam profile whose width grows linearly with depth (``lateral_sigma(d) = near + (far - near) · d``, lengths
  in units of the sector depth). Both are applied as 1-D FFT convolutions; the lateral one uses a different
  transfer function on every depth row, so the PSF varies with depth exactly as configured.
* :func:`envelope` (magnitude of the IQ signal: Rayleigh for fully developed speckle, mean/std = 1.91),
  :func:`attenuation` and :func:`tgc` (amplitude factors ``exp(∓ α d)``; full TGC undoes a known attenuation
  exactly), :func:`log_compress` (decibels over a dynamic range → [0, 1]).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.fft as sfft

#: mean / standard deviation of a Rayleigh-distributed envelope: sqrt(pi / (4 - pi))
RAYLEIGH_SNR = math.sqrt(math.pi / (4.0 - math.pi))


@dataclass(frozen=True)
class SectorGeometry:
    """A fan-shaped ultrasound sector and its beam grid (all lengths in output pixels).

    The transducer sits at ``(apex_x, apex_y)``; beams leave it at angles ``theta`` in
    ``[-half_angle, half_angle]`` from the downward vertical (+ = image right) and are sampled at ``n_r`` depths
    from ``r0`` to ``R``.
    """

    apex_x: float
    apex_y: float
    r0: float
    R: float
    half_angle: float
    n_r: int
    n_t: int

    @property
    def dr(self) -> float:
        """Depth spacing of the beam grid (pixels)."""
        return (self.R - self.r0) / (self.n_r - 1)

    @property
    def dtheta(self) -> float:
        """Angle spacing of the beam grid (radians)."""
        return 2.0 * self.half_angle / (self.n_t - 1)

    def depths(self) -> np.ndarray:
        """Depth of each beam-grid row (pixels), float32 (n_r,)."""
        return (self.r0 + self.dr * np.arange(self.n_r)).astype(np.float32)

    def angles(self) -> np.ndarray:
        """Angle of each beam-grid column (radians), float32 (n_t,)."""
        return (-self.half_angle + self.dtheta * np.arange(self.n_t)).astype(np.float32)

    def polar_to_cart(self, r, theta) -> tuple[np.ndarray, np.ndarray]:
        """(depth, angle) → Cartesian pixel coordinates (x, y); depth 0 is the transducer."""
        r, theta = np.asarray(r, dtype=np.float64), np.asarray(theta, dtype=np.float64)
        return self.apex_x + r * np.sin(theta), self.apex_y + r * np.cos(theta)

    def cart_to_polar(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Cartesian pixel coordinates → (depth, angle)."""
        dx, dy = np.asarray(x) - self.apex_x, np.asarray(y) - self.apex_y
        return np.sqrt(dx * dx + dy * dy), np.arctan2(dx, dy)

    def cart_to_grid(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Cartesian pixel coordinates → fractional beam-grid indices (row = depth index, column = angle index)."""
        r, theta = self.cart_to_polar(x, y)
        return (r - self.r0) / self.dr, (theta + self.half_angle) / self.dtheta

    def grid_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Cartesian (x, y) of every beam-grid node, float32 (n_r, n_t) each."""
        x, y = self.polar_to_cart(self.depths()[:, None], self.angles()[None, :])
        return x.astype(np.float32), y.astype(np.float32)

    def inside(self, x, y) -> np.ndarray:
        """Whether Cartesian points lie inside the fan."""
        r, theta = self.cart_to_polar(x, y)
        return (r >= self.r0) & (r <= self.R) & (np.abs(theta) <= self.half_angle)


@functools.lru_cache(maxsize=16)
def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return xx, yy


def scan_maps(geom: SectorGeometry, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps (column, row) that look up every output pixel on the beam grid."""
    xx, yy = pixel_grid(h, w)
    gr, gt = geom.cart_to_grid(xx, yy)
    return gt.astype(np.float32), gr.astype(np.float32)


def scan_convert(beam_image: np.ndarray, geom: SectorGeometry, h: int, w: int,
                 maps: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Beam-grid image (n_r, n_t) → Cartesian (h, w), bilinear, 0 outside the fan (float32), sharp-edged.

    ``maps``: :func:`scan_maps` of the same geometry and size, when already computed."""
    map_x, map_y = maps if maps is not None else scan_maps(geom, h, w)
    out = cv2.remap(np.ascontiguousarray(beam_image, dtype=np.float32), map_x, map_y, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)  # edge pixels are not darkened by the outside ...
    out[(map_y < 0) | (map_y > geom.n_r - 1) | (map_x < 0) | (map_x > geom.n_t - 1)] = 0.0  # ... which is black
    return out


def to_beam(image: np.ndarray, geom: SectorGeometry, *, nearest: bool = False) -> np.ndarray:
    """Sample a Cartesian image or label map at the beam-grid nodes → (n_r, n_t)."""
    x, y = geom.grid_positions()
    return cv2.remap(np.ascontiguousarray(image), x, y, cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def scatterers(echogenicity: np.ndarray, rng: np.random.Generator, density: np.ndarray | float = 1.0) -> np.ndarray:
    """Complex scatterer field (complex64) with E|s|² = ``echogenicity`` per cell.

    Where ``density`` < 1 only that fraction of the cells holds a scatterer (amplitude raised by
    1/√density so that the mean power is kept): with a PSF wider than a cell, density ≳ 1 per resolution cell
    gives fully developed (Rayleigh) speckle and small densities give sparse bright points.
    """
    amp = np.sqrt(np.maximum(echogenicity, 0.0)).astype(np.float32)
    z = rng.standard_normal(amp.shape + (2,), dtype=np.float32)
    field = (z[..., 0] + 1j * z[..., 1]).astype(np.complex64) * np.float32(math.sqrt(0.5))
    density = np.asarray(density, dtype=np.float32)
    if np.any(density < 1.0):
        keep = rng.random(amp.shape, dtype=np.float32) < density
        amp = np.where(keep, amp / np.sqrt(np.maximum(density, 1e-6)), 0.0).astype(np.float32)
    return field * amp


@dataclass(frozen=True)
class Beam:
    """Point-spread function of the imaging system (lengths in units of the sector depth R).

    ``axial_sigma``: standard deviation of the Gaussian pulse envelope along the beam.
    ``lateral_near`` / ``lateral_far``: standard deviation of the Gaussian lateral beam profile at depth 0 and
    at depth R; in between it grows linearly (:meth:`lateral_sigma`).
    """

    axial_sigma: float = 0.006
    lateral_near: float = 0.004
    lateral_far: float = 0.016

    def lateral_sigma(self, depth_fraction) -> np.ndarray:
        """Lateral PSF standard deviation (units of R) at depth ``depth_fraction`` (0 = transducer, 1 = R)."""
        d = np.asarray(depth_fraction, dtype=np.float64)
        return self.lateral_near + (self.lateral_far - self.lateral_near) * d

    def scaled(self, factor: float) -> Beam:
        """The same beam with every width × ``factor`` (coarser or finer speckle grain)."""
        return Beam(self.axial_sigma * factor, self.lateral_near * factor, self.lateral_far * factor)


def _gaussian_transfer(n: int, sigma: np.ndarray) -> np.ndarray:
    """Fourier transform of a unit-sum Gaussian of std ``sigma`` samples at the FFT frequencies of length ``n``.

    ``sigma`` may be an array (one transfer function per leading index)."""
    f = sfft.fftfreq(n).astype(np.float32)
    s = np.asarray(sigma, dtype=np.float32)[..., None]
    return np.exp(-2.0 * (math.pi**2) * (s * s) * (f * f)).astype(np.float32)


def psf_filter(field: np.ndarray, geom: SectorGeometry, beam: Beam) -> np.ndarray:
    """Convolve a beam-grid field with the depth-dependent PSF of ``beam`` (FFT, zero-padded, complex64).

    Axial: one Gaussian of ``beam.axial_sigma · R`` along every beam. Lateral: on the row at depth r, a Gaussian
    of ``beam.lateral_sigma(r / R) · R`` pixels of arc, i.e. ``/ (r · dθ)`` beam-grid columns (capped at a
    quarter of the sector near the transducer, where the arc is shorter than the beam). The PSF has unit energy
    (sum of squares 1), so fully developed speckle keeps the mean power of its scatterers.
    """
    n_r, n_t = field.shape
    sig_r = beam.axial_sigma * geom.R / geom.dr
    r = geom.depths().astype(np.float64)
    sig_t = beam.lateral_sigma(r / geom.R) * geom.R / np.maximum(r * geom.dtheta, 1e-6)
    sig_t = np.minimum(sig_t, n_t / 4.0)
    pad_r = sfft.next_fast_len(n_r + int(math.ceil(4 * sig_r)) + 1)
    pad_t = sfft.next_fast_len(n_t + int(math.ceil(4 * float(sig_t.max()))) + 1)
    h_r = _gaussian_transfer(pad_r, sig_r)
    h_t = _gaussian_transfer(pad_t, sig_t)
    # unit energy (sum of squares 1, Parseval): white scatterers keep their mean power through the filter
    h_r /= np.sqrt(np.mean(h_r * h_r))
    h_t /= np.sqrt(np.mean(h_t * h_t, axis=-1, keepdims=True))
    F = sfft.fft(field, n=pad_r, axis=0)
    F *= h_r[:, None]
    x = sfft.ifft(F, axis=0)[:n_r]
    G = sfft.fft(x, n=pad_t, axis=1)
    G *= h_t
    return sfft.ifft(G, axis=1)[:, :n_t].astype(np.complex64)


def envelope(iq: np.ndarray) -> np.ndarray:
    """Envelope (magnitude) of an IQ signal, float32."""
    return np.abs(iq).astype(np.float32)


def attenuation(depth_fraction, alpha: float) -> np.ndarray:
    """Round-trip amplitude attenuation ``exp(-alpha · d)`` at depth fraction d (alpha in nepers per R)."""
    return np.exp(-alpha * np.asarray(depth_fraction, dtype=np.float64)).astype(np.float32)


def tgc(depth_fraction, alpha: float, compensation: float = 1.0) -> np.ndarray:
    """Time-gain compensation for attenuation ``alpha``: ``exp(+compensation · alpha · d)``.

    ``compensation = 1`` undoes :func:`attenuation` exactly; sonographers usually leave some depth falloff.
    """
    return np.exp(compensation * alpha * np.asarray(depth_fraction, dtype=np.float64)).astype(np.float32)


def log_compress(env: np.ndarray, dynamic_range_db: float, reference: float = 1.0, knee: float = 0.0) -> np.ndarray:
    """Envelope → display value in [0, 1]: ``x = 1 + 20 log10(env / reference) / dynamic_range_db``, clipped.

    ``reference`` is shown white; ``dynamic_range_db`` below it is black. ``knee > 0`` replaces the hard black
    clip by a soft one (``knee · softplus(x / knee)``), as display maps do, so that the darkest echoes are
    compressed towards black instead of being cut.
    """
    x = 1.0 + 20.0 * np.log10(np.maximum(env / reference, 1e-12)) / dynamic_range_db
    if knee > 0:
        x = knee * np.logaddexp(0.0, x / knee)
    return np.clip(x, 0.0, 1.0).astype(np.float32)
