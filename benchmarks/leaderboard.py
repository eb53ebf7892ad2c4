"""Time to first render of the leaderboard's main table: 1,000 runs × 20 metrics in SQLite (target < 2 s).

    python benchmarks/leaderboard.py [--runs 1000] [--metrics 20] [--repeat 3] [--db PATH]

Fills a fresh SQLite store through :class:`harness.store.Store` (the runner's own write path) with
benchmark rows (generator ``bench-<i>``, one checkpoint per run, values drawn from a seeded RNG: these are
timing fixtures, not results), then times ``AppTest.run()`` of the packaged app — the full first script
run that renders the page with the main table — in a fresh AppTest each repeat (Streamlit's caches
cleared, so every repeat reads the database again). Also reports the pure load + pivot time.
"""

from __future__ import annotations

# isort: off
import _isolate  # noqa: F401  (first: keeps benchmarks/ off sys.path, where tasks.py would shadow the tasks package)
# isort: on

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np


def fill(url: str, runs: int, metrics: int, seed: int = 0) -> None:
    from sqlalchemy import insert

    from harness.store import Result, Run, Store

    store = Store(url)
    rng = np.random.default_rng(seed)
    spaces = ["radiomics", "inception", "dinov2", "random-inception"]
    names = [(f"M{j}", spaces[j % len(spaces)], bool(j % 3 == 2)) for j in range(metrics)]
    run_rows, result_rows = [], []
    for i in range(runs):
        rid = str(uuid.uuid4())
        run_rows.append(dict(id=rid, generator=f"bench-{i % 50}", checkpoint_hash=f"{i:064x}", data_source="phantom",
                             reference="phantom:reference", n=200 + 100 * (i % 3), seed=i, config={"benchmark": True},
                             versions={}, git_sha=None, status="ok"))
        for name, space, up in names:
            v = float(rng.gamma(2.0, 5.0))
            result_rows.append(dict(run_id=rid, task="bench", metric=f"{name}_{space}", value=v, ci_low=v * 0.9,
                                    ci_high=v * 1.1, n=200, feature_space=space, higher_is_better=up,
                                    details={"points": [[1 / 200, v], [1 / 100, v + 1]]}))
    with store.session() as s, s.begin():
        s.execute(insert(Run), run_rows)
        s.execute(insert(Result), result_rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--metrics", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--db", type=Path, default=None, help="SQLite file to create (default: a temp file)")
    args = ap.parse_args(argv)

    from streamlit.testing.v1 import AppTest

    from leaderboard import APP_PATH, data
    from leaderboard import table as tbl

    path = args.db or Path(tempfile.mkdtemp()) / "bench.db"
    url = f"sqlite:///{path}"
    t0 = time.perf_counter()
    fill(url, args.runs, args.metrics)
    fill_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    table = tbl.main_table(data.load_results(data.connect(url)))
    pivot_s = time.perf_counter() - t0

    os.environ["ECHOBENCH_DB"] = url
    times = []
    for _ in range(args.repeat):
        import streamlit as st

        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(str(APP_PATH), default_timeout=120)
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        if at.exception:
            raise SystemExit(f"app raised: {at.exception[0].message}")
        shown = at.dataframe[0].value
        if len(shown) != len(table.value):
            raise SystemExit(f"main table shows {len(shown)} rows, expected {len(table.value)}")
    report = {"runs": args.runs, "metrics": args.metrics, "rows": len(table.value), "columns": len(table.columns),
              "fill_s": round(fill_s, 2), "load_pivot_s": round(pivot_s, 3),
              "first_render_s": [round(t, 3) for t in times], "median_first_render_s": round(float(np.median(times)), 3),
              "target_s": 2.0}
    print(json.dumps(report, indent=1))  # benchmark script: the report is its output
    return 0


if __name__ == "__main__":
    # Run as a script, this file's folder is sys.path[0] and its name would shadow the ``leaderboard`` package.
    if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path[0] = str(Path(__file__).resolve().parent.parent)
    raise SystemExit(main())
