"""Image sets on disk: ``images/NNNNNN.png`` + ``manifest.jsonl`` + ``run.json``.

A set is an append-only, index-addressed sequence of images. Every image is written to a temporary name
and renamed; its manifest line (index, file, sha256, seed, condition, ...) is appended only after the
rename. A killed run therefore leaves at most images without manifest lines (regenerated identically on
resume) and possibly one truncated last manifest line (dropped on resume). Because image ``i`` depends
only on (generator, checkpoint, seed, i), the run key leaves out ``n``: a later request for more images
extends the same set, and a request for fewer reuses its prefix.

The *content hash* of the first ``n`` images (sha256 over their sha256s in index order) identifies the
images for the feature cache, independently of where the set lives.

Several processes (``accelerate launch``) fill one set together: each writes its own indices with
:meth:`ImageSet.write_shard`, which appends to its own ``manifest.rank<r>.jsonl``; one process then folds the
shard manifests into ``manifest.jsonl`` with :meth:`ImageSet.merge_shards` (the contiguous prefix; entries
past a gap wait in ``manifest.pending.jsonl``). :meth:`ImageSet.open` merges leftovers of a killed
multi-process run, so a resume with any number of processes skips the images already written.

Two independent runs that ask for the same set do not write it at the same time: :func:`writer_lock` (an
advisory ``flock`` on ``<set>/.writer.lock``) makes the second wait, then resume from what the first wrote.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from harness.errors import DataError, UsageError
from harness.io import IMAGE_SUFFIXES, atomic_write_bytes, atomic_write_json, list_images, read_image, sha256_bytes, sha256_file  # noqa: F401

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
SHARD_GLOB = "manifest.*.jsonl"  # manifest.rank<r>.jsonl (one per writing process) and manifest.pending.jsonl


LOCK_NAME = ".writer.lock"


@contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Hold the exclusive writer lock of the image set at ``root`` (created if needed) while in the block.

    Another process holding it makes this wait (a warning says so); the lock is released on exit, and by
    the OS if the process dies. Where ``fcntl`` is unavailable (Windows) this does nothing.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(root / LOCK_NAME, "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another process is writing the image set %s; waiting for it to finish "
                        "(this run then continues from its images)", root)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_key(parts: dict) -> str:
    """A stable hash of everything that determines the images (first 16 hex digits of sha256)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def encode_png(image: np.ndarray) -> bytes:
    """uint8 (H, W) → 8-bit L PNG; (H, W, 3) → RGB PNG. Deterministic bytes."""
    if image.dtype != np.uint8:
        raise UsageError(f"images must be uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


@dataclass
class ManifestEntry:
    index: int
    file: str
    sha256: str
    seed: int | None = None
    condition: str | None = None
    prompt: str | None = None
    label_map: str | None = None
    source_id: str | None = None

    def to_json(self) -> str:
        d = {k: v for k, v in self.__dict__.items() if v is not None}
        return json.dumps(d, sort_keys=True)


class ImageSet:
    """An image set folder. Use :meth:`open` (create or resume) and :meth:`write_batch`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.images_dir = self.root / "images"
        self.labels_dir = self.root / "labelmaps"
        self.manifest_path = self.root / "manifest.jsonl"
        self.run_json = self.root / "run.json"
        self.entries: list[ManifestEntry] = []

    # opening ------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: Path, info: dict, *, key: str) -> ImageSet:
        """Create the set at ``root`` or resume it; ``info`` goes to run.json (must match ``key``)."""
        s = cls(root)
        try:
            s.images_dir.mkdir(parents=True, exist_ok=True)
            probe = s.root / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise DataError(
                f"cannot write the image set under {s.root}: {exc.strerror or exc}. "
                "Choose a writable folder with --out or ECHOBENCH_HOME."
            ) from exc
        if s.run_json.exists():
            old = json.loads(s.run_json.read_text())
            if old.get("key") != key:
                raise DataError(f"{s.run_json} belongs to run key {old.get('key')}, not {key}; remove the folder")
        else:
            atomic_write_json(s.run_json, {**info, "key": key, "format_version": FORMAT_VERSION})
        s._load_manifest(repair=True)
        s.merge_shards()
        return s

    @classmethod
    def attach(cls, root: Path, *, key: str) -> ImageSet:
        """Open a set another process has created with :meth:`open` (read-only on ``manifest.jsonl``)."""
        s = cls(root)
        info = s.info()
        if info.get("key") != key:
            raise DataError(f"{s.run_json} belongs to run key {info.get('key')}, not {key}; remove the folder")
        if s.manifest_path.exists():
            s._load_manifest(repair=False)
        return s

    @classmethod
    def read(cls, root: Path) -> ImageSet:
        """Open an existing set for reading; a corrupt manifest line is a DataError naming the line."""
        s = cls(root)
        if not s.manifest_path.exists():
            raise DataError(f"{root} is not an image set (no manifest.jsonl)")
        s._load_manifest(repair=False)
        return s

    def _load_manifest(self, *, repair: bool) -> None:
        """Read manifest lines; keep the contiguous valid prefix 0..k-1 whose files exist.

        With ``repair`` (resume) a corrupt line or a gap ends the valid prefix: everything after it is
        regenerated and the manifest is rewritten atomically. Without ``repair`` it is an error.
        """
        self.entries = []
        if not self.manifest_path.exists():
            return
        lines = self.manifest_path.read_text(encoding="utf-8", errors="replace").splitlines()
        dirty = False
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                entry = ManifestEntry(**d)
                ok = entry.index == len(self.entries) and (self.root / entry.file).is_file()
            except (json.JSONDecodeError, TypeError) as exc:
                if not repair:
                    raise DataError(f"{self.manifest_path} line {lineno}: corrupt manifest line ({exc})") from exc
                log.warning("%s line %d is corrupt; regenerating from index %d", self.manifest_path, lineno, len(self.entries))
                dirty = True
                break
            if not ok:
                if not repair:
                    raise DataError(f"{self.manifest_path} line {lineno}: index {d.get('index')} or file {d.get('file')} is missing")
                dirty = True
                break
            self.entries.append(entry)
        if dirty or len(self.entries) != sum(1 for ln in lines if ln.strip()):
            self._rewrite_manifest()

    def _rewrite_manifest(self) -> None:
        atomic_write_bytes(self.manifest_path, "".join(e.to_json() + "\n" for e in self.entries).encode())

    # shards (several writing processes) ---------------------------------------------------------
    def shard_manifest_path(self, rank: int) -> Path:
        return self.root / f"manifest.rank{rank}.jsonl"

    def shard_entries(self) -> dict[int, ManifestEntry]:
        """Entries of the shard manifests past ``manifest.jsonl`` whose image files exist, by index.

        A corrupt or truncated line (a process killed mid-write) is skipped: its image is regenerated.
        """
        found: dict[int, ManifestEntry] = {}
        for path in sorted(self.root.glob(SHARD_GLOB)):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                if not line.strip():
                    continue
                try:
                    entry = ManifestEntry(**json.loads(line))
                except (json.JSONDecodeError, TypeError):
                    log.warning("%s: skipping a corrupt line (its image is regenerated)", path)
                    continue
                if entry.index >= len(self.entries) and (self.root / entry.file).is_file():
                    found.setdefault(entry.index, entry)
        return found

    def missing(self, n: int) -> list[int]:
        """Indices below ``n`` in neither ``manifest.jsonl`` nor a shard manifest, ascending."""
        have = self.shard_entries()
        return [i for i in range(len(self.entries), n) if i not in have]

    def merge_shards(self) -> None:
        """Fold the shard manifests into ``manifest.jsonl`` (call from one process, while no other writes).

        The contiguous run of indices after the current prefix is appended (the manifest is rewritten
        atomically); entries past a gap go to ``manifest.pending.jsonl``; the shard files are then removed.
        A crash between these steps leaves duplicates only, which the next merge drops.
        """
        files = sorted(self.root.glob(SHARD_GLOB))
        if not files:
            return
        extra = self.shard_entries()
        added = False
        while len(self.entries) in extra:
            self.entries.append(extra.pop(len(self.entries)))
            added = True
        if added:
            self._rewrite_manifest()
        pending = self.root / "manifest.pending.jsonl"
        if extra:
            atomic_write_bytes(pending, "".join(extra[i].to_json() + "\n" for i in sorted(extra)).encode())
        for path in files:
            if path != pending or not extra:
                path.unlink(missing_ok=True)

    # writing ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries)

    def write_batch(self, start: int, images: np.ndarray, **meta: Any) -> None:
        """Write images ``start .. start+B-1`` (``start`` must equal ``len(self)``).

        ``meta``: per-image ``seeds``, ``conditions``, ``prompts``, ``label_maps``, ``source_ids`` (see
        :meth:`_write_images`)."""
        if start != len(self.entries):
            raise RuntimeError(f"image set {self.root}: write at index {start}, expected {len(self.entries)}")
        entries = self._write_images(start, images, **meta)
        self.entries.extend(entries)
        _append_lines(self.manifest_path, entries)

    def write_shard(self, rank: int, start: int, images: np.ndarray, **meta: Any) -> None:
        """Write images ``start .. start+B-1`` at any free indices; their lines go to ``manifest.rank<rank>.jsonl``.

        ``meta``: the keyword arguments of :meth:`write_batch`. Merge with :meth:`merge_shards`.
        """
        _append_lines(self.shard_manifest_path(rank), self._write_images(start, images, **meta))

    def _write_images(
        self,
        start: int,
        images: np.ndarray,
        *,
        seeds: Sequence[int | None] | None = None,
        conditions: Sequence[str | None] | None = None,
        prompts: Sequence[str | None] | None = None,
        label_maps: np.ndarray | None = None,
        source_ids: Sequence[str | None] | None = None,
    ) -> list[ManifestEntry]:
        """Write the image (and label-map) files atomically; return their manifest entries."""
        from harness.validate import check_image_size

        for j, image in enumerate(images):  # all checked before the first file is written
            check_image_size(np.shape(image), f"image {start + j} for the image set {self.root}")
        entries = []
        for j, image in enumerate(images):
            i = start + j
            name = f"{i:06d}.png"
            data = encode_png(np.asarray(image))
            atomic_write_bytes(self.images_dir / name, data)
            label_rel = None
            if label_maps is not None:
                atomic_write_bytes(self.labels_dir / name, encode_png(np.asarray(label_maps[j], dtype=np.uint8)))
                label_rel = f"labelmaps/{name}"
            entry = ManifestEntry(
                index=i,
                file=f"images/{name}",
                sha256=sha256_bytes(data),
                seed=None if seeds is None else seeds[j],
                condition=None if conditions is None else conditions[j],
                prompt=None if prompts is None else prompts[j],
                label_map=label_rel,
                source_id=None if source_ids is None else source_ids[j],
            )
            entries.append(entry)
        return entries

    # reading ------------------------------------------------------------------------------------
    def content_hash(self, n: int | None = None) -> str:
        """sha256 over the first ``n`` images' sha256s, in index order."""
        entries = self.entries if n is None else self.entries[:n]
        h = hashlib.sha256()
        for e in entries:
            h.update(e.sha256.encode())
        return h.hexdigest()

    def iter_images(self, n: int | None = None, batch_size: int = 64, start: int = 0) -> Iterator[list[np.ndarray]]:
        """Yield images ``start .. n-1`` (default: all) as uint8 RGB arrays, in batches."""
        entries = (self.entries if n is None else self.entries[:n])[start:]
        for k in range(0, len(entries), batch_size):
            yield [read_image(self.root / e.file, mode="rgb") for e in entries[k : k + batch_size]]

    def load_images(self, n: int | None = None) -> list[np.ndarray]:
        return [im for batch in self.iter_images(n) for im in batch]

    def load_label_maps(self, n: int | None = None) -> list[np.ndarray | None]:
        """The label map of each of the first ``n`` images (uint8 (H, W), values as written) or ``None`` for an
        image without one; an unreadable label-map file is a DataError naming it."""
        entries = self.entries if n is None else self.entries[:n]
        return [None if e.label_map is None else _read_label_map(self.root / e.label_map) for e in entries]

    def conditions(self, n: int | None = None) -> list[str | None]:
        """The condition recorded for each of the first ``n`` images (``None`` where none was)."""
        entries = self.entries if n is None else self.entries[:n]
        return [e.condition for e in entries]

    def info(self) -> dict:
        return json.loads(self.run_json.read_text()) if self.run_json.exists() else {}


def _read_label_map(path: Path) -> np.ndarray:
    """A label-map PNG as uint8 (H, W) with its stored values (8-bit grayscale; never converted to RGB)."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "P"):
                raise DataError(f"label map {path} has mode {im.mode}; label maps are 8-bit single-channel PNGs")
            return np.asarray(im, dtype=np.uint8)
    except FileNotFoundError as exc:
        raise DataError(f"label map {path} does not exist (the image set's manifest names it)") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read label map {path}: {exc}") from exc


def _append_lines(path: Path, entries: Sequence[ManifestEntry]) -> None:
    """Append manifest lines and fsync (the image files are already in place)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(e.to_json() + "\n" for e in entries))
        f.flush()
        os.fsync(f.fileno())
