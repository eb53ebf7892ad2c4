"""What the transformers-based ViT extractors (:mod:`~harness.features.dinov2`, :mod:`~harness.features.clip`)
share: PIL preprocessing, finding and checking a model folder, random-init tiny stand-ins, batching.

A pretrained extractor finds its model folder through :mod:`harness.features.weights` (``--weights DIR`` — a
folder written by ``save_pretrained`` or a hub snapshot —, ``$ECHOBENCH_WEIGHTS/<folder>``, the Hugging Face hub
cache, EchoBench's weights folder; downloaded with a SHA-256 check only when online). The folder's
``config.json`` is checked against the architecture the feature space is defined by *before* loading, and
every weight the model needs must be in the checkpoint (no silently random-initialised head): a folder of
another model is a :class:`~harness.errors.UsageError` that names what was found.

A random stand-in (``random-dinov2``, ``random-clip``) builds the same architecture at a tiny size from a config
under a fixed seed, never downloads anything, and is ``substitute = True``.

The fingerprint (feature-cache key) is ``<name>-<hash of config.json + weight file>-p<preprocessing version>``;
random stand-ins use ``random-<hash of their config>-seed0``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.data.base import to_rgb
from harness.errors import DataError, MissingWeightsError, UsageError
from harness.features.base import FeatureExtractor, resolve_device
from harness.features.weights import ModelSpec, find_model_dir, model_dir_hash, resolve_model_dir

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_SEED = 0


# preprocessing -------------------------------------------------------------------------------------
def as_rgb_uint8(image: np.ndarray, index: int = 0) -> np.ndarray:
    """uint8 (H, W, 3): grey images (H, W) or (H, W, 1) are replicated to 3 channels, RGBA drops alpha."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise DataError(f"image {index}: dtype {arr.dtype}; the ViT extractors take 8-bit images (0..255)")
    if arr.ndim not in (2, 3) or min(arr.shape[:2]) < 1:
        raise DataError(f"image {index}: shape {arr.shape}; expected (H, W) or (H, W, C)")
    return to_rgb(arr)


def pil_resize(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """PIL bicubic resize of a uint8 RGB image (what torchvision's ``Resize`` does on PIL images and the
    transformers PIL image processors do); returns uint8 (height, width, 3)."""
    from PIL import Image

    if rgb.shape[:2] == (height, width):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BICUBIC))


def normalise(batch: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 (B, H, W, 3) → float32 (B, 3, H, W): ``(x / 255 − mean) / std`` per channel."""
    x = batch.astype(np.float32) * np.float32(1 / 255)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# transformers plumbing -------------------------------------------------------------------------------
@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' loading report and progress bars for the duration (restored afterwards)."""
    from transformers.utils import logging as tlog

    level, bars = tlog.get_verbosity(), tlog.is_progress_bar_enabled()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        tlog.set_verbosity(level)
        if bars:
            tlog.enable_progress_bar()


def read_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{folder / 'config.json'} cannot be read as JSON ({exc}); re-save the model") from exc


def describe_config(cfg: dict) -> str:
    """One phrase for a model config: ``'clip_vision_model' (CLIPVisionModel), hidden 1024, 24 layers, patch 14``."""
    arch = ",".join(cfg.get("architectures") or []) or "?"
    sub = cfg.get("vision_config") or cfg
    return (f"{cfg.get('model_type')!r} ({arch}), hidden {sub.get('hidden_size')}, "
            f"{sub.get('num_hidden_layers')} layers, patch {sub.get('patch_size')}, image size {sub.get('image_size')}")


def check_architecture(folder: Path, cfg: dict, vision: dict, model_types: Sequence[str], expected: dict[str, Any],
                       what: str, hint: str = "") -> None:
    """Raise :class:`UsageError` when ``cfg`` is not one of ``model_types`` or ``vision`` (the vision part of
    the config) differs from ``expected`` in any key; the message names what was found."""
    found = describe_config(cfg)
    if cfg.get("model_type") not in model_types:
        raise UsageError(f"weights folder {folder} holds a {found} model, not {what}. {hint}".strip())
    wrong = {k: (vision.get(k), v) for k, v in expected.items() if vision.get(k) != v}
    if wrong:
        diff = ", ".join(f"{k} {got} (needs {want})" for k, (got, want) in wrong.items())
        raise UsageError(f"weights folder {folder} holds {found}: {diff}; it is not {what}. {hint}".strip())


def config_hash(config) -> str:
    """Short SHA-256 of a transformers config (its JSON, keys sorted)."""
    return hashlib.sha256(config.to_json_string(use_diff=False).encode()).hexdigest()[:12]


# the shared extractor ------------------------------------------------------------------------------------
class ViTExtractor(FeatureExtractor):
    """A transformers vision model: ``preprocess`` (uint8 images → float32 NCHW) then ``embed`` (→ (B, dim)).

    Subclasses set ``model_spec`` (pretrained, found via the weights mechanism) or override
    :meth:`random_config` (a random stand-in), and implement :meth:`preprocess`, :meth:`load_pretrained`,
    :meth:`build_random`, :meth:`embed`.
    """

    model_spec: ClassVar[ModelSpec | None] = None

    def __init__(self, *, device: str = "auto", batch_size: int = 32, weights: str | None = None):
        if self.model_spec is None and weights is not None:
            raise UsageError(f"{self.name} is a random-init stand-in and takes no weights (got {weights!r}); "
                             f"use the pretrained feature space for a weights folder")
        super().__init__(device=device, batch_size=batch_size, weights=weights)
        self._folder: Path | None = None
        self._model = None
        self._model_device: str | None = None

    # weights ------------------------------------------------------------------------------------
    def model_dir(self) -> Path:
        """The model folder used (found or downloaded); raises :class:`MissingWeightsError` when unavailable."""
        if self.model_spec is None:
            raise UsageError(f"{self.name} has no weights folder (random-init stand-in)")
        if self._folder is None:
            self._folder = resolve_model_dir(self.model_spec, self.weights)
        return self._folder

    def prepare(self) -> None:
        """Find the weights (pretrained) or build the model (stand-in) before any long work, so that a missing or
        wrong folder fails in a second."""
        self._network("cpu" if self._model is None else self._model_device or "cpu")

    def weights_id(self) -> str:
        if self.model_spec is None:
            return f"random-{config_hash(self.random_config())}-seed{RANDOM_SEED}"
        return model_dir_hash(self.model_dir())

    @classmethod
    def availability(cls) -> str:
        if cls.model_spec is None:
            return "ok (random-init stand-in, no weights needed)"
        try:
            path = find_model_dir(cls.model_spec)
        except MissingWeightsError as exc:
            return f"missing weights: {exc}"
        if path is None:
            return (f"missing weights: {cls.model_spec.repo_id} (pass --weights DIR, put it at "
                    f"$ECHOBENCH_WEIGHTS/{cls.model_spec.folder}, or download it into the Hugging Face cache)")
        return f"ok ({path})"

    # model --------------------------------------------------------------------------------------
    @classmethod
    def random_config(cls):
        raise NotImplementedError

    def load_pretrained(self, folder: Path):
        raise NotImplementedError

    def build_random(self):
        raise NotImplementedError

    def preprocess(self, images: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def embed(self, model, pixel_values):
        raise NotImplementedError

    def _network(self, device: str):
        if self._model is None:
            import torch

            if self.model_spec is None:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(RANDOM_SEED)
                    model = self.build_random()
            else:
                with quiet_transformers():
                    model = self.load_pretrained(self.model_dir())
            self._model, self._model_device = model.eval(), "cpu"
        if self._model_device != device:  # the model belongs to this extractor: moved, not copied
            self._model = self._model.to(device)
            self._model_device = device
        return self._model

    def extract_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        device = resolve_device(self.device)
        model = self._network(device)
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                x = torch.from_numpy(self.preprocess(images[start:start + self.batch_size])).to(device)
                out.append(self.embed(model, x).float().cpu().numpy())
        feats = np.concatenate(out).astype(np.float32, copy=False)
        if feats.shape[1] != self.dim:
            raise DataError(f"{self.name}: the model returned {feats.shape[1]}-d features, expected {self.dim}")
        return feats


def load_checked(model_cls, folder: Path, config, what: str, hint: str = ""):
    """``model_cls.from_pretrained(folder, config=config)`` offline; any weight the model needs that the checkpoint
    lacks (it would be random-initialised silently) is a :class:`UsageError` listing them."""
    import pickle

    from safetensors import SafetensorError

    try:
        model, info = model_cls.from_pretrained(folder, config=config, local_files_only=True, output_loading_info=True)
    except (OSError, RuntimeError, ValueError, SafetensorError, pickle.UnpicklingError) as exc:  # a corrupt weight file too
        raise UsageError(f"weights folder {folder} could not be loaded as {what}: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}. {hint}".strip()) from exc
    missing = sorted(info.get("missing_keys") or [])
    mismatched = sorted(str(m) for m in (info.get("mismatched_keys") or []))
    if missing or mismatched:
        listed = ", ".join((missing + mismatched)[:5]) + (" ..." if len(missing) + len(mismatched) > 5 else "")
        raise UsageError(f"weights folder {folder} lacks weights {what} needs ({len(missing) + len(mismatched)}: "
                         f"{listed}); they would be random. {hint}".strip())
    return model
