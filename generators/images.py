"""``images``: score a folder of images generated elsewhere (``--images DIR``), like clean-fid's
``compute_fid(dir1, dir2)``. Files are read in name order; PNG/JPEG/BMP/TIFF, grayscale or RGB, any size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from generators.base import GeneratedBatch, Generator
from harness.data.base import DataSource
from harness.errors import DataError, UsageError
from harness.registry import generators


@generators.register("images")
class ImagesGenerator(Generator):
    takes_checkpoint = False
    uses_seed = False
    description = "A folder of images generated elsewhere (--images DIR)"
    batch_size_invariant = True

    def __init__(self, *, data: DataSource | None = None, images: str | None = None, **options: Any):
        if options:
            raise UsageError(f"generator 'images' has no option(s) {', '.join(sorted(options))}; options: images")
        if not images:
            raise UsageError("generator 'images' needs the folder of generated images: --images DIR")
        from harness.data.folder import FolderSource

        super().__init__(images=str(images))
        self.folder, self.split = FolderSource.from_spec(str(images))
        self.count = self.folder.count(self.split) or 0
        if self.count < 2:
            raise DataError(f"image folder {images} has {self.count} image(s); at least 2 are needed")
        self._check_first_size()

    def _check_first_size(self) -> None:
        """Refuse a folder of tiny images (e.g. 1×1) before anything is written: the first file's header is read."""
        from PIL import Image

        from harness.validate import check_image_size

        first = (getattr(self.folder, "files", None) or [None])[0]
        if first is None:
            return
        try:
            with Image.open(first) as im:
                w, h = im.size
        except Exception:  # noqa: BLE001 (an unreadable file is reported by name when it is read)
            return
        check_image_size((h, w), f"image {first}")

    def default_n(self) -> int:
        return self.count

    def sample(
        self, n: int, *, seed: int, batch_size: int = 32, conditions: Sequence[str] | None = None, start: int = 0
    ) -> Iterator[GeneratedBatch]:
        self.check_conditions(conditions)
        if n > self.count:
            raise DataError(f"image folder {self.options['images']} has {self.count} images; asked for {n} (use --n {self.count})")
        for batch in self.folder.iter_batches(self.split, n - start, start=start, batch_size=batch_size):
            yield GeneratedBatch(images=batch.images, source_ids=batch.ids)

    def fingerprint(self) -> dict:
        # The images themselves decide the set; the folder fingerprint (paths, sizes, mtimes) keys reuse.
        return {"generator": self.name, "data": self.folder.fingerprint()}
