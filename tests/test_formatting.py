"""Readable numbers (harness/formatting.py) against closed forms: the printed value parses back to the number
within the stated precision."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.formatting import format_frame, interval, p_value, sig, stat


@pytest.mark.parametrize("x", [0.01088, 0.004197, 1.735e-18, 12345.0, -0.0234, 28.73, 0.999, 123456789.0, 7.0])
def test_sig_is_three_significant_digits(x):
    text = sig(x)
    back = float(text.replace(",", ""))
    assert math.isclose(back, float(f"{x:.3g}"), rel_tol=1e-12)  # same rounding as Python's 3-digit %g
    digits = text.replace(",", "").replace("-", "").split("e")[0].replace(".", "").lstrip("0")
    assert len(digits) == 3 or (abs(x) >= 1000 and len(digits.rstrip("0")) <= 3)  # 12,300: zeros fill


def test_sig_examples_from_the_issue():
    assert sig(0.01088) == "0.0109"
    assert sig(1.735e-18) == "1.74e-18"  # not '00000000001'
    assert sig(12345) == "12,300"
    assert sig(float("nan")) == sig(None) == sig(float("inf")) == "—"
    assert sig(0) == "0"


def test_stat_integers_and_half_integers():
    assert stat(11340.5) == "11,340.5"  # not 1.134e+04
    assert stat(11340.0) == stat(np.int64(11340)) == "11,340"
    assert stat(2.345678) == "2.35"
    assert stat(0.5) == "0.500"


def test_p_values():
    assert p_value(0.0004) == "< 0.001"
    assert p_value(0.04321) == "0.043"
    assert p_value(0.5) == "0.5"
    assert p_value(1.0) == "1"
    assert p_value(0.001) == "0.001"
    assert p_value(np.nan) == "—"


def test_interval_symmetric_and_asymmetric():
    assert interval(10.0, 9.0, 11.0) == "10.0 ± 1.0"
    assert interval(0.01088, 0.004197, 0.0244) == "0.0109 [0.00420, 0.0244]"
    assert interval(5.0, np.nan, np.nan) == "5.00"
    assert interval(np.nan, 1.0, 2.0) == ""


def test_format_frame_by_column_meaning():
    df = pd.DataFrame({"source": ["sd"], "n": [1200], "U": [11340.5], "p": [2e-7], "p_holm": [0.0312],
                       "equivalent": [True], "r": [0.123456]})
    row = format_frame(df).iloc[0].to_dict()
    assert row == {"source": "sd", "n": "1,200", "U": "11,340.5", "p": "< 0.001", "p_holm": "0.031",
                   "equivalent": "yes", "r": "0.123"}
