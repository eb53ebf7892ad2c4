"""Imported first by every benchmark script: ``python benchmarks/X.py`` puts this folder at the front of the
import path, where ``tasks.py`` and ``human_eval.py`` would shadow the project's packages of those names.
This removes the folder from ``sys.path`` (and forgets any module this folder already shadowed)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
for name in ("tasks", "human_eval"):
    module = sys.modules.get(name)
    if module is not None and Path(getattr(module, "__file__", "") or "").resolve().parent == HERE:
        del sys.modules[name]
