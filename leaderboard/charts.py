"""Altair charts of the leaderboard. Each function takes a tidy DataFrame and returns an ``alt.Chart``
(nothing is computed here that the store or :mod:`human_eval.stats` already provides)."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

RATING_COLORS = ["#b2182b", "#ef8a62", "#d9d9d9", "#67a9cf", "#2166ac"]


def fid_inf_chart(fit: dict, metric: str) -> alt.LayerChart:
    """FID_N against 1/N with the fitted line FID_N = a + k/N and its intercept a = FID∞ at 1/N = 0."""
    pts = fit["points"]
    xmax = float(pts["inv_n"].max()) * 1.05
    line = pd.DataFrame({"inv_n": [0.0, xmax], "fid_n": [fit["a"], fit["a"] + fit["k"] * xmax]})
    base_y = alt.Y("fid_n:Q", title=f"{metric.removesuffix('_inf')} at N", scale=alt.Scale(zero=False))
    dots = alt.Chart(pts).mark_circle(size=50).encode(
        x=alt.X("inv_n:Q", title="1 / N"), y=base_y, tooltip=["inv_n", "fid_n"])
    fitted = alt.Chart(line).mark_line(strokeDash=[4, 3], color="black").encode(x="inv_n:Q", y="fid_n:Q")
    icpt = pd.DataFrame({"inv_n": [0.0], "fid_n": [fit["a"]], "label": [f"{metric} = {fit['a']:.4g}"]})
    point = alt.Chart(icpt).mark_point(shape="diamond", size=120, color="firebrick", filled=True).encode(
        x="inv_n:Q", y="fid_n:Q", tooltip=["label"])
    label = point.mark_text(align="left", dx=8, dy=-8, color="firebrick").encode(text="label")
    return (dots + fitted + point + label).properties(height=280, title=f"{metric}: fit of FID_N = a + k/N")


def metric_bars(results: pd.DataFrame, title: str) -> alt.LayerChart:
    """Bars of metric values with their CIs as error rules (``metric, value, ci_low, ci_high``)."""
    data = results.assign(ci_low=results["ci_low"].fillna(results["value"]),
                          ci_high=results["ci_high"].fillna(results["value"]))
    bars = alt.Chart(data).mark_bar().encode(
        y=alt.Y("metric:N", title=None), x=alt.X("value:Q", title="value"),
        tooltip=["metric", "value", "ci_low", "ci_high", "feature_space"])
    err = alt.Chart(data).mark_rule(color="black").encode(y="metric:N", x="ci_low:Q", x2="ci_high:Q")
    return (bars + err).properties(title=title)


def diverging_bars(frame: pd.DataFrame, scale: tuple[int, int] = (1, 5)) -> alt.Chart:
    """Diverging stacked bars of ratings per source (from :func:`leaderboard.human.diverging_frame`)."""
    levels = list(range(scale[0], scale[1] + 1))
    colors = RATING_COLORS if len(levels) == 5 else None
    color = alt.Color("rating:O", title="rating", sort=levels,
                      scale=alt.Scale(domain=levels, range=colors) if colors else alt.Scale(scheme="redblue", domain=levels))
    return alt.Chart(frame).mark_bar().encode(
        y=alt.Y("source:N", title=None),
        x=alt.X("start:Q", title="share of ratings (left: below the midpoint)", axis=alt.Axis(format="%")),
        x2="end:Q", color=color,
        tooltip=["source", "rating", "count", alt.Tooltip("share:Q", format=".1%")],
    ).properties(height=40 * frame["source"].nunique() + 40)


def flag_rates_chart(flags: pd.DataFrame) -> alt.LayerChart:
    """Artifact-flag rate per source with Wilson CIs (``human_eval.stats.artifact_flags`` output)."""
    base = alt.Chart(flags).encode(y=alt.Y("source:N", title=None))
    points = base.mark_point(filled=True, size=60).encode(
        x=alt.X("rate:Q", title="flag rate", axis=alt.Axis(format="%")),
        tooltip=["source", "flag", "count", "n", alt.Tooltip("rate:Q", format=".1%")])
    rules = base.mark_rule().encode(x="ci_low:Q", x2="ci_high:Q")
    return (rules + points).properties(width=180, height=120).facet(facet=alt.Facet("flag:N", title=None), columns=3)


def participant_chart(pm: pd.DataFrame, x: str, log_x: bool = False) -> alt.LayerChart:
    """Each participant's mean rating per source with 95% CIs against ``x`` (paper Figure 5)."""
    data = pm.dropna(subset=[x, "mean"])
    if log_x:
        data = data[data[x] > 0]
    xs = alt.X(f"{x}:Q", title=x.replace("_", " "), scale=alt.Scale(type="log") if log_x else alt.Scale(zero=False))
    base = alt.Chart(data).encode(x=xs, color=alt.Color("source:N"))
    points = base.mark_circle(size=50).encode(y=alt.Y("mean:Q", title="mean rating", scale=alt.Scale(zero=False)),
                                              tooltip=["participant_id", "source", "mean", "n", x])
    rules = base.mark_rule(opacity=0.5).encode(y="ci_low:Q", y2="ci_high:Q")
    return (rules + points).properties(height=260, title=f"mean rating per participant vs {x.replace('_', ' ')}")


def ranking_chart(ranks: pd.DataFrame) -> alt.Chart:
    """Bump-style chart: rank of each generator (lines) under each metric and under the clinicians."""
    long = ranks.reset_index().melt(id_vars=ranks.index.name or "generator", var_name="by", value_name="rank")
    gen = ranks.index.name or "generator"
    order = [c for c in ranks.columns if c != "mean rating"] + ["mean rating"]
    return alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("by:N", sort=order, title=None, axis=alt.Axis(labelAngle=-30, labelLimit=260)),
        y=alt.Y("rank:Q", scale=alt.Scale(reverse=True), title="rank (1 = best)", axis=alt.Axis(tickMinStep=1)),
        color=alt.Color(f"{gen}:N"), tooltip=[gen, "by", "rank"],
    ).properties(height=260)


def per_image_chart(frame: pd.DataFrame, metric: str) -> alt.Chart:
    """Per-image metric value against the image's mean rating, coloured by source."""
    data = frame[frame["metric"] == metric]
    jitter = np.random.default_rng(0).uniform(-0.08, 0.08, len(data))  # fixed jitter: ratings are discrete
    data = data.assign(rating_jitter=data["mean_rating"] + jitter)
    return alt.Chart(data).mark_circle(size=40, opacity=0.7).encode(
        x=alt.X("value:Q", title=metric, scale=alt.Scale(zero=False)),
        y=alt.Y("rating_jitter:Q", title="mean rating of the image"),
        color="source:N", tooltip=["image_id", "source", "value", "mean_rating", "n_ratings"],
    ).properties(height=300)


def utility_chart(table: pd.DataFrame) -> alt.LayerChart:
    """Kendall's tau of each distance vs downstream Dice with its CI (rows of ``human_eval.trust.utility_table``),
    one colour per target task; substitute spaces marked with '*'."""
    data = table.dropna(subset=["kendall_tau"]).assign(
        label=lambda d: [f"{m}{' *' if s else ''}" for m, s in zip(d["metric"], d["substitute"])])
    y = alt.Y("label:N", title=None, sort=alt.EncodingSortField("kendall_tau", order="descending"))
    x = alt.X("kendall_tau:Q", title="Kendall τ vs mean Dice (+1: better distance = higher Dice); * substitute space",
              scale=alt.Scale(domain=[-1, 1]))
    dots = alt.Chart(data).mark_circle(size=70).encode(
        x=x, y=y, color=alt.Color("target:N", title="Dice of"),
        tooltip=["target", "metric", "n_generators", "kendall_tau", "ci_low", "ci_high", "p", "min_p"])
    err = alt.Chart(data).mark_rule().encode(x="ci_low:Q", x2="ci_high:Q", y=y, color="target:N")
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="black").encode(x="x:Q")
    return (err + dots + zero).properties(title="Which distance predicts downstream Dice")
