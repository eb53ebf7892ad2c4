"""The task protocol.

A task has one frozen :class:`TaskSpec` (its metadata in one place) and an :meth:`Task.evaluate` that turns
a :class:`TaskContext` into :class:`MetricResult` records. Metric functions themselves are pure (arrays and
an explicit ``numpy.random.Generator`` in, a frozen result out); the task class only adapts the context.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class TaskSpec:
    name: str
    version: str
    description: str
    needs_reference: bool = True
    needs_features: bool = True
    needs_images: bool = False
    needs_train: bool = False  # features of the generator's training set (memorisation)
    #: label maps: of the generated set (``gen_label_maps``/``gen_label_source``), of the reference set
    #: (``ref_label_maps``/``ref_label_source``) when ``needs_reference``, and of the data source's real training
    #: split (``train_images``/``train_label_maps``/``train_label_source``) when ``needs_real_train``
    needs_labels: bool = False
    #: conditions: ``gen_conditions``, ``ref_conditions`` and (with ``needs_real_train``) ``train_conditions``
    needs_conditions: bool = False
    #: the data source's real training split (``<data>:train``, never the generator's own training data):
    #: ``train_images`` plus the labels/conditions asked for above; trained models go to ``cache_dir``
    needs_real_train: bool = False
    #: the space the task runs in when the user names none (``harness run`` without ``--features``): used when
    #: that extractor's weights are on this machine, else Inception (see ``harness.runner._task_spaces``)
    default_features: str | None = "inception"
    parameters: dict[str, Any] = field(default_factory=dict)  # name -> default (its type is the option's type)
    #: name -> (low, high), inclusive: the option's allowed range (numbers); see :func:`parse_option`
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)


#: Range of an integer option whose task declares none (a resample count of 10^9 is a typo, not a request).
DEFAULT_INT_RANGE = (0, 10_000_000)
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_option(task: str, name: str, value: Any, default: Any, bounds: tuple[float, float] | None = None) -> Any:
    """``value`` (from the CLI a string or a JSON-decoded number) as the type of ``default``, range-checked.

    bool ← true/false/yes/no/1/0; int ← an integer (``3``, ``"3"``, not ``3.5``, ``1e9`` or ``true``); float ← any
    finite number; str ← text (or a list of texts); a ``None`` default takes ``none``, a finite number (as float),
    or any other value unchanged (the task checks it). Declared ``ranges`` apply to numbers. UsageError otherwise.
    """
    import math

    from harness.errors import UsageError

    where = f"--task-option {task}.{name}={value!r}"
    text = value.strip().lower() if isinstance(value, str) else None
    if default is None:
        if value is None or text in ("none", "null", ""):
            return None
        if bounds is not None:  # a declared range: a number or none (e.g. color-shift.threshold)
            pass
        elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return value  # an option without a typed default (lists, mappings) is the task's to check
        else:
            try:
                float(value)
            except ValueError:
                return value  # text: the task checks it
    kind = type(default) if default is not None else float
    try:
        if kind is bool:
            if isinstance(value, bool):
                out: Any = value
            elif text in _TRUE or text in _FALSE:
                out = text in _TRUE
            else:
                raise ValueError
        elif kind is int:
            if isinstance(value, bool) or isinstance(value, float) or (text is not None and not text.lstrip("+-").isascii()):
                raise ValueError
            out = int(text) if text is not None else (int(value) if isinstance(value, np.integer) else value)
            if not isinstance(out, int):
                raise ValueError
        elif kind is float:
            if isinstance(value, bool):
                raise ValueError
            out = float(text) if text is not None else float(value)
            if not math.isfinite(out) or (text is not None and not text.isascii()):
                raise ValueError
        elif kind is str:
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                out = value  # e.g. metrics=["fid", "kid"] from Python
            elif not isinstance(value, str):
                raise ValueError
            else:
                out = value
        else:
            out = value
    except (ValueError, TypeError):
        what = {bool: "true or false", int: "a whole number", float: "a finite number", str: "text"}.get(kind, kind.__name__)
        raise UsageError(f"{where}: must be {what}") from None
    if bounds is None and kind is int:
        bounds = DEFAULT_INT_RANGE
    if bounds is not None and kind in (int, float) and not bounds[0] <= out <= bounds[1]:
        raise UsageError(f"{where}: must be between {bounds[0]:g} and {bounds[1]:g}")
    return out


@dataclass(frozen=True)
class MetricResult:
    """One number with its interval, sample size and details (stored as one ``result`` row)."""

    metric: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    higher_is_better: bool = False
    feature_space: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: True when computed in a stand-in feature space (random-init network): set by the task from
    #: ``TaskContext.feature_substitute`` and stored with the result; the leaderboard reads it, never guesses.
    substitute: bool = False


@dataclass
class TaskContext:
    """What the runner hands to a task.

    gen_features / ref_features: (N, d) arrays in ``feature_space`` (None if the task needs no features).
    gen_images / ref_images: callables returning a list of uint8 (H, W, 3) arrays (loaded lazily).
    ref_stats: callable returning the cached reference statistics dict (mu, sigma, sqrt_sigma) or None.
    artifacts_dir: where the task may write figures/galleries; it returns their paths in
        ``artifacts`` (kind -> path) so the runner records them.
    progress: ``progress(k, total=None)`` advances the task's progress bar.

    Labels and conditions (loaded lazily like images; see ``TaskSpec.needs_labels``/``needs_conditions``):
    ``*_label_maps()`` returns one uint8 (H, W) label map or ``None`` per image, in phantom values (sources map
    theirs on load); ``*_label_source`` names the source whose annotations they are (which structures exist and what
    ``myocardium`` means: ``harness.data.labels.source_values``; generated sets: ``"phantom"`` unless the generator
    copies a source's own maps, e.g. ``real`` on CAMUS: ``"camus"``); ``*_conditions()`` one condition name or
    ``None`` per image. The ``gen_*`` lists align with ``gen_images()``, ``ref_*`` with ``ref_images()`` and
    ``train_*`` with ``train_images()``. ``generator`` names the generator (``real`` trains ``seg-utility`` on
    the training split: its own images may be the reference set). ``cache_dir``: where tasks cache trained
    models (None: no caching); ``device``: where they train (``auto``: CUDA when available).
    """

    feature_space: str | None
    rng: np.random.Generator
    gen_features: np.ndarray | None = None
    ref_features: np.ndarray | None = None
    gen_images: Callable[[], Sequence[np.ndarray]] | None = None
    ref_images: Callable[[], Sequence[np.ndarray]] | None = None
    ref_stats: Callable[[], dict] | None = None
    train_features: np.ndarray | None = None
    train_images: Callable[[], Sequence[np.ndarray]] | None = None
    artifacts_dir: Path | None = None
    artifacts: dict[str, Path] = field(default_factory=dict)
    feature_substitute: bool = False
    #: ``progress(k, total=None)``: report k more units of work done (``total`` sets the stage's size) so
    #: long tasks show a progress bar; a no-op unless the runner supplies one.
    progress: Callable[..., None] = field(default=lambda k, total=None: None)
    #: ``metric_namer(family) -> name``: the extractor's naming rule (``FD`` → ``FID``/``FD_<space>``, ...);
    #: the runner passes ``extractor.metric_name``. Tasks name their results through :meth:`metric_name`.
    metric_namer: Callable[[str], str] | None = None
    generator: str | None = None
    gen_label_maps: Callable[[], Sequence[np.ndarray | None]] | None = None
    gen_label_source: str = "phantom"
    gen_conditions: Callable[[], Sequence[str | None]] | None = None
    ref_label_maps: Callable[[], Sequence[np.ndarray | None]] | None = None
    ref_label_source: str | None = None
    ref_conditions: Callable[[], Sequence[str | None]] | None = None
    train_label_maps: Callable[[], Sequence[np.ndarray | None]] | None = None
    train_label_source: str | None = None
    train_conditions: Callable[[], Sequence[str | None]] | None = None
    cache_dir: Path | None = None
    device: str = "auto"

    def write_csv(self, kind: str, filename: str, header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> Path | None:
        """Write a per-image table to ``artifacts_dir/filename`` atomically and record it as artifact ``kind``;
        nothing (None) when the context has no artifacts folder."""
        if self.artifacts_dir is None:
            return None
        import csv

        from harness.io import atomic_write

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(header)
                w.writerows(rows)

        path = Path(self.artifacts_dir) / filename
        atomic_write(path, write)
        self.artifacts[kind] = path
        return path

    def metric_name(self, family: str) -> str:
        """The stored name of a ``family`` result (``FD``, ``KD``, ``MMD``) in this context's feature space."""
        if self.metric_namer is not None:
            return self.metric_namer(family)
        from harness.features.base import metric_name

        return metric_name(self.feature_space, family)


class Task(ABC):
    spec: ClassVar[TaskSpec]
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""  # from ``spec.description`` (one place): set for every subclass with a spec

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "spec" in cls.__dict__ and "description" not in cls.__dict__:
            cls.description = cls.spec.description

    def __init__(self, **params: Any):
        unknown = set(params) - set(self.spec.parameters)
        if unknown:
            from harness.errors import UsageError

            raise UsageError(
                f"task {self.spec.name!r} has no option(s) {', '.join(sorted(unknown))}; "
                f"options: {', '.join(sorted(self.spec.parameters)) or 'none'}"
            )
        typed = {k: parse_option(self.spec.name, k, v, self.spec.parameters[k], self.spec.ranges.get(k))
                 for k, v in params.items()}
        self.params = {**self.spec.parameters, **typed}

    @abstractmethod
    def evaluate(self, ctx: TaskContext) -> list[MetricResult]:
        ...

    def check_plan(self, *, reference: Any = None, reference_n: int | None = None) -> None:  # noqa: B027 (optional hook)
        """Checks that need only the run's plan — the reference set's data spec (``reference``, a
        :class:`harness.data.base.DataSpec`: its ``source`` and ``split``) and how many images it will have — run
        before any image is generated or run row written; raise UsageError/DataError. Default: nothing to check."""

    @classmethod
    def availability(cls) -> str:
        return "ok"
