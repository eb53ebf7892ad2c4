"""CAMUS (user-provided): the public apical 4- and 2-chamber segmentation dataset (500 patients), read with SimpleITK.

``camus:DIR`` or ``camus:DIR@split`` (``train``, ``val``, ``test``). Both public releases are read:

- the NIfTI release: ``DIR/database_nifti/patientNNNN/patientNNNN_4CH_{ED,ES}.nii.gz`` with
  ``patientNNNN_4CH_{ED,ES}_gt.nii.gz`` (``DIR`` may also be the ``database_nifti`` folder itself; the half
  sequences are not used), and its split files ``DIR/database_split/subgroup_{training,validation,testing}.txt``
  (one patient name per line) when present;
- the original challenge release: ``DIR/training/patientNNNN/patientNNNN_4CH_{ED,ES}.mhd`` (+ ``.raw``) with
  ``..._gt.mhd`` (``DIR`` may also be the ``training`` folder).

Splits: the release's split files when present; otherwise a documented patient-level split by name hash: a
patient is in ``test`` when the first 8 hex digits of ``sha256(patient name)`` read as a number in [0, 1) are below
0.1, in ``val`` below 0.2, else in ``train`` (the same on every machine; both frames of a patient stay together).
As ``--data camus:DIR`` the ``real`` baseline samples ``val`` and the default reference is ``camus:DIR@test``.

Samples: per patient, the ED then the ES frame of the chosen view (option ``view``: ``4CH`` default, or ``2CH``),
patients in name order. Images are converted to uint8 grey (min-max scaled when stored otherwise) and resized like
EchoNet frames (option ``size``, default 256; 0 keeps the native size); ground truth (1 LV endocardium, 2 LV
myocardium, 3 LA) is mapped onto the phantom's label values by :data:`harness.data.labels.SOURCE_LABELS` (LV → 3,
myocardium → 2, LA → 5) and resized with nearest-neighbour interpolation.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from harness.data.base import DataSource, SampleBatch, resize_frame, split_at
from harness.data.labels import to_phantom_labels
from harness.errors import DataError, UsageError
from harness.registry import datasets

log = logging.getLogger(__name__)

VIEWS = ("4CH", "2CH")
PHASES = ("ED", "ES")
SPLIT_FILES = {"train": "subgroup_training.txt", "val": "subgroup_validation.txt", "test": "subgroup_testing.txt"}
SUFFIXES = (".nii.gz", ".nii", ".mhd")


def patient_split(name: str) -> str:
    """The documented split of a patient when the release ships no split files (see the module doc)."""
    u = int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:8], 16) / 16**8
    return "test" if u < 0.1 else "val" if u < 0.2 else "train"


def _find_patients(root: Path) -> tuple[Path, list[Path]]:
    """(the folder holding ``patientNNNN`` folders, those folders sorted by name)."""
    for base in (root / "database_nifti", root / "training", root):
        if base.is_dir():
            patients = sorted((p for p in base.iterdir() if p.is_dir() and p.name.lower().startswith("patient")),
                              key=lambda p: p.name)
            if patients:
                return base, patients
    raise DataError(f"{root}: no CAMUS patient folders found (expected database_nifti/patientNNNN/ (NIfTI release) or "
                    f"training/patientNNNN/ (challenge release))")


def _frame_file(folder: Path, stem: str) -> Path | None:
    return next((folder / f"{stem}{s}" for s in SUFFIXES if (folder / f"{stem}{s}").is_file()), None)


def read_volume(path: Path) -> np.ndarray:
    """A CAMUS frame or ground-truth file as a 2-D array: 2-D images, or 3-D with one frame; else a DataError."""
    import SimpleITK as sitk

    try:
        arr = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    except RuntimeError as exc:
        raise DataError(f"{path}: cannot read with SimpleITK ({str(exc).strip().splitlines()[-1]})") from None
    if arr.ndim == 3 and 1 in arr.shape:
        arr = arr.reshape([s for s in arr.shape if s != 1] if arr.shape.count(1) < 3 else (1, 1))
    if arr.ndim != 2:
        raise DataError(f"{path}: expected a 2-D image (or 3-D with one frame), found shape {arr.shape}")
    return arr


def to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    a = arr.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    return np.zeros(a.shape, np.uint8) if hi <= lo else np.round((a - lo) / (hi - lo) * 255).astype(np.uint8)


@datasets.register("camus")
class CamusSource(DataSource):
    """CAMUS (NIfTI or challenge release): A4C/A2C ED/ES frames with LV, myocardium and LA ground truth."""

    description = "CAMUS (NIfTI or challenge release): A4C/A2C ED/ES frames with LV/myocardium/LA ground truth"
    splits = ("train", "val", "test")
    default_split = "test"
    reference_split = "test"
    heldout_split = "val"
    has_label_maps = True
    OPTIONS = ("view", "size")

    def __init__(self, root: str | Path, *, view: str = "4CH", size: int | str | None = 256):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"CAMUS folder {self.root} does not exist")
        self.view = str(view).upper()
        if self.view not in VIEWS:
            raise UsageError(f"camus option view={view!r}: use one of {', '.join(VIEWS)}")
        try:
            self.size = int(size) if size not in (None, "", "native") else 0
        except (TypeError, ValueError):
            raise UsageError(f"camus option size={size!r}: expected an integer (0 = native)") from None
        if self.size < 0:
            raise UsageError(f"camus option size={self.size}: must be >= 0")
        self.base, patients = _find_patients(self.root)
        by_split = self._split_patients([p.name for p in patients])
        self.samples: dict[str, list[tuple[Path, Path]]] = {s: [] for s in self.splits}
        folders = {p.name: p for p in patients}
        for split, names in by_split.items():
            for name in names:
                self.samples[split] += [self._pair(folders[name], name, phase) for phase in PHASES]

    def _split_patients(self, names: list[str]) -> dict[str, list[str]]:
        split_dir = next((d for d in (self.root / "database_split", self.base.parent / "database_split") if d.is_dir()), None)
        if split_dir is None:
            self.split_source = "name hash (no database_split/ found)"
            return {s: [n for n in names if patient_split(n) == s] for s in self.splits}
        self.split_source = str(split_dir)
        out = {}
        known = set(names)
        for split, file in SPLIT_FILES.items():
            path = split_dir / file
            if not path.is_file():
                raise DataError(f"{path} not found: database_split/ needs {', '.join(SPLIT_FILES.values())}")
            listed = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
            missing = [n for n in listed if n not in known]
            if missing:
                raise DataError(f"{path}: patient {missing[0]} is listed but {self.base / missing[0]} does not exist "
                                f"({len(missing)} missing)")
            out[split] = sorted(listed)
        return out

    def _pair(self, folder: Path, name: str, phase: str) -> tuple[Path, Path]:
        stem = f"{name}_{self.view}_{phase}"
        image = _frame_file(folder, stem)
        if image is None:
            raise DataError(f"{folder}: no {stem}.nii.gz / .mhd (the {self.view} {phase} frame of {name})")
        gt = _frame_file(folder, f"{stem}_gt")
        if gt is None:
            raise DataError(f"{folder / (stem + '_gt' + image.name[len(stem):])} not found: the ground truth of "
                            f"{image.name} is missing - restore it or remove patient {name}")
        return image, gt

    @classmethod
    def from_spec(cls, arg: str | None, **options) -> tuple[CamusSource, str]:
        unknown = sorted(set(options) - set(cls.OPTIONS))
        if unknown:
            raise UsageError(f"camus: unknown option(s) {', '.join(unknown)}; valid: {', '.join(cls.OPTIONS)}")
        root, requested = split_at(arg)
        if not root:
            raise UsageError("camus needs the dataset folder: camus:DIR or camus:DIR@split")
        source = cls(root, **options)
        split = requested or cls.default_split
        source.check_split(split)
        source.requested_split = requested
        return source, split

    def spec_for(self, split: str) -> str:
        return f"camus:{self.root}@{split}"

    def count(self, split: str) -> int:
        self.check_split(split)
        return len(self.samples[split])

    def fingerprint(self) -> dict:
        h = hashlib.sha256()
        for split in self.splits:
            for image, gt in self.samples[split]:
                h.update(f"{split}:{image.relative_to(self.root)}:{image.stat().st_size}:{gt.stat().st_size}\n".encode())
        return {"source": "camus", "path": str(self.root.resolve()), "view": self.view, "size": self.size,
                "files": h.hexdigest()[:16]}

    def read(self, image: Path, gt: Path) -> tuple[np.ndarray, np.ndarray]:
        frame, labels = read_volume(image), read_volume(gt)
        if frame.shape != labels.shape:
            raise DataError(f"{gt}: ground truth shape {labels.shape} differs from {image.name}'s {frame.shape}")
        if labels.dtype.kind == "f" and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
            raise DataError(f"{gt}: ground-truth values must be whole numbers 0-3 (found non-integer values)")
        mapped = to_phantom_labels(labels.astype(np.int64), "camus", where=str(gt))
        return resize_frame(to_uint8(frame), self.size), resize_frame(mapped, self.size, nearest=True)

    def iter_batches(self, split: str, n: int, *, start: int = 0, batch_size: int = 64) -> Iterator[SampleBatch]:
        self.check_split(split)
        samples = self.samples[split]
        if start < 0 or n < 0 or start + n > len(samples):
            raise UsageError(f"camus split {split!r} has {len(samples)} frame(s); requested {start}..{start + n - 1}")
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1 (got {batch_size})")
        for b0 in range(start, start + n, batch_size):
            chunk = samples[b0:min(b0 + batch_size, start + n)]
            pairs = [self.read(image, gt) for image, gt in chunk]
            images, labels = [p[0] for p in pairs], [p[1] for p in pairs]
            same = all(im.shape == images[0].shape for im in images)
            yield SampleBatch(images=np.stack(images) if same else images,
                              ids=[f"camus/{split}/{image.parent.name}/{image.name.split('.')[0]}" for image, _ in chunk],
                              label_maps=np.stack(labels) if same else None)
