"""TEMPLATE generator adapter: copy this file, rename the class and the registered name, fill in the TODOs.

An adapter turns a model into images through three methods (generators/base.py):

- ``load(checkpoint, device)``: read weights (safetensors; never unpickle untrusted files);
- ``sample(n, *, seed, batch_size, conditions=None, start=0)``: yield batches of uint8 images
  (B, H, W, 3) for indices ``start .. n-1``; image ``i`` must depend only on (seed, i), so use
  ``image_seed(seed, i)`` per image rather than one generator per batch;
- ``fit(train, out_dir, config)`` (optional): train and return the checkpoint path.

PLACEHOLDER: until you replace ``sample``, this adapter returns phantom images with a fixed tint so that
it passes ``harness validate`` out of the box. Its numbers mean nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from generators.base import GeneratedBatch, Generator, image_seed
from harness.errors import UsageError


@dataclass(frozen=True)
class TemplateConfig:
    """Everything that determines the model's output. Named presets below."""

    size: int = 64


class TemplateGenerator(Generator):
    description = "TEMPLATE adapter (placeholder: phantom images) - copy and edit"
    conditions: tuple[str, ...] = ()  # e.g. ("normal", "asd") if the model is conditional
    presets = {"tiny": TemplateConfig(size=64), "paper": TemplateConfig(size=256)}

    def __init__(self, *, data: Any = None, preset: str = "tiny", **options: Any):
        if options:
            raise UsageError(f"generator {self.name!r} has no option(s) {', '.join(sorted(options))}")
        super().__init__(preset=preset)
        self.config = self.preset(preset)
        self.model = None

    def load(self, checkpoint: Path | None = None, device: str = "auto") -> None:
        # TODO: build the network, load `checkpoint` with safetensors.torch.load_file, move to device.
        from harness.data.phantom import PhantomSource

        self.model, _ = PhantomSource.from_spec("test", size=self.config.size)

    def sample(
        self, n: int, *, seed: int, batch_size: int = 32, conditions: Sequence[str] | None = None, start: int = 0
    ) -> Iterator[GeneratedBatch]:
        self.check_conditions(conditions)
        if self.model is None:
            self.load()
        for lo in range(start, n, batch_size):
            hi = min(n, lo + batch_size)
            # TODO: replace with your model: one torch.Generator per image, seeded by image_seed(seed, i).
            seeds = [image_seed(seed, i) for i in range(lo, hi)]
            batch = next(self.model.iter_batches("test", hi - lo, start=lo, batch_size=hi - lo))
            gray = np.asarray(batch.images)
            shift = np.array([s % 7 for s in seeds], dtype=np.uint8)[:, None, None]
            yield GeneratedBatch(images=np.stack([gray, gray, np.clip(gray.astype(int) + shift, 0, 255).astype(np.uint8)], -1))
