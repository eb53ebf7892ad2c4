"""The clinician rating app (the paper's "CardioQuestionnaire"): a Streamlit page over the results store.

``service`` (every read and write: study setup, sign-in, next image, submit, progress, export), ``design``
(balanced Latin square, seeded draws), ``i18n`` + ``catalogues`` (en/ru/kk) and ``app.py`` (the page).
Start it with ``harness human app``.
"""

from pathlib import Path

APP_PATH = Path(__file__).with_name("app.py")
