"""Finding (and, when online, fetching) pretrained weight files.

A weight file is looked up, in order, at

1. an explicit path (``--weights PATH``; a file, or a directory that holds the file),
2. the directory named by the environment variable ``ECHOBENCH_WEIGHTS``,
3. the fixed places other libraries keep the same file (for Inception: clean-fid's ``/tmp`` path, and
   ``torch.hub``'s ``checkpoints`` folder), and EchoBench's own weights folder
   (``$ECHOBENCH_CACHE/weights`` or ``platformdirs.user_cache_dir("echobench")/weights``),

and only then downloaded into EchoBench's weights folder, with a timeout, unless ``ECHOBENCH_OFFLINE=1``.

Every file with a published SHA-256 (:data:`KNOWN_SHA256`, or ``WeightSpec.sha256``) is checked before use:
a file at another library's fixed path (clean-fid's is in the world-writable ``/tmp``) that does not match
is skipped and logged, never loaded; a file the user named (``--weights``, ``$ECHOBENCH_WEIGHTS``), one in
EchoBench's folder, or a download that does not match is an error.
When nothing is found, :class:`~harness.errors.MissingWeightsError` says which file is needed, where it
comes from, and the ways to provide it. Nothing here hangs: the download has a socket timeout and an
overall deadline.

:func:`weights_hash` gives the short SHA-256 that goes into feature-cache keys; it is memoised per
(path, mtime, size), so the file is read once per process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import MissingWeightsError
from harness.io import atomic_write

log = logging.getLogger(__name__)

ENV_WEIGHTS = "ECHOBENCH_WEIGHTS"
ENV_OFFLINE = "ECHOBENCH_OFFLINE"
DOWNLOAD_TIMEOUT_S = 30.0  # socket timeout per read/connect
DOWNLOAD_DEADLINE_S = 600.0  # give up on a download that trickles for longer than this


#: Published SHA-256 of the pretrained files EchoBench knows (full file digests).
KNOWN_SHA256 = {
    # clean-fid / StyleGAN2-ADA TorchScript port of the TF FID Inception (95,607,719 bytes; the digest
    # k-diffusion and others pin for the same nvlabs-fi-cdn URL)
    "inception-2015-12-05.pt": "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4",
    # torch-fidelity / pytorch-fid state-dict port of the same network (95,628,359 bytes; torch.hub file-name
    # convention: the name carries the digest's first 8 hex digits)
    "weights-inception-2015-12-05-6726825d.pth": "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
}


@dataclass(frozen=True)
class WeightSpec:
    """One weight file: its file name, where to download it, and the other libraries' caches that hold it.

    ``known_locations`` are full paths checked as-is (other libraries' fixed cache paths). ``sha256``: the
    published digest (default: :data:`KNOWN_SHA256` by file name; ``None`` there too = not checked).
    """

    filename: str
    url: str
    known_locations: tuple[Path, ...] = field(default_factory=tuple)
    description: str = ""
    sha256: str | None = None

    def expected_sha256(self) -> str | None:
        return self.sha256 or KNOWN_SHA256.get(self.filename)


def check_sha256(spec: WeightSpec, path: Path) -> str | None:
    """``None`` when ``path`` matches the published digest (or none is known), else why it does not."""
    expected = spec.expected_sha256()
    if expected is None:
        return None
    actual = weights_hash(path, length=64)
    if actual == expected.lower():
        return None
    return (f"{path} has sha256 {actual[:16]}…, not the published {spec.filename} ({expected[:16]}…): the file is "
            f"truncated, corrupt or a different network; get it again from {spec.url}")


def echobench_weights_dir() -> Path:
    """EchoBench's own weights folder (download target): ``$ECHOBENCH_CACHE/weights`` when that is set,
    else ``user_cache_dir("echobench")/weights``."""
    env = os.environ.get("ECHOBENCH_CACHE")
    if env:
        return Path(env).expanduser() / "weights"
    import platformdirs

    return Path(platformdirs.user_cache_dir("echobench")) / "weights"


def torch_hub_checkpoints_dir() -> Path:
    """``torch.hub``'s checkpoint folder (``$TORCH_HOME/hub/checkpoints``), computed without importing torch."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints"


def candidate_paths(spec: WeightSpec, explicit: str | os.PathLike | None = None) -> list[Path]:
    """Every place :func:`find_weights` looks, in order (explicit path, env dir, known caches, our folder)."""
    out: list[Path] = []
    if explicit is not None:
        p = Path(explicit).expanduser()
        out.append(p / spec.filename if p.is_dir() else p)
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        out.append(Path(env).expanduser() / spec.filename)
    out.extend(spec.known_locations)
    out.append(echobench_weights_dir() / spec.filename)
    return out


def find_weights(spec: WeightSpec, explicit: str | os.PathLike | None = None) -> Path | None:
    """The first existing file among :func:`candidate_paths`, or ``None``. Never downloads.

    An explicit path that does not exist is an error (the user named it), not a fall-through.
    """
    if explicit is not None:
        p = Path(explicit).expanduser()
        path = p / spec.filename if p.is_dir() else p
        if not path.is_file():
            raise MissingWeightsError(
                f"weights file {path} (given with --weights) does not exist; it should be {spec.filename} "
                f"({spec.description or 'from ' + spec.url})"
            )
        _raise_if_mismatch(spec, path)
        return path
    shared = set(spec.known_locations)
    for path in candidate_paths(spec):
        if path.is_file():
            problem = check_sha256(spec, path)
            if problem is None:
                return path
            if path in shared:  # another library's fixed path (e.g. /tmp): never trusted without the digest
                log.warning("ignoring %s", problem)
                continue
            raise MissingWeightsError(problem)
    return None


def _raise_if_mismatch(spec: WeightSpec, path: Path) -> None:
    problem = check_sha256(spec, path)
    if problem is not None:
        raise MissingWeightsError(problem)


def offline() -> bool:
    """True when ``ECHOBENCH_OFFLINE`` is set to a true value (``1``, ``true``, ``yes``)."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


def missing_message(spec: WeightSpec, reason: str = "") -> str:
    """The one message for a weight file that cannot be found: which file, its URL, how to provide it."""
    why = f" ({reason})" if reason else ""
    where = ""
    if spec.known_locations:
        first, *rest = spec.known_locations
        also = f" (also searched: {', '.join(str(p) for p in rest)})" if rest else ""
        where = f", or place it at the library cache path {first}{also}"
    return (
        f"weights file {spec.filename} not found and could not be downloaded{why}. "
        f"Get it from {spec.url} and then either pass --weights PATH/TO/{spec.filename}, "
        f"or put it in a directory named by ${ENV_WEIGHTS}{where}."
    )


def download(spec: WeightSpec, dest_dir: Path | None = None, *, timeout: float = DOWNLOAD_TIMEOUT_S,
             deadline: float = DOWNLOAD_DEADLINE_S) -> Path:
    """Download ``spec.url`` into ``dest_dir`` (default: our weights folder) atomically; return the path.

    Raises :class:`MissingWeightsError` (with :func:`missing_message`) on any network failure or when
    ``ECHOBENCH_OFFLINE`` is set.
    """
    if offline():
        raise MissingWeightsError(missing_message(spec, f"{ENV_OFFLINE} is set"))
    dest_dir = dest_dir or echobench_weights_dir()
    dest = dest_dir / spec.filename
    log.info("downloading %s to %s", spec.url, dest)
    start = time.monotonic()

    def fetch(tmp: Path) -> None:  # streamed to a temporary file, checked, then renamed (harness.io.atomic_write)
        with urllib.request.urlopen(spec.url, timeout=timeout) as response, open(tmp, "wb") as f:
            while chunk := response.read(1 << 20):
                f.write(chunk)
                if time.monotonic() - start > deadline:
                    raise TimeoutError(f"download took longer than {deadline:.0f} s")
        problem = check_sha256(spec, tmp)
        if problem is not None:
            raise ValueError(problem)

    try:
        atomic_write(dest, fetch)
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
        raise MissingWeightsError(missing_message(spec, f"download failed: {exc}")) from exc
    return dest


def resolve_weights(
    spec: WeightSpec, explicit: str | os.PathLike | None = None, *, allow_download: bool = True
) -> Path:
    """:func:`find_weights`, else :func:`download` (if allowed), else :class:`MissingWeightsError`."""
    path = find_weights(spec, explicit)
    if path is not None:
        return path
    if not allow_download:
        raise MissingWeightsError(missing_message(spec, "downloads disabled"))
    return download(spec)


_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def weights_hash(path: str | os.PathLike, length: int = 12) -> str:
    """First ``length`` hex digits of the file's SHA-256, memoised per (path, mtime_ns, size)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_mtime_ns, st.st_size)
    digest = _HASH_MEMO.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        digest = _HASH_MEMO[key] = h.hexdigest()
    return digest[:length]


# Model folders (transformers ``save_pretrained`` / Hugging Face hub snapshots) ---------------------------
#: weight files a transformers model folder may hold (the first one present is hashed with config.json)
MODEL_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class ModelSpec:
    """A transformers model stored as a folder (``config.json`` + ``model.safetensors``).

    ``repo_id`` is its Hugging Face hub name (``facebook/dinov2-large``); ``folder`` the folder name looked for
    under ``$ECHOBENCH_WEIGHTS`` and EchoBench's weights folder (``dinov2-large``).
    """

    repo_id: str
    folder: str
    #: files fetched besides the weights (the first of :data:`MODEL_WEIGHT_FILES` the hub has)
    files: tuple[str, ...] = ("config.json",)
    description: str = ""

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo_id}"


def hf_hub_cache_dir() -> Path:
    """The Hugging Face hub cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``),
    computed without importing ``huggingface_hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                                                     "huggingface")
    return Path(home).expanduser() / "hub"


def is_model_dir(path: Path) -> bool:
    """True for a folder holding ``config.json`` and one of :data:`MODEL_WEIGHT_FILES`."""
    return path.is_dir() and (path / "config.json").is_file() and any((path / f).is_file() for f in MODEL_WEIGHT_FILES)


def model_candidate_dirs(spec: ModelSpec) -> list[Path]:
    """Where :func:`find_model_dir` looks without an explicit path: ``$ECHOBENCH_WEIGHTS/<folder>``, the hub
    cache's snapshots of ``repo_id`` (newest first), EchoBench's weights folder."""
    out: list[Path] = []
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        out.append(Path(env).expanduser() / spec.folder)
    snaps = hf_hub_cache_dir() / f"models--{spec.repo_id.replace('/', '--')}" / "snapshots"
    if snaps.is_dir():
        out.extend(sorted((p for p in snaps.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True))
    out.append(echobench_weights_dir() / spec.folder)
    return out


def model_missing_message(spec: ModelSpec, reason: str = "") -> str:
    why = f" ({reason})" if reason else ""
    return (
        f"model folder for {spec.repo_id} not found and could not be downloaded{why}. Get it with "
        f"`huggingface-cli download {spec.repo_id}` (it lands in the hub cache {hf_hub_cache_dir()}, which is "
        f"searched) or save it with `save_pretrained(DIR)`, then pass --weights DIR, or put it at "
        f"${ENV_WEIGHTS}/{spec.folder}."
    )


def find_model_dir(spec: ModelSpec, explicit: str | os.PathLike | None = None) -> Path | None:
    """The first model folder among an explicit path (a model folder, or a folder holding ``<folder>``) and
    :func:`model_candidate_dirs`; ``None`` when none exists. An explicit path that is no model folder is an error."""
    if explicit is not None:
        p = Path(explicit).expanduser()
        for cand in (p, p / spec.folder):
            if is_model_dir(cand):
                return cand
        raise MissingWeightsError(
            f"--weights {p} is not a transformers model folder (it needs config.json and "
            f"{' or '.join(MODEL_WEIGHT_FILES)}, as written by save_pretrained); expected {spec.repo_id} "
            f"({spec.description or spec.url})"
        )
    for cand in model_candidate_dirs(spec):
        if is_model_dir(cand):
            return cand
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def download_model(spec: ModelSpec, dest_dir: Path | None = None, *, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download ``spec.files`` and the weights (``model.safetensors``, else ``pytorch_model.bin``) of
    ``spec.repo_id`` into ``dest_dir/<folder>`` (default: our weights folder).

    Each large (LFS) file's SHA-256 is checked against the one the hub publishes for it (its ETag); the folder
    appears only when every file is in and verified (temporary folder, then rename). Raises
    :class:`MissingWeightsError` on any failure or when ``ECHOBENCH_OFFLINE`` is set.
    """
    if offline():
        raise MissingWeightsError(model_missing_message(spec, f"{ENV_OFFLINE} is set"))
    dest = (dest_dir or echobench_weights_dir()) / spec.folder
    tmp = None
    try:
        import huggingface_hub as hub
        from huggingface_hub.errors import EntryNotFoundError

        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{spec.folder}.", suffix=".part"))

        def fetch(name: str) -> None:
            meta = hub.get_hf_file_metadata(hub.hf_hub_url(spec.repo_id, name), timeout=timeout)
            path = Path(hub.hf_hub_download(spec.repo_id, name, local_dir=tmp, etag_timeout=timeout))
            etag = (meta.etag or "").strip('"').lower()
            if len(etag) == 64 and all(c in "0123456789abcdef" for c in etag):  # LFS files: the ETag is the SHA-256
                got = _sha256(path)
                if got != etag:
                    raise ValueError(f"{name}: SHA-256 {got} differs from the hub's {etag}")

        for name in spec.files:
            fetch(name)
        for i, name in enumerate(MODEL_WEIGHT_FILES):
            try:
                fetch(name)
                break
            except EntryNotFoundError:
                if i == len(MODEL_WEIGHT_FILES) - 1:
                    raise
        os.replace(tmp, dest)
        tmp = None
    except Exception as exc:  # network, hub or checksum failure: one clear message
        raise MissingWeightsError(model_missing_message(spec, f"download failed: {type(exc).__name__}: {exc}")) from exc
    finally:
        if tmp is not None and tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def resolve_model_dir(spec: ModelSpec, explicit: str | os.PathLike | None = None, *,
                      allow_download: bool = True) -> Path:
    """:func:`find_model_dir`, else :func:`download_model` (if allowed), else :class:`MissingWeightsError`."""
    path = find_model_dir(spec, explicit)
    if path is not None:
        return path
    if not allow_download:
        raise MissingWeightsError(model_missing_message(spec, "downloads disabled"))
    return download_model(spec)


def model_dir_hash(path: str | os.PathLike, length: int = 12) -> str:
    """Short SHA-256 over a model folder's ``config.json`` and its weight file (each hashed once per process)."""
    p = Path(path)
    parts = [weights_hash(p / "config.json", 64)]
    weight = next((p / f for f in MODEL_WEIGHT_FILES if (p / f).is_file()), None)
    if weight is not None:
        parts.append(weights_hash(weight, 64))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]
