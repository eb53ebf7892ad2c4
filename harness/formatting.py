"""Numbers as a reader of a paper's tables expects them (one place, used by the leaderboard, its static export
and the human-evaluation report).

- :func:`sig`: 3 significant digits, thousands separators, scientific notation only for tiny or huge values
  (``0.0109``, ``12,300``, ``1.73e-18``);
- :func:`stat`: a test statistic: integers as integers, half-integers (Mann-Whitney U) with one decimal,
  ``11,340.5``, otherwise :func:`sig`;
- :func:`p_value`: 2 significant digits, ``< 0.001`` below 0.001;
- :func:`interval`: ``value ± half-width`` when the interval is (nearly) symmetric, else ``value [low, high]``;
- :func:`format_frame`: a statistics DataFrame with each column formatted by what its name says it holds.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import pandas as pd

MISSING = "—"
#: an interval is printed as ``± half-width`` when its two arms differ by at most this share of its width
SYMMETRY_TOLERANCE = 0.1


def _finite(x) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool) and math.isfinite(float(x))


def sig(x, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits; ``—`` for None/NaN/inf."""
    if not _finite(x):
        return MISSING
    x = float(x)
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if mag < -3 or mag >= 15:
        return f"{x:.{digits - 1}e}".replace("e-0", "e-").replace("e+0", "e+")
    rounded = round(x, digits - 1 - mag)
    decimals = max(digits - 1 - mag, 0)
    return f"{rounded:,.{decimals}f}"


def stat(x, digits: int = 3) -> str:
    """A statistic: ``11,340`` (integral), ``11,340.5`` (a half-integer ≥ 100, e.g. Mann-Whitney U), else
    :func:`sig`."""
    if isinstance(x, Integral) and not isinstance(x, bool):
        return f"{int(x):,}"
    if not _finite(x):
        return MISSING
    x = float(x)
    if x.is_integer() and abs(x) >= 1:
        return f"{int(x):,}"
    if abs(x) >= 100 and (2 * x).is_integer():
        return f"{x:,.1f}"
    if abs(x) >= 10 ** digits:
        return f"{x:,.0f}"
    return sig(x, digits)


def p_value(p) -> str:
    """``< 0.001`` below 0.001, else 2 significant digits (``0.043``, ``0.5``, ``1``)."""
    if not _finite(p):
        return MISSING
    p = float(p)
    if p < 0.001:
        return "< 0.001"
    return f"{p:.2g}"


def interval(value, low, high, digits: int = 3) -> str:
    """``value ± half-width`` for a (nearly) symmetric interval, ``value [low, high]`` otherwise, the bare value
    without one; ``""`` when there is no value."""
    if not _finite(value):
        return ""
    if not (_finite(low) and _finite(high)) or high < low:
        return sig(value, digits)
    width = float(high) - float(low)
    arms = (float(value) - float(low), float(high) - float(value))
    if width > 0 and min(arms) >= 0 and abs(arms[0] - arms[1]) <= SYMMETRY_TOLERANCE * width:
        return f"{sig(value, digits)} ± {sig(width / 2, 2)}"
    return f"{sig(value, digits)} [{sig(low, digits)}, {sig(high, digits)}]"


def is_p_column(name: str) -> bool:
    n = str(name).lower()
    return n == "p" or n.startswith(("p_", "p ")) or n.endswith((" p", "_p", "(ties)", "(no ties)")) or " p " in n


def is_count_column(name: str) -> bool:
    n = str(name).lower()
    return n in ("n", "count", "dof", "df", "k") or n.startswith("n_") or n.endswith("_n")


def format_value(name: str, v) -> str:
    """One cell of a statistics table (see :func:`format_frame`)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, Real):
        if is_p_column(name):
            return p_value(v)
        if is_count_column(name) and _finite(v) and float(v).is_integer():
            return f"{int(v):,}"
        return stat(v)
    return str(v)


def format_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with every cell a string: p-value columns (``p``, ``p_*``, ``… p``) by
    :func:`p_value`, counts (``n``, ``n_*``, ``count``, ``dof``) as integers with thousands separators,
    other numbers by :func:`stat`, booleans as yes/no, missing values empty."""
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        out[col] = [format_value(col, v.item() if hasattr(v, "item") else v) for v in df[col]]
    return out
