"""``harness leaderboard --export DIR``: the leaderboard as a static site (no server, no external request).

The site holds the same tables as the Streamlit page, built by :mod:`leaderboard.table` from the same store:

- ``index.html``: the leaderboard (reference rows, ranked rows, headline metrics, thumbnail strips, the fraction
  of the way from the no-learning floor to the noise floor), every metric in a second table, demo runs apart,
  the FID-vs-1/N fits, the metric-vs-clinician agreement plots (SVG) and which distance predicts downstream
  Dice (when a seg-utility / anatomy-faithfulness Dice is stored; the mean Dice column has "fraction of real"
  beside it);
- ``gallery.html``: the same condition rendered by every generator, beside a real image;
- ``human.html``: the human-evaluation tables (when the store holds a study);
- ``style.css``, ``thumbs/*.png``, ``plots/*.svg``;
- ``data/results.csv`` and ``data/results.json`` (every stored result), ``data/leaderboard.csv`` (the table).

Deterministic: the same database gives byte-identical files (no timestamps of the export, sorted keys,
PNG/SVG written without dates; matplotlib's SVG ids salted with a constant). The site is written to a
sibling temporary folder and moved into place, so a failed export leaves the previous one intact.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import UsageError
from harness.formatting import format_frame, sig
from leaderboard import data, thumbs
from leaderboard import table as tbl

MARKER = ".echobench-site"
GALLERY_ROWS = 4
THUMBS = 3
CSS = """\
:root{--fg:#1d2433;--muted:#5b6475;--line:#d9dde5;--ref:#f3f4f6;--demo:#fff6e0;--accent:#2456a6}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);margin:0}
main{max-width:1240px;margin:0 auto;padding:16px 20px 48px}
nav{background:#0f1b33;padding:10px 20px}nav a{color:#fff;margin-right:18px;text-decoration:none;font-weight:600}
nav a[aria-current]{border-bottom:2px solid #fff}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px}
p.lead,.note{color:var(--muted)}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;table-layout:auto}
th,td{border-bottom:1px solid var(--line);padding:6px 8px;text-align:left;vertical-align:middle}
th{font-size:13px;background:#f8f9fb;position:sticky;top:0}
th[title]{cursor:help;text-decoration:underline dotted}
td.num{text-align:right;white-space:nowrap}td small{display:block;color:var(--muted);font-size:11px}
tr.ref td{background:var(--ref);color:var(--muted);font-style:italic}
tr.demo td{background:var(--demo)}
.rank{font-weight:700;white-space:nowrap}.tag{font-size:11px;padding:1px 6px;border-radius:8px;background:#e8ecf3}
tr.demo .tag{background:#f5d58f}
img.strip{height:48px;display:block}
.scroll{overflow-x:auto}
.gallery td{text-align:center}.gallery img{width:128px;height:128px;object-fit:contain;background:#000}
figure{display:inline-block;margin:8px 16px 8px 0}figure img{max-width:560px}
figcaption{color:var(--muted);font-size:12px}
ul.toc{columns:2}
"""


# ------------------------------------------------------------------------------------------- helpers
def _e(x) -> str:
    return html.escape(str(x), quote=True)


def slug(*parts: str) -> str:
    """A file-name-safe, stable name for a (generator, checkpoint) row."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(p for p in parts if p and p != data.NO_CHECKPOINT))[:80] or "x"


def _page(title: str, current: str, body: str, pages: dict[str, str]) -> str:
    nav = "".join(f'<a href="{f}"{" aria-current=page" if f == current else ""}>{_e(t)}</a>' for f, t in pages.items())
    return ("<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width,initial-scale=1'>"
            f"<title>{_e(title)}</title><link rel=stylesheet href=style.css></head>\n"
            f"<body><nav>{nav}</nav><main>\n{body}\n</main></body></html>\n")


def _svg(fig) -> bytes:
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "echobench", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "EchoBench"})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- tables
def table_html(table: tbl.Table, columns: list[tbl.Column], thumbs_of: dict | None, fractions: bool = True) -> str:
    """The leaderboard as an HTML table: rank (or reference role), generator, samples, one column per metric
    (tooltip in the header's ``title``), N."""
    frac = table.fraction() if fractions else None
    head = ["<th title='1, 2, … ranked by the first metric; reference rows (baselines) are never ranked'>rank</th>",
            "<th>generator</th>"] + (["<th>samples</th>"] if thumbs_of is not None else [])
    real = table.real_fraction()
    beside = {c.header: (label, help_) for c, _, label, help_ in table.real_fraction_columns(columns)}
    for c in columns:
        head.append(f"<th title='{_e(c.help)}'>{_e(c.label)}</th>")
        if c.header in beside:
            head.append(f"<th title='{_e(beside[c.header][1])}'>{_e(beside[c.header][0])}</th>")
    head += ["<th title='generated images of the latest run'>N</th>"]
    rows = []
    for key in table.value.index:
        info = table.info.loc[key]
        cls = "ref" if isinstance(info["baseline"], str) else "demo" if isinstance(info["demo"], str) else ""
        g, ck = key
        name = _e(g) + ("" if ck == data.NO_CHECKPOINT else f" <small>{_e(ck[:12])}</small>")
        if isinstance(info["demo"], str):
            name += f" <span class=tag title='{_e(info['demo'])}'>demo</span>"
        cells = [f"<td class=rank>{_e(info['rank'])}</td>", f"<td>{name}</td>"]
        if thumbs_of is not None:
            src = thumbs_of.get(key)
            cells.append(f"<td><img class=strip src='{_e(src)}' alt='samples of {_e(g)}'></td>" if src else "<td></td>")
        for c in columns:
            text = tbl.interval(table.value.at[key, c.header], table.ci_low.at[key, c.header],
                                table.ci_high.at[key, c.header])
            f = frac.at[key, c.header] if frac is not None else np.nan
            extra = f"<small>{f:.0%} of the way</small>" if text and np.isfinite(f) else ""
            cells.append(f"<td class=num>{_e(text)}{extra}</td>")
            if c.header in beside:
                r = real.at[key, c.header]
                cells.append(f"<td class='num real-fraction'>{f'{r:.0%}' if np.isfinite(r) else ''}</td>")
        cells.append(f"<td class=num>{_e(info['N'])}</td>")
        rows.append(f"<tr class='{cls}'>" + "".join(cells) + "</tr>")
    return ("<div class=scroll><table class=board><thead><tr>" + "".join(head) + "</tr></thead><tbody>\n"
            + "\n".join(rows) + "\n</tbody></table></div>")


def frame_html(df: pd.DataFrame) -> str:
    """A statistics DataFrame as an HTML table, numbers formatted by :func:`harness.formatting.format_frame`."""
    shown = format_frame(df)
    head = "".join(f"<th>{_e(c)}</th>" for c in shown.columns)
    body = "\n".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>"
                     for row in shown.itertuples(index=False))
    return f"<div class=scroll><table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table></div>"


# ---------------------------------------------------------------------------------------------- plots
def fid_inf_svg(fit: dict, metric: str, title: str) -> bytes:
    """FD_N against 1/N with the fitted line FD_N = a + k/N; the intercept is FD∞."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    pts = fit["points"]
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    ax.plot(pts["inv_n"], pts["fid_n"], "o", ms=4, label=f"{metric.removesuffix('_inf')} at N")
    xs = np.array([0.0, float(pts["inv_n"].max()) * 1.05])
    ax.plot(xs, fit["a"] + fit["k"] * xs, "--", color="black", lw=1, label="fit a + k/N")
    ax.plot([0], [fit["a"]], "D", color="firebrick", label=f"{metric} = {sig(fit['a'])}")
    ax.set_xlabel("1 / N")
    ax.set_ylabel(metric.removesuffix("_inf"))
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _svg(fig)


def agreement_svg(scores: pd.DataFrame, column: tbl.Column, tau: float | None) -> bytes:
    """Each rated generator's metric value against its mean clinician rating."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    x, y = scores[column.header], scores["mean rating"]
    ax.plot(x, y, "o", ms=5)
    for g, xi, yi in zip(scores.index, x, y):
        ax.annotate(str(g), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(column.label)
    ax.set_ylabel("mean clinician rating")
    t = "" if tau is None or not math.isfinite(tau) else f" (Kendall τ = {tau:+.2f}, oriented)"
    ax.set_title(f"{column.label} vs clinicians{t}", fontsize=10)
    fig.tight_layout()
    return _svg(fig)


def utility_svg(util: pd.DataFrame) -> bytes:
    """Kendall's tau of each distance vs downstream Dice with its CI (one panel per target task)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    t = util.dropna(subset=["kendall_tau"])
    targets = list(dict.fromkeys(t["target"]))
    fig, axes = plt.subplots(1, len(targets), figsize=(5.2 * len(targets), 0.3 * t.groupby("target").size().max() + 1.4),
                             squeeze=False)
    for ax, target in zip(axes[0], targets):
        g = t[t["target"] == target].sort_values(["kendall_tau", "metric"])
        y = np.arange(len(g))
        lo = (g["kendall_tau"] - g["ci_low"]).clip(lower=0).fillna(0).to_numpy()
        hi = (g["ci_high"] - g["kendall_tau"]).clip(lower=0).fillna(0).to_numpy()
        ax.errorbar(g["kendall_tau"], y, xerr=[lo, hi], fmt="o", ms=4, capsize=3)
        ax.set_yticks(y, [f"{m}{' *' if s else ''}" for m, s in zip(g["metric"], g["substitute"])], fontsize=8)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlim(-1.05, 1.05)
        ax.set_xlabel("Kendall τ vs mean Dice (* substitute space)", fontsize=9)
        ax.set_title(f"{target}: n = {int(g['n_generators'].max())} generators", fontsize=10)
    fig.tight_layout()
    return _svg(fig)


# ---------------------------------------------------------------------------------------------- build
def _results_files(results: pd.DataFrame) -> tuple[bytes, bytes]:
    # local image-set paths say nothing to a visitor (and name the exporting machine's folders)
    frame = results.sort_values("order", kind="stable").drop(columns=["order", "imageset_path"]).copy()
    frame["started_at"] = frame["started_at"].dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    csv = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    records = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
               for r in frame.to_dict(orient="records")]
    js = json.dumps(records, sort_keys=True, indent=1, ensure_ascii=False, default=str).encode("utf-8")
    return csv, js + b"\n"


def build_site(engine, out: Path) -> dict[str, bytes]:
    """Every file of the site as ``{relative path: bytes}`` (pure: writes nothing)."""
    results = data.load_results(engine)
    files: dict[str, bytes] = {"style.css": CSS.encode("utf-8")}
    study = data.load_study(engine)
    pages = {"index.html": "Leaderboard", "gallery.html": "Gallery"}
    if study is not None:
        pages["human.html"] = "Human evaluation"
    table = tbl.main_table(results)
    every = tbl.main_table(results, tbl.Filters(include_demo=True))

    # thumbnails
    thumbs_of: dict = {}
    for key, path in zip(every.value.index, every.info["imageset_path"]):
        png = thumbs.strip_for(path, height=64, k=THUMBS)
        if png is not None:
            name = f"thumbs/{slug(*key)}.png"
            files[name] = png
            thumbs_of[key] = name

    body = ["<h1>EchoBench leaderboard</h1>",
            "<p class=lead>Synthetic echocardiography generators scored against real images. Gray rows are "
            "<b>reference rows</b> (baselines, never ranked): the <i>noise floor</i> (real images scored against real "
            "images) is the best reachable; the <i>no-learning floor</i> is what a model that learned nothing "
            "scores. Cells: value ± half-width of the 95% CI, 3 significant digits, and where both floors exist the "
            "fraction of the way from the no-learning floor (0%) to the noise floor (100%). Hover a header for what "
            "it measures, which direction is better, the feature space and N.</p>"]
    if table.empty:
        body.append("<p>No results in this database yet (demo runs are listed below).</p>")
    else:
        body.append(table_html(table, table.headline, thumbs_of))
        if not table.ranked.any():
            body.append("<p class=note>No generator is ranked yet: only the baselines have been scored.</p>")
        body.append("<h2 id=all>Every metric</h2>" + table_html(table, table.columns, None))
    demo_keys = [k for k in every.value.index if isinstance(every.info.at[k, "demo"], str)]
    if demo_keys:
        sub = tbl.Table(every.value.loc[demo_keys], every.ci_low.loc[demo_keys], every.ci_high.loc[demo_keys],
                        every.info.loc[demo_keys], every.columns)
        cols = [c for c in every.columns if sub.value[c.header].notna().any()]
        body.append("<h2 id=demo>Demo runs (stand-ins, not ranked)</h2><p class=note>Made with a stand-in feature "
                    "space (random weights), a tiny preset or the tiny random SD base: they show that the pipeline "
                    "works, not how good a model is.</p>" + table_html(sub, cols, thumbs_of, fractions=False))

    # FID-vs-1/N fits: for each row, the latest run that stored each FD∞ column of the table
    figs = []
    if not table.empty:
        shown = tbl.apply_filters(results, tbl.Filters())
        inf_metrics = {c.metric for c in table.columns if c.metric.endswith("_inf")}
        latest = (shown[shown["metric"].isin(inf_metrics)].sort_values("order")
                  .drop_duplicates(["generator", "checkpoint", "metric", "feature_space"], keep="last"))
        for key in table.value.index:
            mine = latest[(latest["generator"] == key[0]) & (latest["checkpoint"] == key[1])]
            for run_id in dict.fromkeys(mine["run_id"]):
                res = data.run_results(engine, run_id)
                for metric, details in zip(res["metric"], res["details"]):
                    fit = data.fid_inf_fit(details) if metric in inf_metrics else None
                    if fit is not None:
                        name = f"plots/fid_inf-{slug(*key)}-{slug(metric)}.svg"
                        files[name] = fid_inf_svg(fit, metric, f"{key[0]}: {metric}")
                        figs.append((name, f"{key[0]}: {metric} = intercept of FD_N = a + k/N "
                                           f"(a = {sig(fit['a'])}, k = {sig(fit['k'])})"))
    if figs:
        body.append("<h2 id=fid-inf>FD against 1/N (FD∞ fits)</h2>" + "".join(
            f"<figure><img src='{_e(n)}' alt='{_e(c)}'><figcaption>{_e(c)}</figcaption></figure>" for n, c in figs))

    # agreement with clinicians
    if study is not None and not table.empty:
        from leaderboard import human

        scores = human.generator_scores(table, study.ratings)
        body.append("<h2 id=agreement>Metrics vs clinicians</h2>")
        if len(scores) < 2:
            body.append(f"<p class=note>Fewer than 2 generators on the board are rated in study {_e(study.name)} "
                        "(rated sources: " + _e(", ".join(sorted(study.ratings["source"].unique()))) + ").</p>")
        else:
            higher = {c.header: c.higher_is_better for c in table.columns}
            agree = human.ranking_agreement(scores, higher).set_index("metric")
            for c in table.headline:
                if c.header in scores and scores[c.header].notna().sum() >= 2:
                    name = f"plots/agreement-{slug(c.metric, c.feature_space)}.svg"
                    files[name] = agreement_svg(scores.dropna(subset=[c.header]), c, agree.at[c.header, "tau"])
                    body.append(f"<figure><img src='{_e(name)}' alt='{_e(c.label)} vs clinicians'></figure>")
    # which distance predicts downstream Dice (no study needed; shown when a Dice is stored)
    shown_results = tbl.apply_filters(results, tbl.Filters())
    if not shown_results.empty:
        from human_eval.trust import UTILITY_EXPLAINED
        from leaderboard import human

        if human.has_dice(shown_results):
            util, lines = human.utility_agreement(shown_results)
            body.append("<h2 id=utility>Which distance predicts downstream Dice</h2>"
                        + "".join(f"<p class=lead><b>{_e(line)}</b></p>" for line in lines))
            if not util.empty and util["kendall_tau"].notna().any():
                files["plots/utility.svg"] = utility_svg(util)
                body.append("<figure><img src='plots/utility.svg' alt='Kendall tau of each distance vs downstream "
                            "Dice'></figure>" + frame_html(util[human.UTILITY_SHOWN])
                            + f"<p class=note>{_e(UTILITY_EXPLAINED)}</p>")
    body.append("<h2 id=data>Data</h2><p>Every stored result: <a href='data/results.csv'>results.csv</a> · "
                "<a href='data/results.json'>results.json</a>; this table: <a href='data/leaderboard.csv'>"
                "leaderboard.csv</a>.</p>")
    files["data/results.csv"], files["data/results.json"] = _results_files(results)
    files["data/leaderboard.csv"] = table.to_csv()
    files["index.html"] = _page("EchoBench leaderboard", "index.html", "\n".join(body), pages).encode("utf-8")

    # gallery
    sets, real = thumbs.gallery_sets(table.value.index, table.info["imageset_path"], table.info["baseline"])
    names, rows, uncond = thumbs.gallery(sets, real, rows=GALLERY_ROWS)
    gbody = ["<h1>Gallery</h1>"]
    if rows:
        by_cond = "condition" in rows[0]
        gbody.append("<p class=lead>" + ("Each row: one phantom condition (label map) as every generator renders it, "
                                         "the real image first." + (
                                             f" Unconditional generators ({', '.join(uncond)}): their i-th image."
                                             if uncond else "") if by_cond else
                                         "Each row: image i of every generator's set.") + "</p>")
        head = "<tr><th>condition</th>" + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr>"
        trs = []
        for i, row in enumerate(rows):
            tds = [f"<td>{_e(row.get('condition', i))}</td>"]
            for n in names:
                if n in row and (png := thumbs.thumbnail(row[n], 192)) is not None:
                    fname = f"thumbs/gallery-{i}-{slug(n)}.png"
                    files[fname] = png
                    tds.append(f"<td><img src='{_e(fname)}' alt='{_e(n)} {_e(row.get('condition', i))}'></td>")
                else:
                    tds.append("<td></td>")
            trs.append("<tr>" + "".join(tds) + "</tr>")
        gbody.append(f"<div class=scroll><table class=gallery><thead>{head}</thead><tbody>{''.join(trs)}</tbody></table></div>")
    else:
        gbody.append("<p>No image set of these runs was on the exporting machine.</p>")
    files["gallery.html"] = _page("EchoBench gallery", "gallery.html", "\n".join(gbody), pages).encode("utf-8")

    if study is not None:
        from leaderboard import human

        stats = human.study_statistics(study)
        sections = [("descriptives", "Descriptives per source"),
                    ("friedman", "Friedman test on participant means (Kendall's W)"),
                    ("wilcoxon", "Wilcoxon signed-rank post-hoc, Holm-corrected"),
                    ("bootstrap", "Participant-clustered bootstrap of the difference from real"),
                    ("flags", "Artifact flags (Wilson 95% CI)"),
                    ("mwu", "Paper analysis: Mann-Whitney U vs real (assumes independent ratings)")]
        hbody = [f"<h1>Human evaluation: {_e(study.name)}</h1>"]
        if study.synthetic:
            hbody.append("<p class=note><b>SYNTHETIC study</b>: simulated ratings, not clinician data.</p>")
        r = study.ratings
        hbody.append(f"<p class=lead>{len(r):,} ratings, {r['participant_id'].nunique():,} participants, "
                     f"{r['source'].nunique()} sources.</p><ul class=toc>"
                     + "".join(f"<li><a href='#{k}'>{_e(t)}</a></li>" for k, t in sections) + "</ul>")
        for k, t in sections:
            hbody.append(f"<h2 id='{k}'>{_e(t)}</h2>" + frame_html(stats[k]))
        files["human.html"] = _page("EchoBench human evaluation", "human.html", "\n".join(hbody), pages).encode("utf-8")
    files[MARKER] = b"EchoBench static leaderboard export\n"
    return files


def export_site(engine, out: str | Path) -> list[Path]:
    """Write the site into ``out`` (created; an existing folder must be empty or an earlier export) and return
    the written files, sorted."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise UsageError(f"{out} exists and is not an earlier EchoBench export; choose an empty or new folder")
    if engine is None:
        raise UsageError("no results database to export (run `harness quickstart` first, or pass --db)")
    files = build_site(engine, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for rel, content in sorted(files.items()):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(out / rel for rel in files)
