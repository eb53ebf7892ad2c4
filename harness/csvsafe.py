"""CSV files people open in spreadsheets: neutralise formula injection (OWASP "CSV Injection").

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a formula by
Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)`` in a rater's comment). Every CSV EchoBench writes
for people (rating exports, invitations, ``harness export``) prefixes such cells with a single quote ``'``,
OWASP's recommendation: spreadsheets then show the text as typed. Numbers are left alone (``-0.3`` stays a
number). The importer (:mod:`human_eval.schema`) removes that one quote again, so an export re-imports to the
same values.
"""

from __future__ import annotations

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PATTERN = r"^(?=[=+\-@\t\r])"
_UNDO = r"^'(?=[=+\-@\t\r])"


def neutralise(value: object) -> object:
    """One cell: ``'`` + text when the text starts like a formula; anything else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells cannot run as spreadsheet formulas (numeric columns untouched)."""
    out = frame.copy()
    for c in out.columns:
        col = out[c]
        if col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
            out[c] = col.map(neutralise)
    if out.columns.dtype == object:
        out.columns = [neutralise(c) for c in out.columns]
    return out


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as UTF-8 CSV bytes, spreadsheet-safe (no index)."""
    return spreadsheet_safe(frame).to_csv(index=False).encode("utf-8")


def undo_neutralise(s: pd.Series) -> pd.Series:
    """Inverse on import: drop the one ``'`` that :func:`neutralise` put before a formula-like text."""
    return s.str.replace(_UNDO, "", regex=True)
