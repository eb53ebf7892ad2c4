"""The generator-adapter contract checker (``harness validate generator NAME``).

:func:`check_generator` runs an adapter through the protocol of :mod:`generators.base` and returns one
:class:`CheckResult` per check: it returns exactly ``n`` images; uint8 (B, H, W, 3) with a sane range of
values; the same seed gives identical images and different seeds different ones; the batch size and the
resume offset ``start`` do not change the images; conditions are accepted or refused as declared;
``describe()`` is complete; and the time per image (information only).

A plug-in's own tests call the same code::

    from harness.contract import assert_generator_contract
    assert_generator_contract(MyGenerator)

Every check calls ``sample`` afresh, so an adapter that keeps state between calls is caught by the
determinism checks. Exceptions raised by the adapter are recorded as failures of the check that hit them
(the checker itself never hides them: the message names the exception type).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from generators.base import GeneratedBatch, Generator
from harness.errors import EchoBenchError, UsageError

log = logging.getLogger(__name__)

PASS, FAIL, SKIP, INFO = "pass", "fail", "skip", "info"
DESCRIBE_KEYS = ("name", "description", "conditions", "trainable", "batch_size_invariant", "presets")
NOT_A_CONDITION = "__echobench_not_a_condition__"


class ContractViolation(EchoBenchError):
    """A generator failed required contract checks (``harness validate`` exits with code 2)."""


@dataclass(frozen=True)
class CheckResult:
    """One row of the contract table.

    status: ``pass``, ``fail``, ``skip`` (not applicable, e.g. seed sensitivity of a seed-free baseline)
    or ``info`` (measurements). ``required`` checks decide the exit code of ``harness validate``.
    """

    name: str
    status: str
    message: str
    required: bool = True

    @property
    def ok(self) -> bool:
        return self.status != FAIL or not self.required


def all_passed(results: Sequence[CheckResult]) -> bool:
    """True when no required check failed."""
    return all(r.ok for r in results)


def format_results(results: Sequence[CheckResult]) -> str:
    """A plain-text table (for assertion messages and logs)."""
    width = max((len(r.name) for r in results), default=4)
    return "\n".join(f"{r.status.upper():4}  {r.name:<{width}}  {r.message}" for r in results)


class _SampleError(Exception):
    """The adapter raised while sampling (wrapped so checks can name the call that failed)."""


def _collect(gen: Generator, n: int, *, seed: int, batch_size: int, conditions=None, start: int = 0) -> list[np.ndarray]:
    """All batches of one ``sample`` call, as arrays (no conversion, so dtype/shape problems stay visible)."""
    try:
        out = []
        for batch in gen.sample(n, seed=seed, batch_size=batch_size, conditions=conditions, start=start):
            images = batch.images if isinstance(batch, GeneratedBatch) else batch
            out.append(np.asarray(images))
        return out
    except EchoBenchError:
        raise
    except Exception as exc:  # the adapter's bug: reported by the check that made the call
        raise _SampleError(f"sample(n={n}, seed={seed}, batch_size={batch_size}, start={start}) raised "
                           f"{type(exc).__name__}: {exc}") from exc


def _images(batches: list[np.ndarray]) -> list[np.ndarray]:
    return [im for b in batches for im in (b if b.ndim >= 3 else [b])]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[bool, int]:
    """(all identical, number of differing images) for two image lists."""
    if len(a) != len(b):
        return False, abs(len(a) - len(b)) + sum(not _eq(x, y) for x, y in zip(a, b))
    diff = sum(not _eq(x, y) for x, y in zip(a, b))
    return diff == 0, diff


def _eq(x: np.ndarray, y: np.ndarray) -> bool:
    return x.shape == y.shape and x.dtype == y.dtype and bool(np.array_equal(x, y))


def _instantiate(gen_cls_or_instance: Any, data: Any, options: dict) -> Generator:
    if not isinstance(gen_cls_or_instance, type):
        if options:
            raise UsageError("options can only be given with a generator class, not an instance")
        return gen_cls_or_instance
    cls = gen_cls_or_instance
    params = inspect.signature(cls.__init__).parameters
    takes_data = "data" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    if takes_data:
        if data is None or isinstance(data, str):
            from harness.data.base import open_data_spec

            data, _ = open_data_spec(data or "phantom", **({"size": 64} if data is None else {}))
        return cls(data=data, **options)
    return cls(**options)


def check_generator(
    gen_cls_or_instance: Any,
    *,
    checkpoint: Path | str | None = None,
    n: int = 8,
    seed: int = 0,
    batch_size: int = 3,
    data: Any = None,
    options: dict | None = None,
    device: str = "cpu",
    name: str | None = None,
) -> list[CheckResult]:
    """Run an adapter through the protocol checks.

    Parameters
    ----------
    gen_cls_or_instance : a :class:`~generators.base.Generator` subclass (built like the runner does:
        ``cls(data=source, **options)``) or an instance (used as is; ``load`` is still called).
    checkpoint : passed to ``load(checkpoint, device)``.
    n : images per ``sample`` call (at least 4; kept small, every check samples afresh).
    seed : the seed of the determinism checks (``seed + 1`` is the "different seed").
    batch_size : the small batch size compared with one batch of ``n``.
    data : a data source instance or spec for adapters that take ``data=`` (default: a 64-px phantom).
    options : generator options (as ``harness run --option``).
    device : passed to ``load``.
    name : the registered name, used when the class does not set ``name`` itself.

    Returns
    -------
    list of CheckResult, in table order. Use :func:`all_passed` for the verdict.
    """
    if n < 4:
        raise UsageError(f"the contract check needs n >= 4 images (got {n})")
    if not 1 <= batch_size < n:
        raise UsageError(f"batch_size must be between 1 and n-1 (got {batch_size} with n={n})")
    results: list[CheckResult] = []

    def add(check: str, status: str, message: str, required: bool = True) -> None:
        results.append(CheckResult(check, status, message, required))

    try:
        gen = _instantiate(gen_cls_or_instance, data, dict(options or {}))
        if not getattr(gen, "name", "") and name:
            gen.name = name  # entry points and path lookups do not set the class attribute
        gen.load(Path(checkpoint) if checkpoint is not None else None, device)
    except EchoBenchError:
        raise
    except Exception as exc:  # noqa: BLE001  (the adapter's bug: recorded as a failed check)
        add("load", FAIL, f"building or loading the adapter raised {type(exc).__name__}: {exc}")
        return results
    if not isinstance(gen, Generator):
        add("protocol", FAIL, f"{type(gen).__name__} does not derive from generators.base.Generator")
        return results
    add("load", PASS, f"{type(gen).__name__}.load(checkpoint={'given' if checkpoint else 'None'}, device={device!r})")

    # 1. one call: count, dtype, shape, range, time --------------------------------------------------
    t0 = time.perf_counter()
    try:
        first = _collect(gen, n, seed=seed, batch_size=n)
    except _SampleError as exc:
        add("sample", FAIL, str(exc))
        return results
    seconds = time.perf_counter() - t0
    images = _images(first)
    count = sum(len(b) if b.ndim >= 3 else 1 for b in first)
    add("count", PASS if count == n else FAIL, f"sample(n={n}) returned {count} images" + ("" if count == n else f", expected exactly {n}"))
    _check_arrays(first, images, add)
    add("time per image", INFO, f"{seconds / max(count, 1) * 1000:.1f} ms ({count} images in {seconds:.2f} s, one batch)", required=False)

    # 2. determinism, seeds, batch size, resume ------------------------------------------------------
    _check_determinism(gen, images, n=n, seed=seed, batch_size=batch_size, add=add)

    # 3. conditions and describe ---------------------------------------------------------------------
    _check_conditions(gen, seed, add)
    _check_describe(gen, add)
    return results


def _check_determinism(gen: Generator, images: list[np.ndarray], *, n: int, seed: int, batch_size: int, add) -> None:
    """Same seed → same images; another seed → others; batch size and resume change nothing."""
    def compare(check: str, what: str, call: Callable[[], list[np.ndarray]], expect_same: bool, required: bool = True,
                reference: list[np.ndarray] | None = None) -> None:
        try:
            other = _images(call())
        except _SampleError as exc:
            add(check, FAIL, str(exc), required)
            return
        same, diff = _same(images if reference is None else reference, other)
        if expect_same:
            add(check, PASS if same else FAIL, f"{what}: identical" if same else f"{what}: {diff} of {n} images differ", required)
        else:
            msg = f"{what}: all {n} images identical" if same else f"{what}: {diff} of {n} images differ"
            add(check, FAIL if same else PASS, msg, required)

    compare("same seed → same images", f"two calls with seed={seed}", lambda: _collect(gen, n, seed=seed, batch_size=n), True)
    if getattr(gen, "uses_seed", True):
        compare("different seed → different images", f"seed={seed} vs seed={seed + 1}",
                lambda: _collect(gen, n, seed=seed + 1, batch_size=n), False)
    else:
        add("different seed → different images", SKIP, "the adapter declares uses_seed = False (a seed-free baseline)")
    invariant = getattr(gen, "batch_size_invariant", True)
    what = f"batch_size={n} vs batch_size={batch_size}"
    if invariant:
        compare("batch size does not change images", what, lambda: _collect(gen, n, seed=seed, batch_size=batch_size), True)
    else:
        compare("batch size does not change images", what + " (declared batch_size_invariant = False)",
                lambda: _collect(gen, n, seed=seed, batch_size=batch_size), True, required=False)
    start = n // 2
    compare("resume at start=k gives images k..n-1", f"start={start} vs the tail of a full call",
            lambda: _collect(gen, n, seed=seed, batch_size=batch_size, start=start), True,
            required=invariant, reference=images[start:])


def _check_arrays(batches: list[np.ndarray], images: list[np.ndarray], add) -> None:
    dtypes = sorted({str(b.dtype) for b in batches})
    add("dtype uint8", PASS if dtypes == ["uint8"] else FAIL,
        f"dtype {', '.join(dtypes) or 'none'}" + ("" if dtypes == ["uint8"] else ": convert with np.clip(x, 0, 255).astype(np.uint8)"))
    shapes = sorted({tuple(b.shape[1:]) for b in batches})
    bad = [b.shape for b in batches if not (b.ndim == 4 and b.shape[3] == 3) and b.ndim != 3]
    small = [b.shape for b in batches if b.ndim >= 3 and min(b.shape[1:3]) < 16]
    if bad or small or not batches:
        add("shape (B, H, W, 3)", FAIL, f"batch shapes {[tuple(s) for s in (bad or small)] or 'none'}: expected (B, H, W, 3) uint8 "
            "with H, W >= 16")
    elif all(b.ndim == 3 for b in batches):
        add("shape (B, H, W, 3)", PASS, f"grayscale (B, H, W) {shapes}: accepted (GeneratedBatch allows it), stored as gray PNG")
    else:
        add("shape (B, H, W, 3)", PASS, f"image shapes {shapes}")
    if not images or dtypes != ["uint8"]:
        lo, hi = (float(np.min(images[0])), float(np.max(images[0]))) if images else (0.0, 0.0)
        add("value range", FAIL, f"not uint8 (first image spans {lo:.3g}..{hi:.3g}); images must use 0..255")
        return
    lo = min(int(im.min()) for im in images)
    hi = max(int(im.max()) for im in images)
    flat = [i for i, im in enumerate(images) if int(im.max()) == int(im.min())]
    if hi - lo < 32:
        add("value range", FAIL, f"values span only {lo}..{hi}; expected a range of at least 32 grey levels (images scaled to 0..1?)")
    elif flat:
        add("value range", FAIL, f"values {lo}..{hi}, but image(s) {flat[:5]} are constant (blank)")
    else:
        add("value range", PASS, f"values {lo}..{hi}, no blank image")


def _check_conditions(gen: Generator, seed: int, add) -> None:
    declared = tuple(getattr(gen, "conditions", ()) or ())

    def refused(conds: list[str]) -> tuple[bool, str]:
        try:
            _collect(gen, 2, seed=seed, batch_size=2, conditions=conds)
        except EchoBenchError as exc:
            return True, str(exc)
        except _SampleError as exc:
            return False, f"raised an error that is not a UsageError: {exc}"
        return False, "accepted"

    if not declared:
        ok, why = refused(["normal"])
        add("conditions", PASS if ok else FAIL,
            "unconditional: conditions=['normal'] refused" if ok else
            f"unconditional, but conditions=['normal'] was {why} (call self.check_conditions(conditions) in sample)")
        return
    problems = []
    for cond in declared:
        try:
            _collect(gen, 2, seed=seed, batch_size=2, conditions=[cond, cond])
        except (EchoBenchError, _SampleError) as exc:
            problems.append(f"declared condition {cond!r} refused: {exc}")
    ok, why = refused([NOT_A_CONDITION, NOT_A_CONDITION])
    if not ok:
        problems.append(f"undeclared condition {NOT_A_CONDITION!r} was {why}")
    add("conditions", FAIL if problems else PASS,
        "; ".join(problems) if problems else f"accepts {', '.join(declared)}; refuses undeclared conditions")


def _check_describe(gen: Generator, add) -> None:
    try:
        info = gen.describe()
        json.dumps(info)
        json.dumps(gen.fingerprint(), default=str)
    except Exception as exc:  # noqa: BLE001  (an adapter bug: recorded as a failed check)
        add("describe() complete", FAIL, f"describe()/fingerprint() raised or is not JSON: {type(exc).__name__}: {exc}")
        return
    if not isinstance(info, dict):
        add("describe() complete", FAIL, f"describe() returned {type(info).__name__}, expected a dict")
        return
    missing = [k for k in DESCRIBE_KEYS if k not in info]
    empty = [k for k in ("name", "description") if k in info and not info[k]]
    same_conditions = list(info.get("conditions", [])) == list(getattr(gen, "conditions", ()))
    wrong = [] if same_conditions else ["conditions (differs from the class attribute)"]
    problems = ([f"missing {', '.join(missing)}"] if missing else []) + ([f"empty {', '.join(empty)}"] if empty else []) + wrong
    add("describe() complete", FAIL if problems else PASS,
        "; ".join(problems) if problems else f"name={info['name']!r}, {len(info)} fields")


def assert_generator_contract(gen_cls_or_instance: Any, **kwargs: Any) -> list[CheckResult]:
    """Run :func:`check_generator` and raise ``AssertionError`` with the table if a required check fails.

    Meant for a plug-in's own test suite (``pytest``).
    """
    results = check_generator(gen_cls_or_instance, **kwargs)
    if not all_passed(results):
        raise AssertionError("generator contract violated:\n" + format_results(results))
    return results


def results_as_dicts(results: Sequence[CheckResult]) -> list[dict]:
    return [dataclasses.asdict(r) for r in results]
