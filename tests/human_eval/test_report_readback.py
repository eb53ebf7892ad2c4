"""The human-evaluation report read back: its numbers and sentences against independent computations (issue 23)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats as sps

from human_eval.examples import make_example_study
from human_eval.report import build_report
from human_eval.schema import study_from_frames


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    r, p = make_example_study(0)
    path = build_report(study_from_frames(r, p), tmp_path_factory.mktemp("rep"), figures=False, n_perm=200, n_boot=300)
    return r, path.read_text()


def _sentence(text, start):
    return next(line for line in text.splitlines() if line.startswith(f"- **{start}"))


def test_mann_whitney_sentence_and_table_say_who_is_rated_higher(report):
    r, text = report
    line = _sentence(text, "Mann-Whitney")
    y = r.loc[r.source == "real", "rating"].to_numpy(float)
    for s in ("cut", "cyclegan", "sd"):
        x = r.loc[r.source == s, "rating"].to_numpy(float)
        u1 = sps.mannwhitneyu(x, y).statistic
        higher = s if u1 > x.size * y.size / 2 else "real"  # U₁ > n₁n₂/2 ⇔ x tends to be larger
        m = re.search(rf"{s}: U = ([\d,.]+), Z = (-?[\d.]+), .*?, r = ([\d.]+) \((\w+) rated higher\)", line)
        assert m, line
        assert float(m.group(1).replace(",", "")) == min(u1, x.size * y.size - u1)  # printed with thousands separators
        assert m.group(4) == higher
    assert "(sd rated higher)" in line and "(cut rated higher)" not in line  # SD mean 3.95 > real 3.11 > CUT 2.49
    table2 = text[text.index("## Table 2"):].split("\n## ")[0]
    rows = {ln.split("|")[1].strip(): ln.split("|")[-2].strip() for ln in table2.splitlines() if ln.startswith("|") and " vs real" in ln}
    assert rows == {"cut vs real": "real", "cyclegan vs real": "real", "sd vs real": "sd"}


def test_wilcoxon_sentence_has_the_holm_family_and_its_p_values(report):
    from statsmodels.stats.multitest import multipletests

    r, text = report
    line = _sentence(text, "Wilcoxon")
    assert "Holm-corrected over all 6 source pairs" in line  # 4 sources → C(4, 2) comparisons
    means = r.groupby(["participant_id", "source"])["rating"].mean().unstack()
    order = ["real", "cut", "cyclegan", "sd"]
    pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1:]]
    p = [sps.wilcoxon(np.round((means[a] - means[b]).to_numpy(), 9)).pvalue for a, b in pairs]
    holm = dict(zip(pairs, multipletests(p, method="holm")[1]))
    for b in ("cut", "cyclegan", "sd"):
        m = re.search(rf"real vs {b}: mean difference ([+-][\d.]+), Holm (p [<=] \d+\.\d+)", line)
        assert m, line
        assert float(m.group(1)) == pytest.approx((means["real"] - means[b]).mean(), abs=0.005)
        shown = m.group(2)
        # p-values are printed with 2 significant digits, "< 0.001" below that (harness.formatting, as in papers)
        assert shown == ("p < 0.001" if holm[("real", b)] < 0.001 else f"p = {holm[('real', b)]:.2g}")


def test_descriptive_and_bootstrap_sentences_match_the_ratings(report):
    r, text = report
    line = _sentence(text, "Which source")
    assert "sd (mean 3.95; real: 3.11)" in line
    line = _sentence(text, "Participant-clustered bootstrap")
    obs = r.groupby("source")["rating"].mean()
    for s in ("cut", "cyclegan", "sd"):
        m = re.search(rf"{s}: ([+-][\d.]+) \[([+-][\d.]+), ([+-][\d.]+)\]", line)
        assert m, line
        assert float(m.group(1)) == pytest.approx(obs[s] - obs["real"], abs=0.005)
        assert float(m.group(2)) < float(m.group(1)) < float(m.group(3))
