"""``harness data realism``: how far the phantom is from real apical-4-chamber echo, in the ``radiomics`` space.

FD_radiomics (Fréchet distance of the 97 weight-free ``radiomics`` features, :mod:`harness.features.radiomics`)
between phantom images and the mean/covariance of 300 real A4C frames (5 patients; the shared statistics file,
``real-a4c-radiomics-stats.npz``; the frames themselves cannot be redistributed). The same number for the flat
``labelmap`` rendering of the same samples shows how much the image formation adds. The real-vs-real floor (frames
of other patients, same N) is about 0.43 in this space; the ratio to it is printed beside each distance.

Added to the ``data`` group of :mod:`harness.cli` by :func:`register`; nothing heavy is imported until it runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from harness.errors import DataError, UsageError

STATS_NAME = "real-a4c-radiomics-stats.npz"
ENV_VAR = "ECHOBENCH_REAL_STATS"
#: FD_radiomics between real A4C frames of different patients at N = 300 (issue 20's measurement)
REAL_FLOOR = 0.43


@dataclass(frozen=True)
class RealismRow:
    source: str  # "phantom" | "labelmap"
    n: int
    fd_radiomics: float
    ratio_to_floor: float
    mean_term: float  # ||mu - mu_real||^2, the part of FD due to the means


def default_stats_candidates(repo: Path | None = None) -> list[Path]:
    """Where the shared statistics are looked for: ``$ECHOBENCH_REAL_STATS``, then ``shared/data/`` beside the
    repository (``../shared/data``) or beside one of its parent folders (a worktree next to ``shared/``)."""
    repo = repo or Path(__file__).resolve().parents[2]
    out = []
    if os.environ.get(ENV_VAR):
        out.append(Path(os.environ[ENV_VAR]).expanduser())
    for parent in (repo, *list(repo.parents)[:2]):
        out.append(parent.parent / "shared" / "data" / STATS_NAME)
    return out


def resolve_stats(path: Path | None) -> Path:
    """The statistics file: ``path`` when given (must exist), else the first existing default candidate."""
    if path is not None:
        if not path.is_file():
            raise DataError(f"--stats {path}: no such file; it should be {STATS_NAME} (mu, sigma, names)")
        return path
    tried = default_stats_candidates()
    for cand in tried:
        if cand.is_file():
            return cand
    raise DataError(f"real-echo statistics {STATS_NAME} not found (tried {', '.join(map(str, tried))}); "
                    f"pass --stats PATH or set {ENV_VAR}=PATH")


def load_real_stats(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of the shared file, checked against the current ``radiomics`` feature definition."""
    from harness.features.radiomics import feature_names

    try:
        with np.load(path, allow_pickle=False) as z:
            mu, sigma, names = np.asarray(z["mu"], np.float64), np.asarray(z["sigma"], np.float64), list(z["names"])
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a statistics file with mu, sigma and names ({exc})") from None
    expected = feature_names()
    if [str(n) for n in names] != expected or mu.shape != (len(expected),) or sigma.shape != (len(expected),) * 2:
        raise DataError(f"{path}: its {len(names)} feature names/shapes do not match the current radiomics features "
                        f"({len(expected)}); the statistics were made with another feature definition")
    return mu, sigma


def realism(stats: Path, *, n: int = 300, size: int = 256, seed: int = 0, split: str = "test",
            progress=None) -> list[RealismRow]:
    """FD_radiomics of ``n`` phantom images and of their flat label-map renderings to the real statistics."""
    from harness.data.phantom import PhantomSource, render_labelmap_image
    from harness.features.radiomics import radiomics_features
    from tasks.fid_math import frechet_distance

    if n < 2:
        raise UsageError(f"--n {n}: need at least 2 images for a covariance")
    mu_r, sigma_r = load_real_stats(stats)
    src = PhantomSource(size=size, seed=seed)
    feats: dict[str, list[np.ndarray]] = {"phantom": [], "labelmap": []}
    for batch in src.iter_batches(split, n, batch_size=50):
        feats["phantom"] += [radiomics_features(im) for im in batch.images]
        feats["labelmap"] += [radiomics_features(im) for im in render_labelmap_image(batch.label_maps)]
        if progress is not None:
            progress(len(batch.images))
    rows = []
    for name, f in feats.items():
        x = np.stack(f)
        mu, sigma = x.mean(axis=0), np.cov(x, rowvar=False)
        fd = frechet_distance(mu, sigma, mu_r, sigma_r)
        rows.append(RealismRow(name, n, fd, fd / REAL_FLOOR, float(((mu - mu_r) ** 2).sum())))
    return rows


def realism_cmd(
    n: int = typer.Option(300, "--n", help="Phantom images (the real statistics are over 300 frames)."),
    size: int = typer.Option(256, "--size", help="Phantom image side in pixels."),
    seed: int = typer.Option(0, "--seed", help="Phantom seed."),
    split: str = typer.Option("test", "--split", help="Phantom split."),
    stats: Optional[Path] = typer.Option(None, "--stats", help=f"Real statistics ({STATS_NAME}); default: ${ENV_VAR} or ../shared/data/ beside the repository."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per row."),
) -> None:
    """FD_radiomics of phantom images (and of flat label maps) to real A4C echo statistics.

    Example: harness data realism --n 300
    """
    from rich.console import Console
    from rich.table import Table

    from harness.cli import RichReporter

    path = resolve_stats(stats)
    load_real_stats(path)  # validate before the slow part
    with RichReporter().stage("phantom realism", n) as advance:
        rows = realism(path, n=n, size=size, seed=seed, split=split, progress=advance)
    if as_json:
        for r in rows:
            typer.echo(json.dumps({**asdict(r), "stats": str(path)}))
        return
    table = Table(title=f"FD_radiomics to real A4C statistics ({path.name}); real-vs-real floor ≈ {REAL_FLOOR}")
    for col in ("source", "n", "FD_radiomics", "× floor", "mean term"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for r in rows:
        table.add_row(r.source, str(r.n), f"{r.fd_radiomics:.3f}", f"{r.ratio_to_floor:.2f}", f"{r.mean_term:.3f}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    from harness.cli import data_app

    data_app.command("realism")(realism_cmd)
