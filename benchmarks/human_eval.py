"""Human-evaluation speed: the full report (without figures) for the paper-sized study (680 ratings) and
for 1,000,000 synthetic ratings, plus CSV validation and the database import of the large study.

    python benchmarks/human_eval.py [--big N]

Targets (issue #9): < 2 s for 680 ratings, < 60 s for 1,000,000, on a 2-core CPU. Times are wall seconds
measured in this process after the libraries are imported (their import time is printed separately).
"""

from __future__ import annotations

# isort: off
import _isolate  # noqa: F401  (first: keeps benchmarks/ off sys.path, where tasks.py would shadow the tasks package)
# isort: on

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def big_study(n: int, seed: int = 0) -> pd.DataFrame:
    """n ratings: each image rated by 4 of 2,000 participants (so agreement statistics have work to do)."""
    rng = np.random.default_rng(seed)
    sources = np.array(["real", "cut", "cyclegan", "sd"])
    row = np.arange(n)
    image = row // 4
    participant = row % 4 + 4 * (image % 500)  # 4 distinct raters per image, 2,000 participants in all
    src = sources[(image // 500) % 4]  # every participant rates all four sources
    shift = pd.Series(src).map({"real": 0.0, "cut": -0.6, "cyclegan": -0.4, "sd": 0.8}).to_numpy()
    rating = np.clip(np.rint(3 + shift + rng.normal(0, 1.3, n)), 1, 5).astype(int)
    return pd.DataFrame({
        "participant_id": np.char.add("P", np.char.zfill(participant.astype(str), 5)),
        "image_id": np.char.add(np.char.add(src, "_"), np.char.zfill(image.astype(str), 7)),
        "source": src,
        "rating": rating,
        "walls_not_visible": rng.random(n) < 0.1,
    })


def validate_and_report(read_study, report_tables, label: str, target_s: float, *paths):
    """Time CSV validation and the figure-free report for one study; print both against the target."""
    t = time.perf_counter()
    tables = read_study(*paths)
    t_read = time.perf_counter() - t
    t = time.perf_counter()
    report_tables(tables)
    t_report = time.perf_counter() - t
    verdict = "met" if t_read + t_report < target_s else "NOT met"
    print(f"{label}: validate {t_read:.2f} s, report without figures {t_report:.2f} s (target < {target_s:g} s: {verdict})")
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=1_000_000)
    args = parser.parse_args()

    t0 = time.perf_counter()
    from harness.store import Store
    from human_eval.db import import_study
    from human_eval.examples import make_example_study
    from human_eval.report import report_tables
    from human_eval.schema import read_study

    print(f"machine: {platform.machine()}, {platform.python_version()}; imports {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ratings, participants = make_example_study()
        ratings.to_csv(tmp / "ratings.csv", index=False)
        participants.to_csv(tmp / "participants.csv", index=False)
        validate_and_report(read_study, report_tables, "680 ratings", 2.0, tmp / "ratings.csv", tmp / "participants.csv")

        frame = big_study(args.big)
        frame.to_csv(tmp / "big.csv", index=False)
        n = len(frame)
        del frame
        big = validate_and_report(read_study, report_tables, f"{n:,} ratings", 60.0, tmp / "big.csv")
        t = time.perf_counter()
        import_study(Store(f"sqlite:///{tmp / 'big.db'}"), big, "big")
        print(f"{n:,} ratings: import into SQLite {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
