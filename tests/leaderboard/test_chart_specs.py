"""Leaderboard chart specs checked for their data and encodings, not only for being Vega-Lite (issue 23)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from human_eval import stats
from leaderboard import charts, data, human


def _layers(spec):
    """(encoding, rows, mark) of every leaf view of a Vega-Lite spec, data resolved from ``datasets``."""
    out = []

    def walk(node, inherited_data=None, inherited_enc=None):
        d = node.get("data", inherited_data)
        enc = {**(inherited_enc or {}), **node.get("encoding", {})}
        if "layer" in node:
            for child in node["layer"]:
                walk(child, d, enc)
        elif "spec" in node:
            walk(node["spec"], d, enc)
        else:
            rows = spec.get("datasets", {}).get(d["name"]) if d and "name" in d else (d or {}).get("values")
            mark = node.get("mark")
            out.append((enc, rows, mark["type"] if isinstance(mark, dict) else mark))

    walk(spec)
    return out


def _field(enc, channel):
    e = enc.get(channel)
    return None if e is None else (e["field"], e.get("type"))


def test_fid_inf_chart_plots_the_points_the_line_and_the_intercept():
    fit = data.fid_inf_fit({"points": [[0.1, 5.0], [0.05, 4.5], [0.02, 4.2]], "a": 4.0, "k": 10.0})
    layers = _layers(charts.fid_inf_chart(fit, "FID_inf").to_dict())
    dots = next(r for e, r, m in layers if m == "circle")
    assert [(p["inv_n"], p["fid_n"]) for p in dots] == [(0.1, 5.0), (0.05, 4.5), (0.02, 4.2)]
    line_enc, line, _ = next(x for x in layers if x[2] == "line")
    assert _field(line_enc, "x") == ("inv_n", "quantitative") and _field(line_enc, "y") == ("fid_n", "quantitative")
    xmax = 0.1 * 1.05
    assert [v for p in line for v in (p["inv_n"], p["fid_n"])] == pytest.approx([0.0, 4.0, xmax, 4.0 + 10.0 * xmax])
    icpt = next(r for e, r, m in layers if m == "point")
    assert icpt[0]["inv_n"] == 0.0 and icpt[0]["fid_n"] == 4.0 and icpt[0]["label"] == "FID_inf = 4"
    for enc, _, _ in layers:
        assert _field(enc, "x")[0] == "inv_n" and _field(enc, "y")[0] == "fid_n"


def test_metric_bars_draw_values_and_their_intervals():
    res = pd.DataFrame({"metric": ["recall", "precision"], "value": [0.5, 0.7], "ci_low": [0.4, np.nan],
                        "ci_high": [0.6, np.nan], "feature_space": ["radiomics", "radiomics"]})
    layers = _layers(charts.metric_bars(res, "diversity").to_dict())
    bar_enc, bar_rows, _ = next(x for x in layers if x[2] == "bar")
    assert _field(bar_enc, "x") == ("value", "quantitative") and _field(bar_enc, "y") == ("metric", "nominal")
    assert [(r["metric"], r["value"]) for r in bar_rows] == [("recall", 0.5), ("precision", 0.7)]
    rule_enc, rule_rows, _ = next(x for x in layers if x[2] == "rule")
    assert _field(rule_enc, "x")[0] == "ci_low" and _field(rule_enc, "x2")[0] == "ci_high"
    # a missing CI collapses to the value (a point, not a bar to 0)
    assert [(r["ci_low"], r["ci_high"]) for r in rule_rows] == [(0.4, 0.6), (0.7, 0.7)]


def test_flag_rates_and_diverging_bars_carry_the_statistics():
    rng = np.random.default_rng(0)
    ratings = pd.DataFrame({"participant_id": [f"P{i % 6}" for i in range(120)], "image_id": [f"i{i}" for i in range(120)],
                            "source": np.repeat(["real", "a", "b"], 40), "rating": rng.integers(1, 6, 120),
                            "cropped_image": rng.random(120) < 0.3})
    flags = stats.artifact_flags(ratings, flags=("cropped_image",))
    layers = _layers(charts.flag_rates_chart(flags).to_dict())
    pt_enc, rows, _ = next(x for x in layers if x[2] == "point")
    assert _field(pt_enc, "x") == ("rate", "quantitative") and _field(pt_enc, "y") == ("source", "nominal")
    got = {r["source"]: (r["rate"], r["ci_low"], r["ci_high"]) for r in rows}
    from statsmodels.stats.proportion import proportion_confint

    for s, g in ratings.groupby("source"):
        k = int(g["cropped_image"].sum())
        assert list(got[s]) == pytest.approx([k / 40, *proportion_confint(k, 40, method="wilson")])
    rule_enc = next(e for e, _, m in layers if m == "rule")
    assert _field(rule_enc, "x")[0] == "ci_low" and _field(rule_enc, "x2")[0] == "ci_high"
    frame = human.diverging_frame(ratings)
    (enc, rows, mark), = _layers(charts.diverging_bars(frame).to_dict())
    assert mark == "bar" and _field(enc, "x")[0] == "start" and _field(enc, "x2")[0] == "end"
    assert _field(enc, "color") == ("rating", "ordinal")
    for s, g in ratings.groupby("source"):
        share = {r["rating"]: r["share"] for r in rows if r["source"] == s}
        counts = g["rating"].value_counts(normalize=True)
        assert share == pytest.approx({int(k): v for k, v in counts.items()})
        segs = sorted((r["start"], r["end"]) for r in rows if r["source"] == s)
        assert all(np.isclose(a[1], b[0]) for a, b in zip(segs, segs[1:]))  # contiguous stacked segments
