"""The phantom's image formation (harness/data/ultrasound.py) against closed forms."""

import math

import numpy as np
import pytest
from scipy import stats

from harness.data.ultrasound import (
    RAYLEIGH_SNR,
    Beam,
    SectorGeometry,
    attenuation,
    envelope,
    log_compress,
    psf_filter,
    scan_convert,
    scatterers,
    tgc,
)

GEOM = SectorGeometry(apex_x=128.0, apex_y=-5.0, r0=10.0, R=250.0, half_angle=math.radians(40), n_r=300, n_t=240)


def test_rayleigh_constant():
    assert RAYLEIGH_SNR == pytest.approx(stats.rayleigh.mean() / stats.rayleigh.std(), rel=1e-12)
    assert RAYLEIGH_SNR == pytest.approx(1.91, abs=0.005)


def test_fully_developed_speckle_envelope_is_rayleigh():
    rng = np.random.default_rng(0)
    field = scatterers(np.ones((GEOM.n_r, GEOM.n_t), np.float32), rng)
    env = envelope(psf_filter(field, GEOM, Beam()))[40:-40, 40:-40]  # away from the zero-padded borders
    assert env.mean() / env.std() == pytest.approx(RAYLEIGH_SNR, rel=0.03)
    assert np.mean(env**2) == pytest.approx(1.0, rel=0.05)  # unit-energy PSF keeps the scatterer power
    sub = env[::8, ::8].ravel()  # roughly independent samples (a few resolution cells apart)
    assert stats.kstest(sub, stats.rayleigh(scale=math.sqrt(0.5)).cdf).pvalue > 0.01
    # not Rayleigh when the scatterers are sparse (few per resolution cell): the SNR test can fail
    sparse = scatterers(np.ones((GEOM.n_r, GEOM.n_t), np.float32), rng, density=0.01)
    env_s = envelope(psf_filter(sparse, GEOM, Beam()))[40:-40, 40:-40]
    assert env_s.mean() / env_s.std() < 0.8 * RAYLEIGH_SNR


def _impulse_widths(beam: Beam, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude-weighted std of the PSF at the given depth rows: (lateral, in pixels of arc; axial, pixels)."""
    field = np.zeros((GEOM.n_r, GEOM.n_t), np.complex64)
    mid = GEOM.n_t // 2
    for i in rows:
        field[i, mid] = 1.0
    out = np.abs(psf_filter(field, GEOM, beam))
    lat, ax = [], []
    idx_t, idx_r = np.arange(GEOM.n_t), np.arange(GEOM.n_r)
    for i in rows:
        prof = out[i]
        std_cols = math.sqrt(np.sum(prof * (idx_t - mid) ** 2) / prof.sum())
        lat.append(std_cols * GEOM.depths()[i] * GEOM.dtheta)
        col = out[max(i - 25, 0):i + 25, mid]
        r = idx_r[max(i - 25, 0):i + 25]
        ax.append(math.sqrt(np.sum(col * (r - i) ** 2) / col.sum()) * GEOM.dr)
    return np.array(lat), np.array(ax)


def test_psf_lateral_width_grows_with_depth_as_configured():
    beam = Beam(axial_sigma=0.006, lateral_near=0.004, lateral_far=0.02)
    rows = [100, 160, 220, 280]
    lat, ax = _impulse_widths(beam, rows)
    expected = beam.lateral_sigma(GEOM.depths()[rows] / GEOM.R) * GEOM.R
    np.testing.assert_allclose(lat, expected, rtol=0.04)
    assert np.all(np.diff(lat) > 0)
    np.testing.assert_allclose(ax, beam.axial_sigma * GEOM.R, rtol=0.04)  # the pulse is the same at every depth
    # a beam configured not to widen gives the same width (in pixels of arc) at every depth
    flat, _ = _impulse_widths(Beam(0.006, 0.01, 0.01), rows)
    np.testing.assert_allclose(flat, 0.01 * GEOM.R, rtol=0.04)


def test_tgc_compensates_known_attenuation_exactly():
    rng = np.random.default_rng(1)
    env = rng.rayleigh(size=(GEOM.n_r, GEOM.n_t)).astype(np.float32)
    depth = (GEOM.depths() / GEOM.R)[:, None]
    alpha = 2.3
    attenuated = env * attenuation(depth, alpha)
    assert attenuated[-1].mean() < 0.2 * attenuated[0].mean() * env[-1].mean() / env[0].mean()
    np.testing.assert_allclose(attenuated * tgc(depth, alpha), env, rtol=1e-5)
    partial = attenuated * tgc(depth, alpha, compensation=0.6)
    np.testing.assert_allclose(partial, env * np.exp(-0.4 * alpha * depth), rtol=1e-5)


def test_scan_conversion_maps_apex_to_transducer():
    x, y = GEOM.polar_to_cart(0.0, GEOM.angles())
    np.testing.assert_allclose(x, GEOM.apex_x, atol=1e-9)
    np.testing.assert_allclose(y, GEOM.apex_y, atol=1e-9)
    r, t = GEOM.cart_to_polar(*GEOM.polar_to_cart(120.0, 0.3))
    assert r == pytest.approx(120.0) and t == pytest.approx(0.3)
    # a beam grid that starts at the transducer: row 0 of the grid lands on the apex pixel
    geom0 = SectorGeometry(apex_x=60.0, apex_y=0.0, r0=0.0, R=100.0, half_angle=0.6, n_r=101, n_t=61)
    beam_img = np.zeros((geom0.n_r, geom0.n_t), np.float32)
    beam_img[0] = 1.0
    img = scan_convert(beam_img, geom0, 110, 120)
    assert img[0, 60] == pytest.approx(1.0) and img[0, 58] < 0.01 and img[3, 60] < 0.01
    # a single bright node lands where polar_to_cart puts it, nothing outside the fan
    beam_img = np.zeros((GEOM.n_r, GEOM.n_t), np.float32)
    beam_img[200, 50] = 1.0
    img = scan_convert(beam_img, GEOM, 256, 256)
    py, px = np.unravel_index(np.argmax(img), img.shape)
    ex, ey = GEOM.polar_to_cart(GEOM.depths()[200], GEOM.angles()[50])
    assert abs(px - ex) <= 1.0 and abs(py - ey) <= 1.0
    ones = scan_convert(np.ones((GEOM.n_r, GEOM.n_t), np.float32), GEOM, 256, 256)
    yy, xx = np.mgrid[0:256, 0:256]
    assert ones[~GEOM.inside(xx, yy)].max() < 1.0 and ones[0, 0] == 0.0 and ones[255, 0] == 0.0


def test_log_compression_maps_dynamic_range():
    env = np.array([1.0, 10 ** (-25 / 20), 10 ** (-50 / 20), 1e-6, 4.0], np.float32)
    np.testing.assert_allclose(log_compress(env, 50.0), [1.0, 0.5, 0.0, 0.0, 1.0], atol=1e-6)
    soft = log_compress(env, 50.0, knee=0.03)
    assert 0 < soft[2] < 0.03 and soft[1] == pytest.approx(0.5, abs=1e-4) and soft[3] < soft[2]
