"""The contract checker: the template passes; each check fails on an adapter built to break it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from generators.base import GeneratedBatch, Generator, image_seed
from generators.template.adapter import TemplateGenerator
from harness.contract import all_passed, assert_generator_contract, check_generator
from harness.errors import UsageError


class Good(Generator):
    """A deterministic noise generator that follows the protocol."""

    name = "good"
    description = "per-image seeded noise"

    def sample(self, n, *, seed, batch_size=32, conditions=None, start=0):
        self.check_conditions(conditions)
        for lo in range(start, n, batch_size):
            idx = range(lo, min(n, lo + batch_size))
            yield np.stack([np.random.default_rng(image_seed(seed, i)).integers(0, 256, (20, 20, 3), dtype=np.uint8)
                            for i in idx])


class FloatImages(Good):
    def sample(self, n, **kw):
        for batch in super().sample(n, **kw):
            yield batch.astype(np.float32) / 255.0


class NonDeterministic(Good):
    def sample(self, n, *, seed, batch_size=32, conditions=None, start=0):
        self.check_conditions(conditions)
        for lo in range(start, n, batch_size):
            yield np.random.randint(0, 256, (min(n, lo + batch_size) - lo, 20, 20, 3)).astype(np.uint8)


class OneShort(Good):
    def sample(self, n, **kw):
        yield from super().sample(n - 1, **kw)


class PerBatchSeed(Good):
    def sample(self, n, *, seed, batch_size=32, conditions=None, start=0):
        self.check_conditions(conditions)
        for lo in range(start, n, batch_size):
            rng = np.random.default_rng([seed, lo])  # one generator per batch: depends on batching
            yield rng.integers(0, 256, (min(n, lo + batch_size) - lo, 20, 20, 3), dtype=np.uint8)


class DeclaredBatchDependent(PerBatchSeed):
    batch_size_invariant = False


class SeedBlind(Good):
    def sample(self, n, *, seed, **kw):
        yield from super().sample(n, seed=0, **kw)


class IgnoresConditions(Good):
    def sample(self, n, *, seed, batch_size=32, conditions=None, start=0):
        yield from super().sample(n, seed=seed, batch_size=batch_size, start=start)


class Conditional(Good):
    conditions = ("normal", "asd")

    def sample(self, n, *, seed, batch_size=32, conditions=None, start=0):
        self.check_conditions(conditions)
        for batch in super().sample(n, seed=seed, batch_size=batch_size, start=start):
            yield GeneratedBatch(images=batch, conditions=list(conditions) if conditions else None)


class Blank(Good):
    def sample(self, n, **kw):
        for batch in super().sample(n, **kw):
            yield np.zeros_like(batch)


class NoDescription(Good):
    description = ""


class BrokenLoad(Good):
    def load(self, checkpoint=None, device="auto"):
        raise FileNotFoundError("weights.safetensors")


def status(results, name):
    return next(r for r in results if r.name == name).status


def failed(results):
    return {r.name for r in results if r.status == "fail" and r.required}


def test_template_and_a_good_adapter_pass():
    for cls in (TemplateGenerator, Good, Conditional):
        results = check_generator(cls, name="x")
        assert all_passed(results), results
        assert status(results, "time per image") == "info"


@pytest.mark.parametrize("cls, expected", [
    (FloatImages, {"dtype uint8", "value range"}),
    (NonDeterministic, {"same seed → same images", "batch size does not change images",
                        "resume at start=k gives images k..n-1"}),
    (OneShort, {"count"}),
    (PerBatchSeed, {"batch size does not change images", "resume at start=k gives images k..n-1"}),
    (SeedBlind, {"different seed → different images"}),
    (IgnoresConditions, {"conditions"}),
    (Blank, {"value range", "different seed → different images"}),
    (NoDescription, {"describe() complete"}),
    (BrokenLoad, {"load"}),
])
def test_each_check_fails_on_an_adapter_that_breaks_it(cls, expected):
    results = check_generator(cls)
    assert failed(results) == expected, [(r.name, r.status, r.message) for r in results]
    assert not all_passed(results)


def test_declared_batch_dependence_is_information_only():
    results = check_generator(DeclaredBatchDependent)
    row = next(r for r in results if r.name == "batch size does not change images")
    assert row.status == "fail" and not row.required and "declared" in row.message
    assert all_passed(results)


def test_seed_free_baseline_skips_the_seed_check():
    from harness.registry import generators

    results = check_generator(generators.get("real"), name="real")
    assert status(results, "different seed → different images") == "skip"
    assert all_passed(results)


def test_assert_helper_raises_with_the_table_and_bad_arguments_are_usage_errors():
    assert_generator_contract(Good)
    with pytest.raises(AssertionError, match="FAIL  count"):
        assert_generator_contract(OneShort)
    with pytest.raises(UsageError):
        check_generator(Good, n=2)


BAD_FILE = '''
import numpy as np
from generators.base import Generator

class Bad(Generator):
    description = "float images"
    def sample(self, n, *, seed, batch_size=32, conditions=None, start=0):
        yield np.random.default_rng(seed).random((n - start, 20, 20, 3))
'''


def test_cli_validate_file_target_exit_codes(tmp_path: Path):
    (tmp_path / "bad.py").write_text(BAD_FILE)
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "validate", "generator", f"{tmp_path / 'bad.py'}:Bad"],
                          capture_output=True, text=True, check=False, env=env, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout and "dtype uint8" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "validate", "generator", "generators.template.adapter:TemplateGenerator"],
                          capture_output=True, text=True, check=False, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout
