"""``harness human agreement``: per-image metrics vs clinician ratings, and generator rankings vs ratings.

Added to the ``human`` group of :mod:`harness.commands.human` by :func:`register`. Nothing heavy is
imported until the command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from harness.errors import DataError, UsageError

OUT_FILES = {"per_image": "per_image_metrics.csv", "metric_agreement": "metric_agreement.csv",
             "generator_agreement": "generator_agreement.csv", "generator_pairs": "generator_pairs.csv"}


def reference_images(spec: str) -> list:
    """The images of ``--reference``: ``folder:DIR`` or a bare folder path (PNG/JPEG/BMP/TIFF files)."""
    from harness.io import list_images, read_image

    kind, sep, arg = spec.partition(":")
    folder = Path(arg if sep and kind == "folder" else spec).expanduser()
    if sep and kind != "folder" and not folder.is_dir():
        raise UsageError(f"--reference must be folder:DIR (a folder of real images), not {spec!r}")
    if not folder.is_dir():
        raise DataError(f"--reference folder {folder} does not exist or is not a folder")
    files = list_images(folder)
    if len(files) < 2:
        raise DataError(f"--reference folder {folder} has {len(files)} image file(s); it needs at least k + 1")
    return [read_image(f, mode="rgb") for f in files]


def scatter_png(per_image, ratings, path: Path) -> Path:
    """One panel per per-image metric: value vs the image's mean rating, coloured by source."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    from human_eval.agreement import PER_IMAGE_COLUMNS

    mean = ratings.assign(image_id=ratings["image_id"].astype(str)).groupby("image_id")["rating"].mean()
    d = per_image.assign(mean_rating=per_image["image_id"].astype(str).map(mean))
    cols = [c for c in PER_IMAGE_COLUMNS if c in d.columns]
    fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.6), squeeze=False)
    for ax, c in zip(axes[0], cols):
        for src, g in d.groupby("source"):
            v = g[c].to_numpy(float)
            ok = np.isfinite(v) & g["mean_rating"].notna().to_numpy()
            ax.scatter(v[ok], g["mean_rating"].to_numpy(float)[ok], s=14, alpha=0.75, label=src)
        ax.set_xlabel(c.replace("_", " "))
        ax.set_ylabel("mean rating")
    axes[0][0].legend(title="source", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def agreement_cmd(
    study: str = typer.Option(..., "--study", help="Study name in the results DB (imported with --images)."),
    db: str | None = typer.Option(None, "--db", help="Results DB URL or SQLite path."),
    reference: str | None = typer.Option(None, "--reference", help="Real reference images for the realism score and "
                                         "nearest-real distance: folder:DIR (default: the study's 'real' images)."),
    root: Path | None = typer.Option(None, "--root", help="Folder that relative images.csv paths are resolved "
                                     "against (default: as stored, i.e. the working directory)."),
    features: str = typer.Option("radiomics", "--features", help="Feature extractor of the per-image metrics."),
    k: int = typer.Option(3, "--k", help="k of the realism score's k-NN radii."),
    exclude_real: bool = typer.Option(False, "--exclude-real", help="Rank only the synthetic sources by each metric."),
    as_json: bool = typer.Option(False, "--json", help="Print every table as JSON records on stdout."),
    out_dir: Path | None = typer.Option(None, "--out", help="Write the tables as CSV and a scatter PNG here."),
    device: str = typer.Option("auto", "--device", help="Device of the feature extractor."),
) -> None:
    """How well do automatic metrics agree with the clinicians, per image and per generator?

    Per image: colour-shift chroma, realism score (Kynkäänniemi et al. 2019) and distance to the nearest real
    image, rank-correlated with the image's mean rating. Per generator: each stored metric's ranking vs the
    mean-rating ranking (Kendall's tau and the pairwise table; generators are matched to sources by name,
    sd-lora -> sd).

    Example: harness human agreement --study paper2024 --out agreement/
    """
    from rich.table import Table

    from harness.cli import err, out
    from harness.store import Store
    from human_eval.agreement import agreement_tables
    from human_eval.db import load_study

    if k < 1:
        raise UsageError(f"--k must be a positive integer (got {k})")
    store = Store(db)
    tables = load_study(store, study)
    ref_imgs = reference_images(reference) if reference else None
    res = agreement_tables(tables, store=store, base_dir=root, reference_images=ref_imgs, extractor=features, k=k,
                           exclude=("real",) if exclude_real else (), device=device)
    if "per_image" in res and len(res["per_image"]):
        from human_eval.agreement import per_image_long
        from human_eval.db import save_per_image_metrics

        save_per_image_metrics(store, study, per_image_long(res["per_image"]), feature_space=features)
    if "per_image" not in res:
        err.print("[yellow]note:[/yellow] the study has no image paths (import it with --images images.csv), so "
                  "only the generator ranking is compared", highlight=False)
    if as_json:
        payload = {k_: json.loads(v.to_json(orient="records")) for k_, v in res.items()}
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        titles = {"metric_agreement": "Per-image metric vs mean rating (rank correlation)",
                  "generator_agreement": "Generator ranking: each metric vs mean rating (Kendall's tau)",
                  "generator_pairs": "Pairwise: which generator does the metric / do the clinicians prefer?"}
        for key, title in titles.items():
            if key not in res:
                continue
            df = res[key]
            t = Table(title=title)
            for c in df.columns:
                t.add_column(str(c))
            for row in df.itertuples(index=False):
                t.add_row(*[("" if v != v else f"{v:.3g}") if isinstance(v, float) else str(v) for v in row])
            out.print(t)
        if "generator_agreement" in res and res["generator_agreement"].empty:
            err.print("[yellow]note:[/yellow] no stored results for generators named like the study's sources "
                      f"({', '.join(sorted(tables.ratings['source'].unique()))}; sd-lora counts as sd): run "
                      "`harness run` for them first", highlight=False)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for key, df in res.items():
            df.to_csv(out_dir / OUT_FILES[key], index=False)
            written.append(out_dir / OUT_FILES[key])
        if "per_image" in res and len(res["per_image"]):
            written.append(scatter_png(res["per_image"], tables.ratings, out_dir / "agreement_scatter.png"))
        err.print("wrote " + ", ".join(str(p) for p in written), highlight=False)


def register(app: typer.Typer) -> None:
    from harness.commands.human import human_app

    human_app.command("agreement")(agreement_cmd)
