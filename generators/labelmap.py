"""``labelmap``: the phantom's label maps rendered as flat-intensity pseudo-images.

This is the untranslated source domain of CycleGAN/CUT — what a translator that learned nothing would
output — and therefore their lower baseline.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from generators.base import GeneratedBatch, Generator
from harness.data.base import DataSource
from harness.errors import UsageError
from harness.registry import generators


@generators.register("labelmap")
class LabelMapGenerator(Generator):
    takes_checkpoint = False
    uses_seed = False
    baseline = "no-learning floor"
    description = "Phantom label maps as flat-intensity images (lower baseline)"

    def __init__(self, *, data: DataSource | None = None, split: str | None = None, **options: Any):
        from harness.data.phantom import PhantomSource

        if options:
            raise UsageError(f"generator 'labelmap' has no option(s) {', '.join(sorted(options))}; options: split")
        super().__init__(split=split)
        # Label maps come from the phantom; with another data source use a default phantom.
        self.data = data if isinstance(data, PhantomSource) else PhantomSource.from_spec(None)[0]
        self.split = split or self.data.heldout_split
        self.data.check_split(self.split)

    def default_n(self) -> int:
        return 800

    def sample(
        self, n: int, *, seed: int, batch_size: int = 32, conditions: Sequence[str] | None = None, start: int = 0
    ) -> Iterator[GeneratedBatch]:
        from harness.data.phantom import render_labelmap_image

        self.check_conditions(conditions)
        for batch in self.data.iter_batches(self.split, n - start, start=start, batch_size=batch_size):
            yield GeneratedBatch(
                images=render_labelmap_image(batch.label_maps),
                label_maps=batch.label_maps,
                conditions=batch.conditions,
                source_ids=batch.ids,
            )

    def fingerprint(self) -> dict:
        return {"generator": self.name, "data": self.data.fingerprint(), "split": self.split}
