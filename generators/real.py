"""``real``: held-out real images of a data source — the noise floor every generator is compared with.

It samples the source's held-out split (``heldout_split``: ``test`` for the phantom, whose reference set
comes from its own ``reference`` split), so real-vs-reference distances measure pure sampling noise.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from generators.base import GeneratedBatch, Generator
from harness.data.base import DataSource
from harness.errors import DataError, UsageError
from harness.registry import generators


@generators.register("real")
class RealGenerator(Generator):
    takes_checkpoint = False
    uses_seed = False
    samples_data_split = True
    baseline = "noise floor"
    description = "Held-out real images of a data source (the noise floor)"

    def __init__(self, *, data: DataSource, split: str | None = None, **options: Any):
        if options:
            raise UsageError(f"generator 'real' has no option(s) {', '.join(sorted(options))}; options: split")
        super().__init__(split=split)
        self.data = data
        self.split = split or data.heldout_split
        data.check_split(self.split)

    def default_n(self) -> int:
        count = self.data.count(self.split)
        return 800 if count is None else min(800, count)

    def sample(
        self, n: int, *, seed: int, batch_size: int = 32, conditions: Sequence[str] | None = None, start: int = 0
    ) -> Iterator[GeneratedBatch]:
        self.check_conditions(conditions)
        count = self.data.count(self.split)
        if count is not None and n > count:
            raise DataError(
                f"data source {self.data.name!r} split {self.split!r} has {count} images; asked for {n} (use --n {count})"
            )
        for batch in self.data.iter_batches(self.split, n - start, start=start, batch_size=batch_size):
            yield GeneratedBatch(images=batch.images, conditions=batch.conditions, label_maps=batch.label_maps,
                                 source_ids=batch.ids)

    @property
    def label_source(self) -> str:
        """Whose annotation conventions its copied label maps follow (``harness.data.labels``; phantom values)."""
        return self.data.name

    def fingerprint(self) -> dict:
        # "label_maps": sets written before real copied label maps (which lack them) are not reused
        return {"generator": self.name, "data": self.data.fingerprint(), "split": self.split, "label_maps": 1}
