"""The EchoBench leaderboard: a Streamlit app (``app.py``) over the results store.

``data`` (load and pivot the store, pure pandas), ``human`` (ratings ↔ metrics), ``charts`` (altair).
Start it with ``harness leaderboard``.
"""

from pathlib import Path

APP_PATH = Path(__file__).with_name("app.py")
