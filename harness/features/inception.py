"""Inception-v3 pool3 features: the FID network (``inception``) and a random-init stand-in (``random-inception``).

Both use clean-fid's "clean" preprocessing (Parmar et al. 2022, "On Aliased Resizing and Surprising
Subtleties in GAN Evaluation"): each channel of the uint8 image is resized to 299×299 by PIL bicubic in
float32 (``cleanfid.resize.make_resizer("PIL", False, "bicubic", (299, 299))``, no re-quantisation), the
values stay in [0, 255], and the network sees ``(x − 128) / 128``.

``inception`` loads the TorchScript port of the TensorFlow FID Inception (``inception-2015-12-05.pt``, the
file clean-fid and StyleGAN2-ADA use) and returns its 2048-d pool3 output, exactly as clean-fid's
``InceptionV3W.forward`` does in "clean" mode. Only numbers in this space may be called FID. Weights are
found by :mod:`harness.features.weights` (``--weights``, ``$ECHOBENCH_WEIGHTS``, clean-fid's cache path, the
torch hub folder, our cache; downloaded only when online).

``random-inception`` is torchvision's Inception-v3 architecture with random weights drawn under a fixed
seed. It is NOT FID: it is a weight-free sanity baseline (random embeddings still give usable relative
signals, Naeem et al. 2020) for tests and offline runs.

Features are returned as float32 (B, 2048), the dtype clean-fid's ``get_batch_features`` returns; statistics
(mean, covariance) are computed from them in float64 downstream, as clean-fid does.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import platform
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness.data.base import to_rgb
from harness.errors import MissingWeightsError, UsageError
from harness.features.base import FeatureExtractor, resolve_device
from harness.features.weights import (
    KNOWN_SHA256,
    WeightSpec,
    find_weights,
    resolve_weights,
    torch_hub_checkpoints_dir,
    weights_hash,
)
from harness.registry import features

log = logging.getLogger(__name__)

INCEPTION_FILENAME = "inception-2015-12-05.pt"
INCEPTION_SHA256 = KNOWN_SHA256[INCEPTION_FILENAME]  # checked before the file is loaded (weights.check_sha256)
# The same URL as cleanfid.downloads_helper.inception_url (a test checks they agree).
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
INPUT_SIZE = (299, 299)
DIM = 2048


def cleanfid_cache_path() -> Path:
    """Where clean-fid keeps the file: ``/tmp`` (``./`` on Windows), see ``cleanfid.features.feature_extractor``."""
    folder = Path(".") if platform.system() == "Windows" else Path("/tmp")
    return folder / INCEPTION_FILENAME


def inception_spec() -> WeightSpec:
    """The Inception weight file and the other libraries' caches that may hold it."""
    return WeightSpec(
        filename=INCEPTION_FILENAME,
        url=INCEPTION_URL,
        known_locations=(cleanfid_cache_path(), torch_hub_checkpoints_dir() / INCEPTION_FILENAME),
        description="TorchScript Inception-v3 of the TensorFlow FID network, as used by clean-fid",
        sha256=INCEPTION_SHA256,
    )


def clean_resize(image: np.ndarray) -> np.ndarray:
    """clean-fid "clean" resize: uint8 (H, W[, 3]) → float32 (299, 299, 3) in [0, 255] (PIL bicubic per channel)."""
    from cleanfid.resize import make_resizer

    resizer = make_resizer("PIL", False, "bicubic", INPUT_SIZE)
    return resizer(to_rgb(np.asarray(image)))


def _to_tensor(images: Sequence[np.ndarray]):
    """Resize every image and stack to a float32 NCHW tensor in [0, 255] (clean-fid's ToTensor path)."""
    import torch

    batch = np.stack([clean_resize(im) for im in images]).astype(np.float32, copy=False)
    return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))


class _CleanInceptionBase(FeatureExtractor):
    """Shared batching: clean resize → (x − 128)/128 → network → float32 (B, 2048)."""

    dim = DIM
    preprocessing_version = "clean1"

    def _network(self, device: str):
        """The network (built or loaded once per device) mapping (x − 128)/128 to (B, 2048[, 1, 1])."""
        raise NotImplementedError

    def extract_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        device = resolve_device(self.device)
        net = self._network(device)
        out = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                x = _to_tensor(images[start:start + self.batch_size]).to(device)
                feats = net((x - 128.0) / 128.0)
                out.append(feats.reshape(x.shape[0], self.dim).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)


@features.register("inception")
class InceptionExtractor(_CleanInceptionBase):
    """Inception-v3 pool3 (2048-d), clean-fid 'clean' preprocessing: the FID network."""

    description = "Inception-v3 pool3 (2048-d), clean-fid 'clean' preprocessing: the FID network"
    feature_space = "inception"
    substitute = False

    def __init__(self, *, device: str = "auto", batch_size: int = 32, weights: str | None = None):
        super().__init__(device=device, batch_size=batch_size, weights=weights)
        self._path: Path | None = None
        self._net = None
        self._net_device: str | None = None

    def weights_path(self) -> Path:
        """The weight file used (found or downloaded); raises :class:`MissingWeightsError` when unavailable."""
        if self._path is None:
            self._path = resolve_weights(inception_spec(), self.weights)
        return self._path

    def weights_id(self) -> str:
        return weights_hash(self.weights_path())

    @classmethod
    def availability(cls) -> str:
        try:
            path = find_weights(inception_spec())
        except MissingWeightsError as exc:  # only for an explicit path, which is not given here
            return f"missing weights: {exc}"
        if path is None:
            return f"missing weights: {INCEPTION_FILENAME} (pass --weights PATH or set $ECHOBENCH_WEIGHTS)"
        return f"ok ({path})"

    def _network(self, device: str):
        if self._net is None or self._net_device != device:
            import torch

            path = self.weights_path()
            try:
                with warnings.catch_warnings():  # the file is TorchScript; torch>=2.9 flags jit.load as deprecated
                    warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*", category=FutureWarning)
                    base = torch.jit.load(str(path), map_location=device).eval()
                layers = base.layers
            except (RuntimeError, AttributeError, ValueError) as exc:
                raise MissingWeightsError(
                    f"weights file {path} could not be loaded as the TorchScript Inception ({exc}); "
                    f"replace it with {INCEPTION_FILENAME} from {INCEPTION_URL}"
                ) from exc
            self._net, self._net_device = layers, device
        return self._net


@functools.lru_cache(maxsize=1)
def build_random_inception():
    """torchvision Inception-v3, random init under seed 0, convolutions rescaled to He scale, pool output.

    ``torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True)`` draws every
    convolution from a truncated normal with std 0.1 whatever its fan-in; with eval-mode batch norm
    (running mean 0, variance 1) activations then grow ~2× per layer and pool features reach ~1e10
    (measured), so a few deep branches dominate any distance. Each convolution's weight is therefore
    rescaled deterministically to std √(2 / fan_in) (He et al. 2015), which keeps features O(1). The
    random state of the caller is untouched (``torch.random.fork_rng``). Built once per process on the
    CPU (construction takes seconds) and shared read-only; extractors copy it to other devices.
    """
    import torch
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True)
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, torch.nn.Conv2d):
                fan_in = mod.weight[0].numel()
                mod.weight.mul_(math.sqrt(2.0 / fan_in) / mod.weight.std())
    net.fc = torch.nn.Identity()
    return net.eval()


@features.register("random-inception")
class RandomInceptionExtractor(_CleanInceptionBase):
    """Random-init Inception-v3 (fixed seed): a sanity baseline, NOT FID."""

    description = "Random-init Inception-v3 (fixed seed 0), clean resize, 2048-d pool: a sanity baseline, NOT FID"
    feature_space = "random-inception"
    substitute = True

    def __init__(self, *, device: str = "auto", batch_size: int = 32, weights: str | None = None):
        if weights is not None:
            raise UsageError(
                f"random-inception takes no weights (got {weights!r}); use --features inception for a weight file"
            )
        super().__init__(device=device, batch_size=batch_size, weights=None)
        self._net = None
        self._net_device: str | None = None

    def weights_id(self) -> str:
        return "random-seed0"

    def _network(self, device: str):
        if self._net is None or self._net_device != device:
            net = build_random_inception()
            self._net = net if device == "cpu" else copy.deepcopy(net).to(device)
            self._net_device = device
        return self._net
