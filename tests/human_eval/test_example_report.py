"""The synthetic example study reproduces Table 3 exactly; the report builds from it."""

import json

import numpy as np
import pytest

from human_eval.examples import PAPER_COUNTS, make_example_study
from human_eval.examples.make_study import main as make_study_main
from human_eval.report import build_report, report_tables
from human_eval.schema import read_study

TABLE3 = {"real": (3.11, 3, 1.60), "cut": (2.49, 2, 1.46), "cyclegan": (2.72, 3, 1.59), "sd": (3.95, 4, 1.24)}


@pytest.mark.parametrize("seed", [0, 7])
def test_example_reproduces_table3(seed):
    r, p = make_example_study(seed)
    assert len(r) == 680 and len(p) == 17 and r["participant_id"].str.startswith("SYN-").all()
    assert (r.groupby(["participant_id", "source"]).size() == 10).all()
    assert not r.duplicated(["participant_id", "image_id"]).any()
    assert (r.groupby("image_id").size() >= 2).any()  # overlap for agreement
    for s, (m, med, sd) in TABLE3.items():
        x = r.loc[r.source == s, "rating"]
        assert (round(x.mean(), 2), x.median(), round(x.std(ddof=1), 2)) == (m, med, sd)
        assert tuple(np.bincount(x, minlength=6)[1:]) == PAPER_COUNTS[s]
    assert (p["specialty"] == "cardiologist").sum() == 8 and (p["sex"] == "F").sum() == 7
    assert p["age"].between(25, 55).all()
    r2, _ = make_example_study(seed)
    assert r.equals(r2)


def test_script_roundtrip_and_report(tmp_path):
    assert make_study_main(["--out", str(tmp_path / "s")]) == 0
    assert "SYNTHETIC" in (tmp_path / "s" / "README.txt").read_text()
    t = read_study(tmp_path / "s" / "ratings.csv", tmp_path / "s" / "participants.csv")
    assert t.warnings == []
    res = report_tables(t, n_perm=500, n_boot=200)
    t3 = res["table3"].set_index("source")
    assert round(t3.loc["sd", "mean"], 2) == 3.95
    json.dumps({k: v.to_dict(orient="records") for k, v in res.items()}, default=str)  # --json serialisable
    md = build_report(t, tmp_path / "rep", figures=False, n_perm=500, n_boot=200)
    text = md.read_text()
    for needle in ("Table 1", "Table 2", "Table 3", "Friedman", "TOST", "Krippendorff".lower()):
        assert needle.lower() in text.lower()


@pytest.mark.slow
def test_report_with_figures_html(tmp_path):
    t = read_study(*[p for p in _write(tmp_path)])
    path = build_report(t, tmp_path / "rep", fmt="html", figures=True, n_perm=200, n_boot=100)
    assert path.name == "report.html"
    for f in ("fig5_experience.png", "fig5_weekly_readings.png", "rating_distribution.png", "artifact_flags.png"):
        assert (tmp_path / "rep" / f).stat().st_size > 1000


def _write(tmp_path):
    r, p = make_example_study(1)
    r.to_csv(tmp_path / "ratings.csv", index=False)
    p.to_csv(tmp_path / "participants.csv", index=False)
    return tmp_path / "ratings.csv", tmp_path / "participants.csv"


def test_example_reproduces_table1_including_anderson_darling():
    """Table 1 of the paper: KS, Shapiro-Wilk and the small-sample adjusted Anderson-Darling A*² (to 2 decimals)."""
    r, p = make_example_study(0)
    from human_eval.stats import normality

    n = normality(r).set_index(["source", "test"])
    paper = {"cut": (0.23, 0.83, 10.08), "cyclegan": (0.23, 0.82, 10.67), "sd": (0.27, 0.79, 13.35)}
    for s, (ks, sw, ad) in paper.items():
        assert round(n.loc[(s, "kolmogorov_smirnov"), "statistic"], 2) == ks
        assert round(n.loc[(s, "shapiro_wilk"), "statistic"], 2) == sw
        a2 = n.loc[(s, "anderson_darling"), "statistic"]
        assert round(n.loc[(s, "anderson_darling"), "statistic_adj"], 2) == ad
        assert n.loc[(s, "anderson_darling"), "statistic_adj"] == pytest.approx(a2 * (1 + 0.75 / 170 + 2.25 / 170**2))


def test_normality_with_too_few_ratings_is_a_row_not_a_crash():
    import pandas as pd

    from human_eval.stats import normality

    out = normality(pd.DataFrame({"source": "a", "rating": [1, 2, 4]}))
    assert len(out) == 4 and out["statistic"].isna().all() and out["note"].str.contains("n=3|3", regex=True).all()


def test_html_report_reads_like_a_paper(tmp_path):
    """Integers as integers with thousands separators, p-values as '< 0.001' or 2 significant digits, no
    scientific notation, a stylesheet and a table of contents whose links all land on a section."""
    import re

    from harness.formatting import stat

    t = read_study(*_write(tmp_path))
    path = build_report(t, tmp_path / "rep", fmt="html", figures=False, n_perm=200, n_boot=100)
    text = path.read_text()
    assert "<style>" in text and "<nav class='toc'>" in text
    links = re.findall(r"<a href='#([^']+)'>", text)
    assert len(links) >= 12 and all(f"id='{a}'" in text for a in links)
    assert not re.search(r"\d(\.\d+)?e[+-]\d", text)  # no 1.134e+04
    assert "&lt; 0.001" in text
    u = report_tables(t, n_perm=200, n_boot=100)["mann_whitney"]["U"].iloc[0]
    assert f"<td>{stat(u)}</td>" in text and ("," in stat(u)) == (u >= 1000)
    p_cells = re.findall(r"<td>(0\.\d+)</td>", text)
    assert p_cells  # and every 0.xxx cell has at most 3 significant digits
    assert all(len(c.lstrip("0.").rstrip()) <= 3 for c in p_cells)
