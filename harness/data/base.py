"""The data-source protocol.

A data source yields batches of samples from named splits. Samples are addressed by index within a
split, so that a request for indices ``start .. start+n`` is deterministic and can be resumed or sharded.

Data-source *specs* on the command line are ``NAME[:ARG]``: ``phantom``, ``phantom:test``,
``folder:/path/to/images``, ``echonet:/path/to/EchoNet-Dynamic`` (split defaults depend on the source;
``echonet:DIR@train`` picks a split). Each source class parses its own ``ARG`` in :meth:`from_spec`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from harness.errors import UsageError


@dataclass
class SampleBatch:
    """A batch of samples.

    images: uint8 array (B, H, W) for grayscale or (B, H, W, 3) for RGB; or a list of such arrays
        (one per sample) when sizes differ (a folder of mixed sizes).
    ids: a stable identifier per sample (file name, ``phantom/test/000012``, ...).
    label_maps: uint8 (B, H, W) label maps when the source has them (phantom, EchoNet tracing masks).
    conditions: a condition name per sample (``normal``, ``asd``, ...) when known.
    captions: a caption per sample when known.
    """

    images: np.ndarray | list[np.ndarray]
    ids: list[str]
    label_maps: np.ndarray | None = None
    conditions: list[str] | None = None
    captions: list[str] | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


class DataSource(ABC):
    """A registered source of real (or phantom) images with splits."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    default_split: ClassVar[str] = "test"
    reference_split: ClassVar[str] = "test"  # default reference set of `harness run`
    heldout_split: ClassVar[str] = "test"  # what the `real` baseline generator samples
    has_label_maps: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def from_spec(cls, arg: str | None, **options) -> tuple[DataSource, str]:
        """Build the source from the ``ARG`` part of ``NAME:ARG``; return (source, split)."""

    @abstractmethod
    def count(self, split: str) -> int | None:
        """Number of samples in ``split``; ``None`` when unlimited (procedural sources)."""

    @abstractmethod
    def iter_batches(self, split: str, n: int, *, start: int = 0, batch_size: int = 64) -> Iterator[SampleBatch]:
        """Yield samples ``start .. start+n-1`` of ``split`` in batches, deterministically."""

    def fingerprint(self) -> dict:
        """Everything that determines the samples (goes into run keys)."""
        return {"source": self.name}

    @classmethod
    def availability(cls) -> str:
        """One line for ``harness list``: whether the data is present."""
        return "ok"

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise UsageError(f"data source {self.name!r} has no split {split!r}; splits: {', '.join(self.splits)}")


def parse_data_spec(spec: str) -> tuple[str, str | None]:
    """``"folder:/x/y"`` → ``("folder", "/x/y")``; ``"phantom"`` → ``("phantom", None)``."""
    name, sep, arg = spec.partition(":")
    if not name:
        raise UsageError(f"invalid data spec {spec!r}; expected NAME[:ARG], e.g. phantom:test or folder:DIR")
    return name, (arg if sep else None)


def open_data_spec(spec: str, **options) -> tuple[DataSource, str]:
    """Resolve a data spec through the registry: returns (source instance, split)."""
    from harness.registry import datasets

    name, arg = parse_data_spec(spec)
    cls = datasets.get(name)
    return cls.from_spec(arg, **options)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) or (H, W, 1|3|4) → (H, W, 3)."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 4:
        return image[:, :, :3]
    return image
