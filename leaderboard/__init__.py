"""The EchoBench leaderboard: a Streamlit app (``app.py``) over the results store.

``data`` (read the store: results with their stored substitute flag, baseline and stand-in roles),
``table`` (the leaderboard table: reference rows, headline columns, readable cells, pure pandas), ``thumbs``
(thumbnail strips and the gallery), ``human`` (ratings ↔ metrics), ``charts`` (altair), ``export`` (the
static site). Start it with ``harness leaderboard``; publish it with ``harness leaderboard --export DIR``.
"""

from pathlib import Path

APP_PATH = Path(__file__).with_name("app.py")
