"""Issue 18 audit: the leaderboard shows relative FD (``FD_<space>_rel``) as its own column, with its CI and meaning,
and never as the FD headline."""

from __future__ import annotations

from leaderboard import table as tbl
from tests.leaderboard.test_data import _results


def test_relative_fd_is_a_column_with_ci_and_meaning_not_the_headline():
    res = _results([
        dict(generator="cut", metric="FD_radiomics", feature_space="radiomics", value=4.0, ci_low=3.5, ci_high=4.5),
        dict(generator="cut", metric="FD_radiomics_rel", feature_space="radiomics", value=8.0, ci_low=6.0, ci_high=10.0),
        dict(generator="cyclegan", metric="FD_radiomics", feature_space="radiomics", value=2.0),
        dict(generator="cyclegan", metric="FD_radiomics_rel", feature_space="radiomics", value=3.0, ci_low=2.0, ci_high=4.0),
    ])
    table = tbl.main_table(res)
    rel = "FD_radiomics_rel ↓ [radiomics]"
    assert rel in [c.header for c in table.columns]
    assert [c.metric for c in table.headline] == ["FD_radiomics"]  # the ratio is never the FD headline
    assert table.value.loc[("cut", "—"), rel] == 8.0 and table.value.loc[("cyclegan", "—"), rel] == 3.0
    shown = table.display()
    assert shown.loc[shown["generator"] == "cut", rel].item() == "8.00 ± 2.0"
    assert tbl.meaning("FD_radiomics_rel").startswith("relative FD") and tbl.meaning("FID_rel").startswith("relative FD")
    assert tbl.meaning("FD_random-clip_rel").startswith("relative FD")
