"""Plug-in discovery end to end, through real package metadata (a ``*.dist-info`` on ``PYTHONPATH``).

One installed distribution declares a working generator and a broken one (its module raises at import).
``harness list`` shows both (the broken one with its error), every other command still works, and the
working plug-in validates; only asking for the broken one by name fails, with exit code 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = '''
import numpy as np
from generators.base import Generator, image_seed


class Noise(Generator):
    name = "noise-plugin"
    description = "seeded noise (test plug-in)"

    def sample(self, n, *, seed, batch_size=32, conditions=None, start=0):
        self.check_conditions(conditions)
        for lo in range(start, n, batch_size):
            yield np.stack([np.random.default_rng(image_seed(seed, i)).integers(0, 256, (24, 24, 3), dtype=np.uint8)
                            for i in range(lo, min(n, lo + batch_size))])
'''


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "fakeplug").mkdir(parents=True)
    (site / "fakeplug" / "__init__.py").write_text("")
    (site / "fakeplug" / "good.py").write_text(GOOD)
    (site / "fakeplug" / "bad.py").write_text("raise ImportError('needs the missing package superlib')\n")
    info = site / "echobench_fakeplug-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echobench-fakeplug\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(
        "[echobench.generators]\nnoise-plugin = fakeplug.good:Noise\nbroken-plugin = fakeplug.bad:Broken\n"
    )
    return site


def harness(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "250", "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, check=False, env=env,
                          timeout=180)


def test_installed_plugins_listed_validated_and_isolated(plugin_path: Path):
    listing = harness(plugin_path, "list", "generators")
    assert listing.returncode == 0, listing.stderr
    lines = {ln.split("│")[1].strip(): ln for ln in listing.stdout.splitlines() if ln.count("│") > 3}
    assert "package echobench-fakeplug" in lines["noise-plugin"] and "ok" in lines["noise-plugin"]
    assert "broken: ImportError: needs the missing package" in lines["broken-plugin"]
    assert "superlib" in listing.stdout
    assert "real" in lines  # the built-ins are still there

    assert harness(plugin_path, "list", "tasks").returncode == 0
    ok = harness(plugin_path, "validate", "generator", "noise-plugin")
    assert ok.returncode == 0, ok.stdout + ok.stderr

    bad = harness(plugin_path, "validate", "generator", "broken-plugin")
    assert bad.returncode == 2
    assert "broken-plugin" in bad.stderr and "superlib" in bad.stderr and "Traceback" not in bad.stderr


def test_submit_records_the_plugin_version(plugin_path: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_path))
    from harness import registry
    from harness.bundle import adapter_info

    fresh = registry.Registry("generator", "echobench.generators")
    monkeypatch.setattr(registry, "generators", fresh)
    info = adapter_info("noise-plugin")
    assert info == {"name": "noise-plugin", "origin": "package echobench-fakeplug",
                    "distribution": "echobench-fakeplug", "version": "1.2.3"}
