"""What the CycleGAN and CUT adapters share: config, label-map encoding, data, training loop, checkpoints, sampling.

Domains (after Gilbert et al. 2021, as in the paper): the *source* domain A is phantom label maps, the
*target* domain B is the images of any data source (default: the phantom's ``train`` images, phantom seed
0). The pairing is unpaired: training label maps come from the phantom ``train`` split with its own seed
``derived_seed(config.seed, "source")``, so they are other hearts than the target images. Sampling with
``seed`` translates label map ``i`` of the phantom ``test`` split with seed ``derived_seed(seed, "sample")``,
so image ``i`` depends only on (checkpoint, seed, i, conditions), never on the batch size.

Label-map encoding fed to the networks (the reference pipeline feeds 3-channel images scaled to [-1, 1]):
label ``k`` of ``K`` labels becomes the grey level ``2 k / (K - 1) - 1`` in all three channels — exactly
what the reference would see if the label map were saved as a PNG with values ``k * 255 / (K - 1)``. So
both models keep the reference shapes (``input_nc = output_nc = 3``) and parameter counts. Target images
are grayscale and are fed as 3 equal channels; generated images are the network's 3 channels.

Checkpoint folder (FORMATS.md): ``<net>.safetensors`` for each network, ``config.json`` (model type, the
config, label encoding, epoch, networks and parameter counts) and ``training_state.pt`` (optimizer
states, RNG states and image pools; plain tensors/containers, loaded with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from generators.base import GeneratedBatch, Generator, replace_config, resume_check
from harness.errors import DataError, UsageError
from harness.io import atomic_write, sha256_file

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SOURCE_SPLIT = "train"  # phantom split of the training label maps (with a derived seed)
SAMPLE_SPLIT = "test"  # phantom split of the label maps translated by sample() (with a derived seed)
_PURPOSES = {"source": 1, "sample": 2}
TRAINING_STATE = "training_state.pt"
ProgressFn = Callable[[int, int, dict], None]  # (iteration, total iterations, {loss name: value, "epoch": e})


@dataclass(frozen=True)
class TranslationConfig:
    """Options of both models (fields a model does not use are ignored by it and documented there).

    Names follow the reference repos' command-line options. ``n_epochs`` at constant lr, then
    ``n_epochs_decay`` with the lr decayed linearly to 0 (the reference ``lr_policy=linear``).
    """

    netG: str = "resnet_9blocks"
    ngf: int = 64
    ndf: int = 64
    n_layers_D: int = 3
    norm: str = "instance"
    image_size: int = 256
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    n_epochs: int = 100
    n_epochs_decay: int = 100
    gan_mode: str = "lsgan"
    use_dropout: bool = False
    antialias: bool = False  # CUT repo default: blur-pool down/up-sampling
    # CycleGAN
    lambda_cyc: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    # CUT / FastCUT
    lambda_GAN: float = 1.0
    lambda_NCE: float = 1.0
    nce_idt: bool = True
    nce_layers: str = "0,4,8,12,16"
    num_patches: int = 256
    nce_T: float = 0.07
    netF_nc: int = 256
    flip_equivariance: bool = False
    # run
    save_every: int = 5
    seed: int = 0
    n_train: int = 1000

    def replace(self, **overrides: Any) -> TranslationConfig:
        """A copy with ``overrides``; unknown names are a UsageError (strings are converted for the CLI)."""
        return replace_config(self, overrides, "translation config")

    def total_epochs(self) -> int:
        return self.n_epochs + self.n_epochs_decay

    def lr_at(self, epoch: int) -> float:
        """The learning rate during ``epoch`` (1-based): constant for ``n_epochs``, then linear decay towards 0
        over ``n_epochs_decay`` (the reference repos' ``lr_policy=linear`` with ``epoch_count=1``)."""
        return self.lr * (1.0 - max(0, epoch - self.n_epochs) / float(self.n_epochs_decay + 1))

    def layers(self) -> list[int]:
        """``nce_layers`` ("0,4,8,12,16") as integers."""
        try:
            return [int(x) for x in self.nce_layers.split(",") if x.strip()]
        except ValueError:
            raise UsageError(f"nce_layers must be comma-separated integers, e.g. 0,4,8,12,16 (got {self.nce_layers!r})") from None

    def validate(self) -> None:
        from generators.networks import NORMS, valid_image_size

        valid_image_size(self.netG, self.image_size)
        if self.norm not in NORMS:
            raise UsageError(f"norm {self.norm!r}: choose one of {', '.join(NORMS)}")
        for name in ("ngf", "ndf", "n_layers_D", "batch_size", "n_train", "save_every"):
            if getattr(self, name) < 1:
                raise UsageError(f"option {name} must be >= 1 (got {getattr(self, name)})")
        if self.n_epochs < 0 or self.n_epochs_decay < 0 or self.total_epochs() < 1:
            raise UsageError("n_epochs and n_epochs_decay must be >= 0 and sum to >= 1")


# label maps and images <-> tensors --------------------------------------------------------------
def num_labels() -> int:
    """K, the number of phantom labels (``harness.data.phantom.LABELS`` maps name → 0..K-1)."""
    from harness.data.phantom import LABELS

    return max(LABELS.values()) + 1


def encode_label_maps(label_maps: np.ndarray, n_labels: int):
    """uint8 (B, H, W) labels → float tensor (B, 3, H, W): grey ``2 k / (K - 1) - 1`` in 3 channels."""
    import torch

    if label_maps.max(initial=0) >= n_labels:
        raise DataError(f"label map has label {int(label_maps.max())} but the encoding has only {n_labels} labels")
    x = torch.from_numpy(np.ascontiguousarray(label_maps)).float() * (2.0 / (n_labels - 1)) - 1.0
    return x[:, None].expand(-1, 3, -1, -1).contiguous()


def encode_images(images: np.ndarray):
    """uint8 (B, H, W) or (B, H, W, 3) → float tensor (B, 3, H, W) in [-1, 1]."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).float() / 127.5 - 1.0
    return x[:, None].expand(-1, 3, -1, -1).contiguous() if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


def decode_images(x) -> np.ndarray:
    """Float tensor (B, 3, H, W) in [-1, 1] → uint8 (B, H, W, 3) (the reference ``tensor2im`` rounding)."""
    y = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to("cpu").numpy().astype(np.uint8)
    return np.ascontiguousarray(y.transpose(0, 2, 3, 1))


def _resize_uint8(image: np.ndarray, size: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    if image.shape[0] == size and image.shape[1] == size:
        return image
    t = torch.from_numpy(np.ascontiguousarray(image)).float()
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    out = t[0].round().clamp(0, 255).to(torch.uint8).numpy()
    return out[0] if image.ndim == 2 else out.transpose(1, 2, 0)


# data -----------------------------------------------------------------------------------------------
def derived_seed(seed: int, purpose: str) -> int:
    """The phantom seed of the training label maps (``"source"``) or of the sampling stream (``"sample"``)."""
    return int(np.random.SeedSequence([int(seed), _PURPOSES[purpose]]).generate_state(1)[0])


def label_map_source(size: int, seed: int, conditions: Sequence[str] | None = None):
    """The phantom at ``size`` × ``size`` with phantom seed ``seed`` (the source domain)."""
    from harness.data.phantom import PhantomSource

    return PhantomSource(size=size, seed=seed, conditions=list(conditions) if conditions else None)


def load_target_images(train: Any, split: str | None, n: int, size: int) -> np.ndarray:
    """``n`` images of ``train`` as uint8 (n, size, size) or (n, size, size, 3)."""
    split = split or (SOURCE_SPLIT if SOURCE_SPLIT in train.splits else train.default_split)
    train.check_split(split)
    available = train.count(split)
    if available is not None and available < n:
        raise DataError(f"data source {train.name!r} split {split!r} has {available} images; n_train is {n}")
    out = [_resize_uint8(np.asarray(img), size) for b in train.iter_batches(split, n, batch_size=64) for img in b.images]
    if len(out) < n:
        raise DataError(f"data source {train.name!r} split {split!r} yielded {len(out)} images; n_train is {n}")
    if any(o.ndim == 3 for o in out):  # mixed grey/RGB: make all RGB
        out = [np.repeat(o[:, :, None], 3, axis=2) if o.ndim == 2 else o[:, :, :3] for o in out]
    return np.stack(out)


def load_source_label_maps(n: int, size: int, seed: int, spec: str | None = None) -> np.ndarray:
    """``n`` training label maps (uint8 (n, size, size)): the phantom's with seed ``derived_seed(seed, "source")``, or
    those of the labelled data spec ``spec`` (e.g. CAMUS ground truth, in the phantom's label values; its training
    split unless the spec names one), resized with nearest-neighbour interpolation."""
    if spec is None:
        source = label_map_source(size, derived_seed(seed, "source"))
        return np.concatenate([b.label_maps for b in source.iter_batches(SOURCE_SPLIT, n, batch_size=64)])
    from harness.data.base import DataSpec, resize_frame

    data = DataSpec.parse(spec)
    split = data.split or data.source.train_split
    if not data.source.has_label_maps:
        raise UsageError(f"--source {spec}: this data source has no label maps (labelled: phantom, camus, echonet, "
                         f"folder with labelmaps/)")
    available = data.source.count(split)
    if available is not None and available < n:
        raise DataError(f"--source {spec}: split {split!r} has {available} label maps; n_train is {n}")
    maps = []
    for batch in data.source.iter_batches(split, n, batch_size=64):
        if batch.label_maps is None:
            raise DataError(f"--source {spec}: samples {batch.ids[0]}.. have no label maps")
        maps += [resize_frame(np.asarray(m, dtype=np.uint8), size, nearest=True) for m in batch.label_maps]
    return np.stack(maps)


# checkpoints ----------------------------------------------------------------------------------------
def save_checkpoint(out_dir: Path, model: str, config: TranslationConfig, nets: dict, state: dict,
                    epoch: int, iteration: int, n_labels: int, data: dict | None = None) -> None:
    import torch
    from safetensors.torch import save_file

    from generators.networks import count_parameters

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, net in nets.items():
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
        atomic_write(out_dir / f"{name}.safetensors", lambda p, t=tensors: save_file(t, str(p), metadata={"model": model}))
    atomic_write(out_dir / TRAINING_STATE, lambda p: torch.save(state, p))
    meta = {
        "format_version": FORMAT_VERSION,
        "model": model,
        "config": dataclasses.asdict(config),
        "epoch": epoch,
        "iteration": iteration,
        "label_encoding": {"kind": "grey 2k/(K-1)-1, 3 channels", "num_labels": n_labels},
        **(data or {}),  # train_data (the target images' data spec), label_source
        "networks": {name: {"file": f"{name}.safetensors", "parameters": count_parameters(net)} for name, net in nets.items()},
    }
    atomic_write(out_dir / "config.json", lambda p: p.write_text(json.dumps(meta, indent=2)))


def read_checkpoint_meta(checkpoint_dir: Path, model: str, needed: Sequence[str]) -> dict:
    """Parse ``config.json`` and check the model type and the network files; DataError names what is wrong."""
    checkpoint_dir = Path(checkpoint_dir)
    cfg = checkpoint_dir / "config.json"
    if not cfg.is_file():
        raise DataError(f"{checkpoint_dir} is not a {model} checkpoint: config.json is missing")
    try:
        meta = json.loads(cfg.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{cfg}: not valid JSON ({exc})") from exc
    if meta.get("model") != model:
        raise DataError(f"{cfg}: this is a {meta.get('model')!r} checkpoint, not {model!r}; load it with that generator")
    missing = [f"{n}.safetensors" for n in needed if not (checkpoint_dir / f"{n}.safetensors").is_file()]
    if missing:
        raise DataError(f"{checkpoint_dir}: {model} checkpoint is missing {', '.join(missing)}")
    return meta


def load_weights(net, path: Path, device: str) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device=device)
    except (SafetensorError, OSError) as exc:
        raise DataError(f"{path}: cannot read safetensors file ({exc})") from exc
    result = net.load_state_dict(tensors, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise DataError(
            f"{path}: weights do not fit the network in config.json (missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]})"
        )


# the adapter base class -------------------------------------------------------------------------------
class TranslationGenerator(Generator):
    """Label map → image translation models (CycleGAN, CUT); subclasses define the networks and one step."""

    trainable: ClassVar[bool] = True
    config_class: ClassVar[type] = TranslationConfig
    # phantom conditions (harness.data.phantom.CONDITIONS): sample(conditions=[...]) draws label maps of these only
    conditions: ClassVar[tuple[str, ...]] = ("normal", "asd", "vsd", "dilated-lv", "dilated-rv", "lvh")
    sampler: ClassVar[str] = "G"  # the network that maps label maps to images

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.config: TranslationConfig | None = None
        self.nets: dict = {}
        self.device = "cpu"
        self.checkpoint: Path | None = None
        self.n_labels = 0

    # hooks --------------------------------------------------------------------------------------
    @classmethod
    def build_networks(cls, config: TranslationConfig, *, init: bool = True, sampling_only: bool = False) -> dict:
        raise NotImplementedError

    def setup_training(self, config: TranslationConfig, rng: np.random.Generator) -> None:
        """Create ``self.optimizers`` (name → optimizer) and any other training objects."""
        raise NotImplementedError

    def train_step(self, real_a, real_b, rng: np.random.Generator) -> dict[str, float]:
        raise NotImplementedError

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    # training -------------------------------------------------------------------------------------
    def fit(self, train: Any, out_dir: Path, config: TranslationConfig | str | None = None, *, resume: bool = False,
            force: bool = False, progress: ProgressFn | None = None, split: str | None = None,
            device: str = "auto", label_source: str | None = None) -> Path:
        """Train on label maps (source) → images of ``train`` (target); checkpoint into ``out_dir``.

        ``resume`` continues from the checkpoint in ``out_dir`` (a different config is refused unless
        ``force``); without ``resume`` an existing checkpoint is only overwritten with ``force``.
        ``progress(iteration, total_iterations, {**losses, "epoch": epoch})`` is called after every iteration.
        ``label_source``: a labelled data spec whose label maps are the source domain (default: the phantom's).
        The checkpoint records the training data spec (``train_data``), which ``harness run`` uses as the default
        training set (memorisation).
        """
        import torch

        from harness.features.base import resolve_device

        config = self.resolve_config(config)
        out_dir = Path(out_dir)
        start_epoch, iteration, state = 0, 0, None
        meta = resume_check(out_dir, dataclasses.asdict(config), lambda: read_checkpoint_meta(out_dir, self.name, [self.sampler]),
                            resume=resume, force=force, what=self.name)
        if meta is not None:
            start_epoch, iteration = int(meta["epoch"]), int(meta["iteration"])
            if not (out_dir / TRAINING_STATE).is_file():
                raise DataError(f"{out_dir}: cannot resume, {TRAINING_STATE} is missing")
            state = torch.load(out_dir / TRAINING_STATE, map_location="cpu", weights_only=True)

        self.device = resolve_device(device)
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        self.n_labels = num_labels()
        target = load_target_images(train, split, config.n_train, config.image_size)
        source = load_source_label_maps(config.n_train, config.image_size, config.seed, label_source)
        split = split or (SOURCE_SPLIT if SOURCE_SPLIT in train.splits else train.default_split)
        self.data_record = {"train_data": train.spec_for(split), "label_source": label_source or "phantom"}
        self.config = config
        self.nets = {k: v.to(self.device) for k, v in self.build_networks(config).items()}
        self.setup_training(config, rng)
        if state is not None:
            for name, net in self.nets.items():
                load_weights(net, out_dir / f"{name}.safetensors", self.device)
            for name, opt in self.optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
            torch.set_rng_state(state["torch_rng"])
            rng.bit_generator.state = state["numpy_rng"]
            self.load_extra_state(state["extra"])
            log.info("resuming %s from epoch %d", self.name, start_epoch)

        n = config.n_train
        per_epoch = -(-n // config.batch_size)
        total = per_epoch * config.total_epochs()
        for epoch in range(start_epoch + 1, config.total_epochs() + 1):
            for opt in self.optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = config.lr_at(epoch)
            order_a, order_b = rng.permutation(n), rng.permutation(n)
            for lo in range(0, n, config.batch_size):
                idx_a, idx_b = order_a[lo:lo + config.batch_size], order_b[lo:lo + config.batch_size]
                real_a = encode_label_maps(source[np.sort(idx_a)], self.n_labels).to(self.device)
                real_b = encode_images(target[np.sort(idx_b)]).to(self.device)
                losses = self.train_step(real_a, real_b, rng)
                iteration += 1
                if progress is not None:
                    progress(iteration, total, {**losses, "epoch": epoch})
            if epoch % config.save_every == 0 or epoch == config.total_epochs():
                state = {
                    "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
                    "torch_rng": torch.get_rng_state(),
                    "numpy_rng": rng.bit_generator.state,
                    "extra": self.extra_state(),
                }
                save_checkpoint(out_dir, self.name, config, self.nets, state, epoch, iteration, self.n_labels,
                                self.data_record)
                log.info("%s: saved epoch %d to %s", self.name, epoch, out_dir)
        self.checkpoint = out_dir
        for net in self.nets.values():
            net.eval()
        return out_dir

    # sampling -----------------------------------------------------------------------------------
    def load(self, checkpoint: Path | None = None, device: str = "auto") -> None:
        from harness.features.base import resolve_device

        if checkpoint is None:
            raise UsageError(f"generator {self.name!r} needs a checkpoint folder (train one with fit / harness train)")
        checkpoint = Path(checkpoint)
        meta = read_checkpoint_meta(checkpoint, self.name, [self.sampler])
        try:
            config = TranslationConfig().replace(**meta["config"])
        except (UsageError, TypeError) as exc:
            raise DataError(f"{checkpoint / 'config.json'}: invalid config ({exc})") from exc
        self.device = resolve_device(device)
        self.config = config
        self.n_labels = int(meta["label_encoding"]["num_labels"])
        self.train_data = meta.get("train_data")
        self.nets = {k: v.to(self.device).eval() for k, v in self.build_networks(config, init=False, sampling_only=True).items()}
        load_weights(self.nets[self.sampler], checkpoint / f"{self.sampler}.safetensors", self.device)
        self.checkpoint = checkpoint

    def sample(self, n: int, *, seed: int, batch_size: int = 32, conditions: Sequence[str] | None = None,
               start: int = 0) -> Iterator[GeneratedBatch]:
        """Translate phantom label maps ``start .. n-1`` of the sampling stream of ``seed`` (batched, no grad).

        ``conditions``: draw the label maps from these phantom conditions only (default: all).
        """
        import torch

        self.check_conditions(conditions)
        if self.config is None or self.sampler not in self.nets:
            raise UsageError(f"generator {self.name!r}: call load(checkpoint) (or fit) before sample")
        if n <= start:
            return
        net = self.nets[self.sampler].eval()
        source = label_map_source(self.config.image_size, derived_seed(seed, "sample"), conditions)
        for batch in source.iter_batches(SAMPLE_SPLIT, n - start, start=start, batch_size=batch_size):
            with torch.no_grad():
                fake = net(encode_label_maps(batch.label_maps, self.n_labels).to(self.device))
            yield GeneratedBatch(decode_images(fake), conditions=batch.conditions, label_maps=batch.label_maps)

    # metadata -------------------------------------------------------------------------------------
    def fingerprint(self) -> dict:
        out = super().fingerprint()
        if self.checkpoint is not None:
            out["weights_sha256"] = sha256_file(self.checkpoint / f"{self.sampler}.safetensors")
            out["config"] = dataclasses.asdict(self.config) if self.config else None
        return out

    def describe(self) -> dict:
        from generators.networks import count_parameters

        out = super().describe()
        if self.nets:
            out["checkpoint"] = str(self.checkpoint)
            out["networks"] = {k: count_parameters(v) for k, v in self.nets.items()}
            out["config"] = dataclasses.asdict(self.config) if self.config else None
        return out

    @classmethod
    def describe_preset(cls, preset: str) -> dict:
        """The networks of ``preset`` with parameter counts (built on the meta device: no memory, no weights)."""
        import torch

        from generators.networks import count_parameters

        config = cls.resolve_config(preset)
        with torch.device("meta"):
            nets = cls.build_networks(config, init=False)
        return {
            "generator": cls.name,
            "preset": preset,
            "networks": {k: {"class": type(v).__name__, "parameters": count_parameters(v)} for k, v in nets.items()},
            "total_parameters": sum(count_parameters(v) for v in nets.values()),
            "config": dataclasses.asdict(config),
        }
