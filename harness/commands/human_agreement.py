"""``harness human agreement``: per-image metrics vs clinician ratings, and generator rankings vs ratings.

Added to the ``human`` group of :mod:`harness.commands.human` by :func:`register`. Nothing heavy is
imported until the command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from harness.errors import DataError, MissingWeightsError, UsageError

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
    study: str | None = typer.Option(None, "--study", help="Study name in the results DB (imported with --images). "
                                     "Required unless --utility is given."),
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
    n_boot: int = typer.Option(1000, "--n-boot", help="Rater-bootstrap resamples for Kendall's tau CI."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstraps and subsets."),
    spread: bool = typer.Option(True, "--spread/--no-spread", help="With --out: each distance on subsets of N = "
                                "--sizes generated images of the stored image sets (how many images a stable ranking needs)."),
    sizes: str = typer.Option("50,100,200,400,800", "--sizes", help="Subset sizes for --spread."),
    draws: int = typer.Option(5, "--draws", help="Random subsets per size for --spread."),
    faults: bool = typer.Option(True, "--faults/--no-faults", help="With --out: each distance on phantom sets with "
                                "increasing blur and speckle (does it rise monotonically?)."),
    fault_n: int = typer.Option(200, "--fault-n", help="Phantom images per set for --faults."),
    fault_size: int = typer.Option(64, "--fault-size", help="Phantom image side for --faults."),
    spaces: str | None = typer.Option(None, "--spaces", help="Feature spaces for --spread/--faults, comma-separated "
                                      "(default: every registered space with stored results for the study)."),
    utility: bool | None = typer.Option(None, "--utility/--no-utility", help="Which distance predicts downstream "
                                        "Dice: Kendall's tau between each stored distance's ranking of the generators "
                                        "and their seg-utility (and anatomy-faithfulness) mean Dice. On by default "
                                        "with --study; --utility without --study gives this table alone (no "
                                        "clinician study needed)."),
    data: str | None = typer.Option(None, "--data", help="With the utility table: only runs on this data source "
                                     "(default: each generator's newest Dice run, distances from the same source)."),
) -> None:
    """How well do automatic metrics agree with the clinicians, per image and per generator?

    Per image: colour-shift chroma, realism score (Kynkäänniemi et al. 2019) and distance to the nearest real
    image, rank-correlated with the image's mean rating. Per generator: each stored metric's ranking vs the
    mean-rating ranking (Kendall's tau and the pairwise table; generators are matched to sources by name,
    sd-lora -> sd).

    Across feature spaces: one table (and with --out one HTML page, trust.html) with, for every stored
    (space, metric), Kendall's tau vs the clinicians with a bootstrap CI over raters, the spread at small N
    and the response to phantom blur/speckle, headed by one sentence saying which spaces rank the generators
    like the clinicians.

    Which distance predicts downstream Dice (--utility, on by default with --study): for every stored
    (space, distance) of the generators that have a seg-utility / anatomy-faithfulness mean Dice (the real and
    labelmap baselines included), Kendall's tau between the distance's ranking and the Dice ranking (+1 = the
    better-by-distance generator has the higher Dice), scipy's exact p, the smallest p n generators allow, and a
    bootstrap CI over the Dice's test images (or the stored CIs). With --out: a section of trust.html and
    utility_table.csv.

    Examples: harness human agreement --study paper2024 --out agreement/
              harness human agreement --utility --out utility/      (no study needed)
    """
    from harness.cli import err
    from harness.store import Store
    from human_eval.agreement import agreement_tables
    from human_eval.db import load_study

    size_list = _check_options(k=k, n_boot=n_boot, draws=draws, fault_n=fault_n, fault_size=fault_size, sizes=sizes)
    if study is None and not utility:
        raise UsageError("give --study NAME (a clinician study in the results DB), or --utility for the table of which "
                         "distance predicts downstream Dice alone (no study needed)")
    store = Store(db)
    util, points = _utility(store, data=data, n_boot=n_boot, seed=seed) if utility is not False else (None, None)
    if study is None:
        _utility_only(util, points, out_dir=out_dir, as_json=as_json, data=data)
        return
    tables = load_study(store, study)
    ref_imgs = reference_images(reference) if reference else None
    res = agreement_tables(tables, store=store, base_dir=root, reference_images=ref_imgs, extractor=features, k=k,
                           exclude=("real",) if exclude_real else (), device=device)
    res.update(_trust(store, tables, res, study=study, out_dir=out_dir, n_boot=n_boot, seed=seed, spread=spread,
                      sizes=size_list, draws=draws, faults=faults, fault_n=fault_n, fault_size=fault_size,
                      spaces=spaces, device=device, reference=ref_imgs, per_image_space=features, utility=util,
                      utility_points=points))
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
        _print_tables(res, tables)
    if out_dir is not None:
        _write_outputs(res, tables, out_dir)


def _check_options(*, k: int, n_boot: int, draws: int, fault_n: int, fault_size: int, sizes: str) -> list[int]:
    """Every option checked before the study is read; returns the --sizes list."""
    if k < 1:
        raise UsageError(f"--k must be a positive integer (got {k})")
    if n_boot < 1 or draws < 1 or fault_n < 4 or fault_size < 16:
        raise UsageError(f"--n-boot and --draws must be ≥ 1, --fault-n ≥ 4, --fault-size ≥ 16 (got {n_boot}, {draws}, "
                         f"{fault_n}, {fault_size})")
    try:
        size_list = sorted({int(x) for x in sizes.split(",") if x.strip()})
    except ValueError:
        raise UsageError(f"--sizes must be comma-separated whole numbers (got {sizes!r})") from None
    if not size_list or size_list[0] < 2:
        raise UsageError(f"--sizes must list subset sizes ≥ 2 (got {sizes!r})")
    return size_list


def _print_tables(res: dict, tables) -> None:
    from rich.markup import escape
    from rich.table import Table

    from harness.cli import err, out

    titles = {"trust": "Which metric to trust: every stored (space, metric) vs the clinicians",
              "utility": "Which distance predicts downstream Dice (Kendall's tau vs mean Dice)",
              "metric_agreement": "Per-image metric vs mean rating (rank correlation)",
              "generator_agreement": "Generator ranking: each metric vs mean rating (Kendall's tau)",
              "generator_pairs": "Pairwise: which generator does the metric / do the clinicians prefer?"}
    for key, title in titles.items():
        if key not in res:
            continue
        df = res[key]
        if key == "utility":
            df = df[["target", "metric", "substitute", "n_generators", "kendall_tau", "p", "min_p", "ci_low", "ci_high",
                     "verdict"]]
        t = Table(title=title)
        for c in df.columns:
            t.add_column(str(c))
        for row in df.itertuples(index=False):
            t.add_row(*[("" if v != v else f"{v:.3g}") if isinstance(v, float) else escape(str(v)) for v in row])
        out.print(t)
    if "generator_agreement" in res and res["generator_agreement"].empty:
        err.print("[yellow]note:[/yellow] no stored results for generators named like the study's sources "
                  f"({', '.join(sorted(tables.ratings['source'].unique()))}; sd-lora counts as sd): run "
                  "`harness run` for them first", highlight=False)


def _write_outputs(res: dict, tables, out_dir: Path) -> None:
    """The tables as spreadsheet-safe CSV (written atomically), the trust page and the scatter PNG."""
    from harness.cli import err
    from harness.csvsafe import csv_bytes
    from harness.io import atomic_write_bytes

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key, df in res.items():
        if key in OUT_FILES:
            atomic_write_bytes(out_dir / OUT_FILES[key], csv_bytes(df))
            written.append(out_dir / OUT_FILES[key])
    if "trust_page" in res:
        written.append(Path(res["trust_page"]["path"].iloc[0]))
    if "per_image" in res and len(res["per_image"]):
        written.append(scatter_png(res["per_image"], tables.ratings, out_dir / "agreement_scatter.png"))
    err.print("wrote " + ", ".join(str(p) for p in written), highlight=False)


def _trust(store, tables, res, *, study, out_dir, n_boot, seed, spread, sizes, draws, faults, fault_n, fault_size,
           spaces, device, reference, per_image_space, utility=None, utility_points=None) -> dict:
    """The cross-space table (always), its spread/fault columns and the HTML page (with --out); ``utility``
    (the distance-vs-Dice table, or None) is added to the result and to the page."""
    import numpy as np
    import pandas as pd

    from harness.cli import err
    from harness.registry import features as feature_registry
    from human_eval import trust

    rng = np.random.default_rng(seed)
    table = trust.cross_space_table(store, tables, rng=rng, n_boot=n_boot)
    out: dict = {"trust": table}
    if utility is not None:
        out["utility"] = utility
        for target in _targets(utility):
            err.print(trust.utility_headline(utility, target), highlight=False, markup=False, style="bold", soft_wrap=True)
    if out_dir is None or table.empty:
        if not table.empty:
            err.print("[bold]" + trust.headline(table) + "[/bold]", highlight=False)
        elif out_dir is not None and utility is not None:
            page = trust.write_report(out_dir, None, title=f"Which metric to trust — study {study}",
                                      headline_text=trust.headline(table), utility=utility,
                                      utility_points=utility_points)
            out["trust_page"] = pd.DataFrame({"path": [str(page)]})
        return out
    if spaces:
        wanted = [s.strip() for s in spaces.split(",") if s.strip()]
        for name in wanted:
            feature_registry.get(name)  # unknown names: did-you-mean, before any work
    else:  # the stored spaces that are feature extractors (not e.g. MS-SSIM's "pixels")
        wanted = sorted(s for s in set(table["space"]) - {""} if s in feature_registry)
    usable = [s for s in wanted if s in feature_registry]
    spread_summaries, spread_long, fault_rows = {}, {}, []
    sources = sorted(set(tables.ratings["source"]))
    for space in usable:
        try:
            if spread:
                gen, ref = trust.stored_features(store, sources, space, reference_images=reference,
                                                 max_n=max(sizes), device=device)
                if ref is not None and len(gen) >= 2:
                    long = trust.small_n_spread(gen, ref, rng=rng, sizes=sizes, draws=draws)
                    spread_long[space], spread_summaries[space] = long, trust.spread_summary(long)
                else:
                    err.print(f"[yellow]note:[/yellow] spread at small N in {space}: needs stored image sets of ≥ 2 "
                              "generators and a reference", highlight=False)
            if faults:
                fault_rows.append(trust.fault_response(space, n=fault_n, size=fault_size, seed=seed, device=device))
        except MissingWeightsError as exc:
            err.print(f"[yellow]note:[/yellow] {space} skipped for spread/faults: {exc}", highlight=False)
    fault_df = pd.concat(fault_rows, ignore_index=True) if fault_rows else None
    per_image = None
    if "metric_agreement" in res:
        per_image = res["metric_agreement"].assign(space=per_image_space)
    full = trust.trust_table(table, spread_summaries, fault_df, per_image)
    line = trust.headline(full)
    extra = {f"Spread at small N ({s})": d for s, d in spread_summaries.items()}
    if fault_df is not None:
        extra["Response to phantom faults"] = fault_df
    page = trust.write_report(out_dir, full, title=f"Which metric to trust — study {study}", headline_text=line,
                              spread_long=spread_long, faults=fault_df, extra_tables=extra, utility=utility,
                              utility_points=utility_points)
    err.print("[bold]" + line + "[/bold]", highlight=False)
    out["trust"] = full
    out["trust_page"] = pd.DataFrame({"path": [str(page)]})
    return out


def _targets(utility) -> list[str]:
    from human_eval.trust import UTILITY_TASKS

    present = set(utility["target"]) if not utility.empty else set()
    return [t for t in UTILITY_TASKS if t in present] or [UTILITY_TASKS[0]]


def _utility(store, *, data: str | None, n_boot: int, seed: int):
    """The distance-vs-Dice table over the whole store and the headline distances' points; an unknown --data is
    a UsageError naming the sources."""
    from human_eval import trust

    if data is not None:
        known = sorted(set(store.results_frame().get("data", [])) - {None})
        if data not in known:
            raise UsageError(f"--data {data!r}: no stored run on that data source (stored: {', '.join(known) or 'none'})")
    table = trust.store_utility_table(store, data=data, seed=seed, n_boot=n_boot)
    return table, trust.utility_points(store.results_frame(), table, data=data)


def _utility_only(utility, points, *, out_dir: Path | None, as_json: bool, data: str | None) -> None:
    """--utility without --study: print the table and its headlines; with --out the page and the CSV."""
    from harness.cli import err
    from human_eval import trust

    lines = [trust.utility_headline(utility, t) for t in _targets(utility)]
    if as_json:
        sys.stdout.write(json.dumps({"utility": json.loads(utility.to_json(orient="records")), "headline": lines}) + "\n")
    else:
        _print_tables({"utility": utility}, None)
    for line in lines:
        err.print(line, highlight=False, markup=False, style="bold", soft_wrap=True)
    if out_dir is not None:
        title = "Which distance predicts downstream Dice" + (f" — data {data}" if data else "")
        page = trust.write_report(out_dir, None, title=title, headline_text=lines[0], utility=utility,
                                      utility_points=points)
        err.print(f"wrote {page}, {Path(out_dir) / 'utility_table.csv'}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    from harness.commands.human import human_app

    human_app.command("agreement")(agreement_cmd)
