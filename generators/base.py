"""The generator-adapter protocol.

An adapter is a class with ``name``, ``description``, the ``conditions`` it accepts, and

- ``fit(train, out_dir, config) -> checkpoint path`` (trainable adapters only);
- ``load(checkpoint | None, device)``;
- ``sample(n, *, seed, batch_size, conditions=None, start=0)`` → iterator of :class:`GeneratedBatch`
  (or plain uint8 arrays (B, H, W, 3)).

Sampling is deterministic for a given (checkpoint, seed, n, conditions) and independent of the batch
size: image ``i`` depends only on (seed, i), so a killed run resumes at ``start = first missing index``.
Configs are dataclasses with named presets (``paper`` reproduces the seed paper, ``tiny`` trains in
minutes on a 2-core CPU).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.errors import UsageError
from harness.io import jsonable


@dataclass
class GeneratedBatch:
    """Images (uint8 (B, H, W, 3) or (B, H, W)) with optional per-image metadata."""

    images: np.ndarray
    conditions: list[str] | None = None
    label_maps: np.ndarray | None = None
    prompts: list[str] | None = None
    source_ids: list[str] | None = None  # e.g. the real image a baseline copied

    def __len__(self) -> int:
        return len(self.images)


def image_seed(seed: int, index: int) -> int:
    """The per-image seed: a function of (run seed, image index) only, so batching never matters."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


class Generator(ABC):
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    conditions: ClassVar[tuple[str, ...]] = ()  # accepted condition names; () = unconditional
    trainable: ClassVar[bool] = False
    batch_size_invariant: ClassVar[bool] = True
    uses_seed: ClassVar[bool] = True  # False for baselines whose images do not depend on the seed
    config_class: ClassVar[type | None] = None
    train_data: str | None = None  # data spec of the training set (set by load() from the checkpoint's config)
    #: True for adapters that sample a data source's split (``real``, ``labelmap``): ``--data SRC@split`` picks it
    samples_data_split: ClassVar[bool] = False
    presets: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any):
        self.options = options

    # training ------------------------------------------------------------------------------------
    def fit(self, train: Any, out_dir: Path, config: Any) -> Path:
        raise UsageError(f"generator {self.name!r} is not trainable")

    # sampling ------------------------------------------------------------------------------------
    def load(self, checkpoint: Path | None = None, device: str = "auto") -> None:  # noqa: B027 (optional hook)
        """Load weights (``checkpoint``) onto ``device`` (``"auto"``: GPU if present); baselines need none."""

    @abstractmethod
    def sample(
        self,
        n: int,
        *,
        seed: int,
        batch_size: int = 32,
        conditions: Sequence[str] | None = None,
        start: int = 0,
    ) -> Iterator[GeneratedBatch | np.ndarray]:
        """Yield images ``start .. n-1`` in batches."""

    # metadata -----------------------------------------------------------------------------------
    def fingerprint(self) -> dict:
        """Everything besides (seed, n, conditions) that determines the images (goes into the run key)."""
        return {"generator": self.name, "options": jsonable(self.options)}

    def describe(self) -> dict:
        """What ``harness describe generator NAME`` prints."""
        return {
            "name": self.name,
            "description": self.description,
            "conditions": list(self.conditions),
            "trainable": self.trainable,
            "batch_size_invariant": self.batch_size_invariant,
            "presets": sorted(self.presets),
        }

    def default_n(self) -> int:
        """How many images ``harness run`` generates when ``--n`` is not given."""
        return 800

    @classmethod
    def preset(cls, name: str):
        if name not in cls.presets:
            raise UsageError(
                f"generator {cls.name!r} has no preset {name!r}; presets: {', '.join(sorted(cls.presets)) or 'none'}"
            )
        return cls.presets[name]

    @classmethod
    def resolve_config(cls, config: Any = None) -> Any:
        """A preset name (default ``tiny``) or a ``config_class`` instance → a checked config."""
        if config is None:
            config = "tiny"
        if isinstance(config, str):
            config = cls.preset(config)
        if cls.config_class is not None and not isinstance(config, cls.config_class):
            raise UsageError(f"{cls.name}: config must be a {cls.config_class.__name__} or a preset name, "
                             f"got {type(config).__name__}")
        cls.check_config(config)
        return config

    @classmethod
    def check_config(cls, config: Any) -> None:
        """Refuse a config this adapter cannot train or sample with (UsageError)."""
        if hasattr(config, "validate"):
            config.validate()

    @classmethod
    def availability(cls) -> str:
        return "ok"

    def check_conditions(self, conditions: Sequence[str] | None) -> None:
        if conditions and not self.conditions:
            raise UsageError(f"generator {self.name!r} is unconditional; it does not accept --conditions")
        bad = [c for c in conditions or () if c not in self.conditions]
        if bad:
            raise UsageError(
                f"generator {self.name!r} does not accept condition(s) {', '.join(bad)}; accepted: {', '.join(self.conditions)}"
            )


def resume_check(out_dir: Path, config: dict, read_meta: Callable[[], dict], *, resume: bool, force: bool,
                 what: str) -> dict | None:
    """The one resume/overwrite rule of every trainer (CycleGAN/CUT, SD-LoRA, plug-ins).

    ``out_dir`` without a checkpoint (``config.json``): start fresh (``None``). With one: ``resume`` continues it
    (returns its metadata from ``read_meta()``; a different ``config`` is refused unless ``force``); without
    ``resume`` it is overwritten only with ``force`` (``None``), else a :class:`UsageError` says which flag to pass.
    """
    if not (Path(out_dir) / "config.json").is_file():
        return None
    if not resume:
        if force:
            return None
        raise UsageError(f"{out_dir} already holds a {what} checkpoint; pass resume to continue it or force to overwrite it")
    meta = read_meta()
    if meta.get("config") != config and not force:
        diff = sorted(k for k, v in config.items() if (meta.get("config") or {}).get(k) != v)
        raise UsageError(f"{out_dir} was trained with a different config ({', '.join(diff)}); resume with the same "
                         "config, or pass force to continue anyway")
    return meta


def replace_config(config: Any, overrides: dict[str, Any], what: str) -> Any:
    """A copy of the dataclass ``config`` with ``overrides`` (strings from the CLI converted to each field's
    type); unknown names are a UsageError; the result's ``validate()`` runs when it has one."""
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise UsageError(f"{what}: unknown option(s) {', '.join(unknown)}; options: {', '.join(sorted(fields))}")
    converted = {}
    for key, value in overrides.items():
        kind = type(getattr(config, key))
        if isinstance(value, str) and kind is not str and getattr(config, key) is not None:
            try:
                value = value.lower() in ("1", "true", "yes", "on") if kind is bool else kind(value)
            except ValueError:
                raise UsageError(f"{what}: option {key}={value!r} is not a valid {kind.__name__}") from None
        converted[key] = value
    out = dataclasses.replace(config, **converted)
    if hasattr(out, "validate"):
        out.validate()
    return out
