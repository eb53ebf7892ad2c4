"""Shared model code of the downstream tasks (``seg-utility``, ``anatomy-faithfulness``, ``condition-fidelity``):
input preparation, the fixed networks, one training loop, prediction, the MONAI segmentation metrics, bootstrap
intervals and the on-disk cache of trained models.

Networks (MONAI, built from :class:`TrainConfig`; nothing is downloaded):

- segmenter: ``monai.networks.nets.UNet`` (2-D, 1 input channel, ``channels`` per level, stride 2 between levels,
  ``res_units`` residual units, instance norm, PReLU), trained with ``monai.losses.DiceCELoss`` (softmax, one-hot
  targets, Dice and cross-entropy weighted 1:1);
- condition classifier: ``monai.networks.nets.Classifier`` (the same ``channels``, stride 2 at every level),
  trained with cross-entropy.

Inputs are converted to grayscale and resized to ``size`` × ``size`` (images: area/bilinear interpolation, label
maps: nearest neighbour), scaled to [0, 1]. Training: AdamW (``lr``, ``weight_decay``) with a cosine decay to 0
over ``steps`` mini-batches of ``batch_size`` drawn epoch by epoch without replacement; augmentation (``augment``)
is a random affine per image (rotation ±10°, scale ±10 %, shift ±6 % of the side; no flips: the A4C view is not
left/right symmetric) applied to image and label map alike, then a random gamma (×/÷ 1.5) and contrast (±15 %).
Every random number comes from a ``torch.Generator`` seeded with the training seed (network initialisation
included), on the CPU, so a training run is reproducible and independent of the device's random state.

Metrics (MONAI's definitions, computed at the network resolution, one value per image and structure):
Dice = 2|P∩G| / (|P| + |G|) (``DiceMetric(include_background=False, ignore_empty=False)``: an empty ground truth
gives 1 when the prediction is empty too and 0 otherwise); HD95 = the 95th percentile of the symmetric surface
distances in pixels at ``size`` (``HausdorffDistanceMetric(percentile=95)``; NaN when the prediction or the ground
truth is empty). How the tasks average these (and report the empty cases) is in :func:`summarise_dice`.

Trained models are cached under ``<cache_dir>/task-models/`` by a key over (kind, training-data hash, number of
classes, :data:`MODEL_VERSION`, the training configuration, seed): re-runs and other tasks needing the same model
(``seg-utility`` on ``real`` and ``anatomy-faithfulness`` train the same real-data segmenter) load it instead of
training. Files are written atomically and carry their key; a file that cannot be read or whose key differs is
retrained, never trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UsageError

log = logging.getLogger(__name__)

#: Version of the networks, preprocessing and training loop: part of every cached model's key.
MODEL_VERSION = "1"
MODELS_DIR = "task-models"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained network besides its data and seed (all are task parameters)."""

    size: int = 128
    channels: tuple[int, ...] = (16, 32, 64, 128)
    res_units: int = 1
    steps: int = 300
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    augment: bool = True

    @classmethod
    def from_params(cls, params: dict[str, Any], task: str) -> TrainConfig:
        """The config from a task's parameters (the fields of this class); bad values are a UsageError."""
        try:
            channels = params.get("channels", cls.channels)
            if isinstance(channels, str):
                channels = [c for c in channels.replace(" ", "").split(",") if c]
            cfg = cls(size=int(params.get("size", cls.size)), channels=tuple(int(c) for c in channels),
                      res_units=int(params.get("res_units", cls.res_units)), steps=int(params.get("steps", cls.steps)),
                      batch_size=int(params.get("batch_size", cls.batch_size)), lr=float(params.get("lr", cls.lr)),
                      weight_decay=float(params.get("weight_decay", cls.weight_decay)),
                      augment=_as_bool(params.get("augment", cls.augment)))
        except (TypeError, ValueError) as exc:
            raise UsageError(f"task {task!r}: bad network/training option ({exc})") from None
        depth = len(cfg.channels)
        if depth < 2 or any(c < 1 for c in cfg.channels):
            raise UsageError(f"task {task!r}: channels needs at least two positive values, e.g. 16,32,64,128")
        if cfg.size < 2 ** depth or cfg.size % (2 ** (depth - 1)):
            raise UsageError(f"task {task!r}: size={cfg.size} must be a multiple of {2 ** (depth - 1)} and at least "
                             f"{2 ** depth} for {depth} levels of channels")
        if cfg.steps < 1 or cfg.batch_size < 1 or cfg.lr <= 0 or cfg.weight_decay < 0 or cfg.res_units < 0:
            raise UsageError(f"task {task!r}: steps, batch_size ≥ 1, lr > 0, weight_decay ≥ 0, res_units ≥ 0 needed")
        return cfg


#: Task parameters (name → default) that make up a :class:`TrainConfig`.
TRAIN_PARAMETERS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
TRAIN_PARAMETERS["channels"] = ",".join(str(c) for c in TrainConfig.channels)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return bool(value)


def resolve_device(device: str | None) -> str:
    """``None``/``auto`` → ``cuda`` when available, else ``cpu``."""
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


# inputs -----------------------------------------------------------------------------------------------------------
def prepare_images(images: Sequence[np.ndarray], size: int) -> np.ndarray:
    """uint8 images (H, W) or (H, W, 1|3|4) of any sizes → uint8 grayscale (N, size, size)."""
    import cv2

    out = np.empty((len(images), size, size), dtype=np.uint8)
    for i, image in enumerate(images):
        a = np.asarray(image)
        if a.ndim == 3:
            a = a[:, :, 0] if a.shape[2] == 1 else cv2.cvtColor(np.ascontiguousarray(a[:, :, :3]), cv2.COLOR_RGB2GRAY)
        shrink = a.shape[0] >= size and a.shape[1] >= size
        out[i] = cv2.resize(np.ascontiguousarray(a, dtype=np.uint8), (size, size),
                            interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out


def resize_maps(maps: Sequence[np.ndarray], size: int) -> np.ndarray:
    """uint8 class maps (H, W) → (N, size, size) by nearest neighbour."""
    import cv2

    out = np.empty((len(maps), size, size), dtype=np.uint8)
    for i, m in enumerate(maps):
        out[i] = cv2.resize(np.ascontiguousarray(m, dtype=np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    return out


def data_hash(*arrays: np.ndarray, extra: Any = None) -> str:
    """sha256 over arrays (shape, dtype and bytes, in order) and a JSON-able ``extra``: the training-data key."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


# networks ---------------------------------------------------------------------------------------------------------
def build_network(kind: str, cfg: TrainConfig, n_classes: int):
    """The fixed network of ``kind`` (``segmenter`` or ``classifier``) for ``n_classes`` outputs."""
    from monai.networks.nets import Classifier, UNet

    if kind == "segmenter":
        return UNet(spatial_dims=2, in_channels=1, out_channels=n_classes, channels=cfg.channels,
                    strides=(2,) * (len(cfg.channels) - 1), num_res_units=cfg.res_units)
    if kind == "classifier":
        return Classifier(in_shape=(1, cfg.size, cfg.size), classes=n_classes, channels=cfg.channels,
                          strides=(2,) * len(cfg.channels), num_res_units=cfg.res_units)
    raise ValueError(f"unknown network kind {kind!r}")


def _loss(kind: str):
    import torch
    from monai.losses import DiceCELoss

    return DiceCELoss(to_onehot_y=True, softmax=True) if kind == "segmenter" else torch.nn.CrossEntropyLoss()


def augment_batch(x, y, gen):
    """Random affine (+ gamma, contrast) per image of a batch ``x`` (B, 1, S, S) in [0, 1]; ``y`` (B, 1, S, S)
    class maps get the same affine (nearest neighbour), class indices (B,) are returned unchanged."""
    import torch
    import torch.nn.functional as F

    b = x.shape[0]
    u = (torch.rand(b, 6, generator=gen) * 2 - 1).to(x.device)
    angle = u[:, 0] * math.radians(10.0)
    scale = 1.0 + 0.10 * u[:, 1]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, 0.12 * u[:, 2]], 1), torch.stack([sin, cos, 0.12 * u[:, 3]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if y is not None and y.dim() == 4:
        y = F.grid_sample(y.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False).long()
    gamma = torch.exp(u[:, 4] * math.log(1.5)).view(b, 1, 1, 1)
    contrast = (1.0 + 0.15 * u[:, 5]).view(b, 1, 1, 1)
    x = (x.clamp(0, 1) ** gamma * contrast).clamp(0, 1)
    return x, y


def train_network(kind: str, images: np.ndarray, targets: np.ndarray, n_classes: int, cfg: TrainConfig, seed: int, *,
                  device: str = "cpu", progress: Callable[[int], None] | None = None):
    """Train the ``kind`` network on uint8 ``images`` (N, S, S) and ``targets`` (class maps (N, S, S) for the
    segmenter, class indices (N,) for the classifier) for ``cfg.steps`` steps; returns the model in eval mode."""
    import torch

    if len(images) == 0:
        raise ValueError("no training images")
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = build_network(kind, cfg, n_classes)
    net = net.to(device).train()
    loss_fn = _loss(kind)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    x_all = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    y_all = torch.from_numpy(np.ascontiguousarray(targets).astype(np.int64)).to(device)
    order = torch.empty(0, dtype=torch.long)
    for _ in range(cfg.steps):
        if len(order) < min(cfg.batch_size, len(images)):
            order = torch.cat([order, torch.randperm(len(images), generator=gen)])
        idx, order = order[: cfg.batch_size], order[cfg.batch_size:]
        idx = idx.to(device)
        x = x_all[idx].unsqueeze(1).float().div_(255.0)
        y = y_all[idx].unsqueeze(1) if kind == "segmenter" else y_all[idx]
        if cfg.augment:
            x, y = augment_batch(x, y, gen)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None:
            progress(1)
    return net.eval()


def predict(net, images: np.ndarray, *, device: str = "cpu", batch_size: int = 32) -> np.ndarray:
    """Argmax predictions of a trained network: (N, S, S) uint8 class maps (segmenter) or (N,) int64 (classifier)."""
    import torch

    outs = []
    net = net.to(device).eval()
    with torch.inference_mode():
        for s in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[s:s + batch_size])).to(device).unsqueeze(1).float() / 255.0
            outs.append(net(x).argmax(1).cpu().numpy())
    if not outs:
        return np.zeros((0,), dtype=np.int64)
    out = np.concatenate(outs)
    return out.astype(np.uint8) if out.ndim == 3 else out.astype(np.int64)


# cache ------------------------------------------------------------------------------------------------------------
def model_key(kind: str, train_hash: str, n_classes: int, cfg: TrainConfig, seed: int) -> str:
    """The cache key of a trained model: sha256 over everything that determines its weights."""
    blob = json.dumps({"kind": kind, "data": train_hash, "classes": n_classes, "version": MODEL_VERSION,
                       "config": dataclasses.asdict(cfg), "seed": int(seed)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def trained_network(kind: str, images: np.ndarray, targets: np.ndarray, n_classes: int, cfg: TrainConfig, seed: int, *,
                    cache_dir: Path | None, device: str = "cpu", train_hash: str | None = None,
                    progress: Callable[[int], None] | None = None):
    """The trained ``kind`` network: loaded from ``cache_dir`` when a model with the same key is there, else
    trained with :func:`train_network` and stored. Returns ``(model, info)``; ``info["cache"]`` is ``hit``,
    ``miss`` (trained and stored) or ``off`` (no cache dir)."""
    import torch

    from harness.io import atomic_write_bytes

    train_hash = train_hash or data_hash(images, targets)
    key = model_key(kind, train_hash, n_classes, cfg, seed)
    info = {"key": key[:16], "train_hash": train_hash[:16], "n_train": int(len(images)), "seed": int(seed)}
    path = None if cache_dir is None else Path(cache_dir) / MODELS_DIR / f"{kind}-{key[:24]}.pt"
    if path is not None and path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if blob.get("key") != key:
                raise ValueError("stored key differs")
            net = build_network(kind, cfg, n_classes)
            net.load_state_dict(blob["state_dict"])
            return net.to(device).eval(), {**info, "cache": "hit", "path": str(path)}
        except Exception as exc:  # noqa: BLE001 - any unreadable cache file is retrained, never trusted
            log.warning("cached model %s cannot be used (%s); training it again", path, exc)
    net = train_network(kind, images, targets, n_classes, cfg, seed, device=device, progress=progress)
    if path is None:
        return net, {**info, "cache": "off"}
    buf = io.BytesIO()
    torch.save({"key": key, "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return net, {**info, "cache": "miss", "path": str(path)}


# metrics ----------------------------------------------------------------------------------------------------------
def dice_hd95(pred: np.ndarray, truth: np.ndarray, n_classes: int, *, hd95: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-image, per-structure Dice and HD95 (MONAI) of class maps ``pred`` and ``truth`` (N, H, W), classes
    ``1 .. n_classes-1`` (0 is "no structure", never scored). Returns two (N, n_classes-1) float arrays.

    Dice of an empty ground truth is 1 when the prediction is empty too, else 0; HD95 is NaN when either is empty
    (and everywhere with ``hd95=False``, which skips computing it).
    """
    import torch
    from monai.metrics import DiceMetric, HausdorffDistanceMetric
    from monai.networks.utils import one_hot

    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape or pred.ndim != 3:
        raise ValueError(f"prediction {pred.shape} and ground truth {truth.shape} must both be (N, H, W)")
    k = n_classes - 1
    if len(pred) == 0 or k < 1:
        return np.zeros((len(pred), max(k, 0))), np.zeros((len(pred), max(k, 0)))
    p = one_hot(torch.from_numpy(pred.astype(np.int64)).unsqueeze(1), n_classes)
    g = one_hot(torch.from_numpy(truth.astype(np.int64)).unsqueeze(1), n_classes)
    dice = DiceMetric(include_background=False, reduction="none", ignore_empty=False)(p, g).numpy().astype(np.float64)
    hd = np.full((len(pred), k), np.nan)
    both = (p[:, 1:].flatten(2).any(2) & g[:, 1:].flatten(2).any(2)).numpy()
    rows = np.flatnonzero(both.any(1)) if hd95 else np.zeros(0, dtype=np.int64)
    if len(rows):
        with warnings.catch_warnings():  # MONAI warns about empty masks (handled below) and its own deprecations
            warnings.simplefilter("ignore")
            hd_rows = HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none")(
                p[rows], g[rows]).numpy().astype(np.float64)
        hd[rows] = np.where(both[rows], hd_rows, np.nan)
    return dice, hd


def bootstrap_mean_ci(values: np.ndarray, rng: np.random.Generator, *, n_boot: int = 1000,
                      level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean of finite ``values`` with a bootstrap interval over them; covers the population
    mean (e.g. the expected Dice of this segmenter on a test image), checked by ``harness validate-intervals``.

    Percentile distances from the mean, each × √(n/(n−1)) · t₍n−1₎/z (:data:`MEAN_CI_BASIS`): the bootstrap
    variance of a mean is (n−1)/n of the unbiased one and z ignores the variance's own noise, so the plain
    percentile interval under-covers on small test sets (simulation: 88 % at n = 10, 92 % at n = 20); the
    same small-sample correction as the participant-clustered bootstrap of the human evaluation."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    if len(v) == 1 or n_boot < 1:
        return float(v.mean()), float("nan"), float("nan")
    n = len(v)
    means = v[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    a = (1.0 - level) / 2.0
    from scipy import stats as sps

    expand = math.sqrt(n / (n - 1)) * float(sps.t.ppf(1 - a, n - 1) / sps.norm.ppf(1 - a))
    est = float(v.mean())
    q_lo, q_hi = float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a))
    return est, est - expand * (est - q_lo), est + expand * (q_hi - est)


MEAN_CI_BASIS = ("bootstrap over test images: percentile distances from the mean × √(n/(n−1))·t(n−1)/z "
                 "(small-sample correction); covers the population mean over test images (model fixed)")


@dataclass(frozen=True)
class StructureScore:
    """One structure's scores over test images (and training seeds): see :func:`summarise_dice`."""

    structure: str
    dice: float
    dice_ci: tuple[float, float]
    hd95: float
    hd95_ci: tuple[float, float]
    n: int  # images whose ground truth has the structure
    details: dict[str, Any]


def summarise_dice(structures: Sequence[str], dice: np.ndarray, hd: np.ndarray, present: np.ndarray,
                   pred_present: np.ndarray, rng: np.random.Generator, *, n_boot: int = 1000
                   ) -> tuple[list[StructureScore], tuple[float, float, float], np.ndarray, dict[str, Any]]:
    """Summarise per-image scores of one or several trained models.

    ``dice``/``hd``: (S, N, K) for S seeds (models), N test images, K structures; ``present``: (N, K) ground
    truth has the structure; ``pred_present``: (S, N, K) the prediction has it.

    Per structure: the per-image Dice averaged over seeds, then its mean over the images whose ground truth has
    the structure, with a bootstrap CI over those images; images whose ground truth lacks it are *not* averaged in
    (MONAI's Dice there is 1 for an empty prediction, 0 otherwise) but reported: ``n_absent`` and
    ``n_absent_false_positive`` (mean over seeds). HD95 likewise over images where ground truth and prediction are
    both non-empty (``n_missed``: images with the structure but an empty prediction, mean over seeds). The spread
    over seeds: each seed's mean Dice, their SD (ddof=1) and range.

    Mean Dice: per image, the mean Dice over the structures its ground truth has (seed-averaged); mean over images
    with at least one, bootstrap CI over them. Returns (scores, (mean, low, high), per-image mean Dice, details).
    """
    dice, hd = np.asarray(dice, float), np.asarray(hd, float)
    s, n, k = dice.shape
    scores = []
    for j, name in enumerate(structures):
        rows = present[:, j]
        d_img = dice[:, rows, j].mean(axis=0)
        mean, lo, hi = bootstrap_mean_ci(d_img, rng, n_boot=n_boot)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            hd_img = np.nanmean(hd[:, rows, j], axis=0) if rows.any() else np.zeros(0)
        hmean, hlo, hhi = bootstrap_mean_ci(hd_img, rng, n_boot=n_boot)
        per_seed = [float(dice[i, rows, j].mean()) if rows.any() else float("nan") for i in range(s)]
        absent = ~rows
        scores.append(StructureScore(
            structure=name, dice=mean, dice_ci=(lo, hi), hd95=hmean, hd95_ci=(hlo, hhi), n=int(rows.sum()),
            details={"dice_per_seed": per_seed, **_spread(per_seed), "n_absent": int(absent.sum()),
                     "n_absent_false_positive": float(pred_present[:, absent, j].sum(axis=1).mean()) if s else 0.0,
                     "n_missed": float((~pred_present[:, rows, j]).sum(axis=1).mean()) if s else 0.0,
                     "hd95_n": int(np.isfinite(hd_img).sum()), "hd95_units": "pixels at the network input size"}))
    weights = present.astype(float)
    counts = weights.sum(axis=1)
    per_image = np.full(n, np.nan)
    ok = counts > 0
    per_image[ok] = (dice.mean(axis=0) * weights).sum(axis=1)[ok] / counts[ok]
    seed_means = [float(np.mean((dice[i] * weights).sum(axis=1)[ok] / counts[ok])) if ok.any() else float("nan")
                  for i in range(s)]
    overall = bootstrap_mean_ci(per_image, rng, n_boot=n_boot)
    return scores, overall, per_image, {"mean_dice_per_seed": seed_means, **_spread(seed_means), "n_images": int(ok.sum())}


def _spread(values: Sequence[float]) -> dict[str, float | None]:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return {"seed_sd": float(v.std(ddof=1)) if len(v) > 1 else None,
            "seed_min": float(v.min()) if len(v) else None, "seed_max": float(v.max()) if len(v) else None}


def not_applicable(metric: str, reason: str, *, higher_is_better: bool = True, **details: Any):
    """The "not applicable" row: value NaN (stored as NULL), ``details["not_applicable"]`` = the reason."""
    from tasks.base import MetricResult

    return MetricResult(metric, float("nan"), None, None, 0, higher_is_better=higher_is_better,
                        details={"not_applicable": reason, **details})


def per_image_dice_rows(indices, per_image: np.ndarray, dice: np.ndarray, present: np.ndarray) -> list[list]:
    """Rows ``index, mean_dice, dice_<structure>...`` of a per-image Dice table (empty where a structure is absent)."""
    return [[int(idx), "" if not np.isfinite(per_image[i]) else f"{per_image[i]:.4f}",
             *[f"{dice[i, j]:.4f}" if present[i, j] else "" for j in range(dice.shape[1])]]
            for i, idx in enumerate(indices)]


def parse_seeds(value: Any, task: str) -> list[int]:
    """``seeds`` option: an int k (seeds 0..k-1), a list, or a comma string ``"0,1,2"``."""
    try:
        if isinstance(value, str):
            seeds = [int(s) for s in value.replace(" ", "").split(",") if s]
        elif isinstance(value, (list, tuple)):
            seeds = [int(s) for s in value]
        else:
            seeds = list(range(int(value)))
    except (TypeError, ValueError):
        raise UsageError(f"task {task!r}: seeds must be a count (3) or a list (0,1,2); got {value!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise UsageError(f"task {task!r}: seeds must be distinct non-negative integers (got {value!r})")
    return seeds


# label maps → class maps ------------------------------------------------------------------------------------------
def present_structures(label_maps: Sequence[np.ndarray | None], source: str, *, what: str) -> set[str]:
    """Names of the structures that occur in loaded ``label_maps`` (phantom values) of ``source``; a value the
    source does not annotate is a DataError naming the image (``what`` image i)."""
    from harness.data.labels import check_values, source_values

    table = source_values(source)
    seen: set[int] = set()
    for i, m in enumerate(label_maps):
        if m is None:
            continue
        check_values(m, source, where=f"{what} image {i}")
        seen |= {int(v) for v in np.unique(m)}
    return {table[v] for v in seen}


def class_maps(label_maps: Sequence[np.ndarray], source: str, structures: Sequence[str], *, lv_myocardium_only: bool,
               size: int, what: str) -> np.ndarray:
    """Label maps of ``source`` → class maps (:func:`harness.data.labels.to_classes`) resized to ``size``."""
    from harness.data.labels import to_classes

    return resize_maps([to_classes(m, source, tuple(structures), lv_myocardium_only=lv_myocardium_only,
                                   where=f"{what} image {i}") for i, m in enumerate(label_maps)], size)


@dataclass
class LabelledSet:
    """The images of a set that have label maps, with their source table (what a segmentation task reads)."""

    images: list[np.ndarray]
    label_maps: list[np.ndarray]
    source: str
    indices: np.ndarray  # positions in the full set
    n_unlabelled: int

    def __len__(self) -> int:
        return len(self.images)


def labelled_set(images: Callable[[], Sequence[np.ndarray]] | None,
                 label_maps: Callable[[], Sequence[np.ndarray | None]] | None, source: str | None) -> LabelledSet | None:
    """Load a set's images and label maps (context callables) and keep the labelled ones; ``None`` when the set
    has no label maps at all."""
    if images is None or label_maps is None:
        return None
    maps = list(label_maps())
    keep = np.array([i for i, m in enumerate(maps) if m is not None], dtype=np.int64)
    if len(keep) == 0:
        return None
    ims = list(images())
    if len(ims) != len(maps):
        raise ValueError(f"{len(ims)} images but {len(maps)} label-map entries")
    return LabelledSet([ims[i] for i in keep], [maps[i] for i in keep], source or "phantom", keep, len(maps) - len(keep))


def common_structures(a: LabelledSet, b: LabelledSet, *, what_a: str, what_b: str) -> tuple[list[str], dict[str, str]]:
    """The structures scored when comparing ``a`` with ``b``: annotated by both sources' tables
    (:func:`harness.data.labels.scored_structures`) and present in both sets' maps, in the phantom's label order.
    Also returns the skipped structures with the reason (never scored as zero)."""
    from harness.data.labels import LABEL_NAMES, scored_structures

    table_a, table_b = set(scored_structures(a.source)), set(scored_structures(b.source))
    seen_a = present_structures(a.label_maps, a.source, what=what_a)
    seen_b = present_structures(b.label_maps, b.source, what=what_b)
    keep, skipped = [], {}
    for name in LABEL_NAMES:
        if name not in table_a | table_b:
            continue
        if name not in table_a:
            skipped[name] = f"not annotated by the {what_a}'s source ({a.source})"
        elif name not in table_b:
            skipped[name] = f"not annotated by the {what_b}'s source ({b.source})"
        elif name not in seen_a:
            skipped[name] = f"absent from every {what_a} label map"
        elif name not in seen_b:
            skipped[name] = f"absent from every {what_b} label map"
        else:
            keep.append(name)
    return keep, skipped


@dataclass
class SegProblem:
    """A train set and an evaluation set in one class space: the structures annotated on both sides, the class count
    ``k`` (structures + background) and the images/class maps prepared at ``cfg.size``."""

    structures: list[str]
    skipped: dict[str, str]
    lv_only: bool  # CAMUS-style LV-only myocardium on one side (harness.data.labels.lv_myocardium_convention)
    k: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray


def seg_problem(task: str, train: LabelledSet, other: LabelledSet, cfg: TrainConfig, *, what: str) -> SegProblem:
    """Structures annotated in both ``train`` and ``other`` (``what``: "reference", "generated"; a structure missing on
    either side is skipped, never scored as zero; none in common is a DataError) and both sides as class maps."""
    from harness.data.labels import lv_myocardium_convention
    from harness.errors import DataError

    structures, skipped = common_structures(train, other, what_a="training", what_b=what)
    if not structures:
        raise DataError(f"task {task!r}: no structure is annotated in both the training labels ({train.source}) "
                        f"and the {what} labels ({other.source}); skipped: {skipped}")
    lv_only = lv_myocardium_convention(train.source, other.source)
    maps = lambda s, w: class_maps(s.label_maps, s.source, structures, lv_myocardium_only=lv_only, size=cfg.size, what=w)
    return SegProblem(structures, skipped, lv_only, len(structures) + 1, prepare_images(train.images, cfg.size), maps(train, "training"),
                      prepare_images(other.images, cfg.size), maps(other, what))


def structure_rows(scores: Sequence[StructureScore], overall: tuple[float, float, float], n_images: int,
                   common: dict[str, Any], *, hd95: bool = True) -> list:
    """MetricResult rows: ``mean_dice``, then ``dice_<structure>`` (and ``hd95_<structure>``) per structure."""
    from tasks.base import MetricResult

    rows = [MetricResult("mean_dice", overall[0], _fin(overall[1]), _fin(overall[2]), n_images, higher_is_better=True,
                         details={**common, "ci": MEAN_CI_BASIS})]
    for sc in scores:
        rows.append(MetricResult(f"dice_{sc.structure}", sc.dice, _fin(sc.dice_ci[0]), _fin(sc.dice_ci[1]), sc.n,
                                 higher_is_better=True, details={"structure": sc.structure, **sc.details}))
        if hd95:
            rows.append(MetricResult(f"hd95_{sc.structure}", sc.hd95, _fin(sc.hd95_ci[0]), _fin(sc.hd95_ci[1]),
                                     sc.details["hd95_n"], higher_is_better=False,
                                     details={"structure": sc.structure, "units": sc.details["hd95_units"],
                                              "n_missed": sc.details["n_missed"]}))
    return rows


def _fin(x: float) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None
