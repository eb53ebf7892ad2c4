"""The feature-extractor protocol.

An extractor owns its preprocessing (resize, normalisation), and its :meth:`fingerprint` names
everything that changes the numbers (extractor name, weights hash, preprocessing version), so that the
feature cache never serves features computed differently.

``feature_space`` is the label printed beside every number computed in this space: only ``inception``
(the real FID network) may be called FID; everything else is ``FD_<space>``. ``substitute`` is True for
spaces that stand in for a pretrained network (random-init weights); such numbers always say so.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np


class FeatureExtractor(ABC):
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    feature_space: ClassVar[str] = ""
    substitute: ClassVar[bool] = False
    dim: ClassVar[int] = 0
    preprocessing_version: ClassVar[str] = "1"

    def __init__(self, *, device: str = "auto", batch_size: int = 32, weights: str | None = None):
        self.device = device
        self.batch_size = batch_size
        self.weights = weights

    @abstractmethod
    def extract_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Images: uint8 (H, W, 3) arrays, sizes may differ. Returns float (B, dim) features."""

    def prepare(self) -> None:  # noqa: B027 (optional hook)
        """Locate the weights / build the network before any long work, so that a missing or wrong weight file fails
        in a second (the runner's plan stage calls it). Weight-free extractors need nothing."""

    def weights_id(self) -> str:
        """A short hash of the weights used (``"none"`` for weight-free extractors)."""
        return "none"

    def fingerprint(self) -> str:
        """Readable cache-key component: ``<name>-<weights id>-p<preprocessing version>``."""
        return f"{self.name}-{self.weights_id()}-p{self.preprocessing_version}"

    def metric_name(self, family: str) -> str:
        """Name of a result of metric ``family`` (``FD``, ``KD``, ``MMD``) in this space: see :func:`metric_name`."""
        return metric_name(self.feature_space, family)

    @classmethod
    def availability(cls) -> str:
        """One line for ``harness list``: whether needed weights are present."""
        return "ok"


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` → ``"cuda"`` when a GPU is visible, else ``"cpu"`` (resolved at run time)."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


#: Metric families and their published names in the Inception space (the only space that may say "FID"/"KID").
INCEPTION_NAMES = {"FD": "FID", "KD": "KID"}


def metric_name(feature_space: str | None, family: str) -> str:
    """The one naming rule: ``FID``/``KID`` in the Inception space, ``<family>_<space>`` in every other space
    (``FD_radiomics``, ``KD_dinov2``, ``MMD_radiomics``). Extractors may override :meth:`FeatureExtractor.metric_name`
    (CLIP calls its MMD ``CMMD``)."""
    if feature_space == "inception" and family in INCEPTION_NAMES:
        return INCEPTION_NAMES[family]
    return f"{family}_{feature_space or 'unknown'}"

