"""The data-source protocol.

A data source yields batches of samples from named splits. Samples are addressed by index within a
split, so that a request for indices ``start .. start+n`` is deterministic and can be resumed or sharded.

Data-source *specs* on the command line are ``NAME[:ARG][@SPLIT]``: ``phantom``, ``phantom:test``,
``folder:/path/to/images``, ``folder:DIR@train``, ``echonet:/path/to/EchoNet-Dynamic@val``, ``camus:DIR``. Each
source class parses its own ``ARG`` in :meth:`from_spec`; :class:`DataSpec` is a spec parsed once (with the
opened source), and :meth:`DataSource.spec_for` writes the spec of another split of the same source (same folder).

Every source names the splits the runner uses by default: ``heldout_split`` (what the ``real`` baseline samples),
``reference_split`` (the default reference set) and ``train_split`` (the default training set); the first two are
disjoint, so ``real`` vs reference measures sampling noise, never a set against itself.
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
    heldout_split: ClassVar[str] = "test"  # what the `real` baseline generator samples (disjoint from the reference)
    train_split: ClassVar[str] = "train"  # default training set (memorisation, training)
    has_label_maps: ClassVar[bool] = False
    #: the split named in the spec this source was opened from (``@split``), ``None`` when none was named
    requested_split: str | None = None

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

    def spec_for(self, split: str) -> str:
        """The data spec of ``split`` of this very source (same folder): ``NAME:ARG@split`` (``NAME:split`` for
        sources without an argument, such as the phantom). Sources with a folder override it."""
        return f"{self.name}:{split}"

    @classmethod
    def availability(cls) -> str:
        """One line for ``harness list``: whether the data is present."""
        return "ok"

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise UsageError(f"data source {self.name!r} has no split {split!r}; splits: {', '.join(self.splits)}")


@dataclass(frozen=True)
class DataSpec:
    """A data spec parsed once: source ``name``, its ``arg`` (folder, phantom split, ...), the ``split`` named in
    the spec (``None``: the role's default) and the opened ``source``. ``str()`` gives the canonical spec."""

    name: str
    arg: str | None
    split: str | None
    source: DataSource = field(compare=False, repr=False)

    @classmethod
    def parse(cls, text: str, **options) -> DataSpec:
        from harness.registry import datasets

        name, arg = parse_data_spec(text)
        source, _ = datasets.get(name).from_spec(arg, **options)
        return cls(name, arg, source.requested_split, source)

    def with_split(self, split: str) -> DataSpec:
        """The same source with ``split`` (checked)."""
        self.source.check_split(split)
        return DataSpec(self.name, self.arg, split, self.source)

    def __str__(self) -> str:
        if self.split is None:
            return self.name + (f":{self.arg}" if self.arg else "")
        return self.source.spec_for(self.split)


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


def split_at(arg: str | None) -> tuple[str | None, str | None]:
    """``"DIR@test"`` → ``("DIR", "test")`` (split lower-cased); ``"DIR"`` → ``("DIR", None)``. A ``@`` followed by a
    path separator belongs to the folder name."""
    if not arg or "@" not in arg:
        return arg, None
    root, _, split = arg.rpartition("@")
    if "/" in split or "\\" in split:
        return arg, None
    return root, (split.strip().lower() or None)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) or (H, W, 1|3|4) → (H, W, 3)."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 4:
        return image[:, :, :3]
    return image


def resize_frame(image: np.ndarray, size: int, *, nearest: bool = False) -> np.ndarray:
    """A grey frame (or label map, ``nearest=True``) resized to ``size`` × ``size`` the way EchoNet and CAMUS frames
    are: area interpolation down, bicubic up; ``size`` 0 keeps the native size."""
    import cv2

    if not size or image.shape[:2] == (size, size):
        return image
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if size < max(image.shape[:2]) else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interp)
