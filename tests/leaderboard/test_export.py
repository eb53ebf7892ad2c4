"""`harness leaderboard --export DIR`: a static site that is self-contained (every local link resolves, no
external request), deterministic (two exports are byte-identical) and renders in headless chromium from file://."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from harness.errors import UsageError
from leaderboard import data
from leaderboard.export import export_site
from tests.browser import browser_page, needs_chromium, screenshot
from tests.leaderboard.conftest import copy_with_matching_study


@pytest.fixture(scope="module")
def site(seeded_db, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "site"
    export_site(data.connect(seeded_db), out)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_exports_are_byte_identical(site, seeded_db, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "leaderboard", "--db", seeded_db,
                           "--export", str(tmp_path / "again")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    first, second = _files(site), _files(tmp_path / "again")
    assert sorted(first) == sorted(second)
    assert [k for k in first if first[k] != second[k]] == []
    names = set(first)
    assert {"index.html", "gallery.html", "human.html", "style.css", "data/results.csv", "data/results.json",
            "data/leaderboard.csv"} <= names
    assert any(n.startswith("thumbs/") and n.endswith(".png") for n in names)
    assert any(n.startswith("plots/fid_inf-") and n.endswith(".svg") for n in names)  # FD vs 1/N


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if a.get(key):
                self.links.append(a[key])


def test_link_checker_finds_no_broken_local_link_and_nothing_external(site):
    checked = 0
    for page in sorted(site.glob("*.html")):
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for link in parser.links:
            url = urlparse(link)
            assert not url.scheme and not url.netloc, f"{page.name}: external reference {link}"
            target = (page.parent / unquote(url.path)) if url.path else page
            assert target.resolve().is_file(), f"{page.name}: broken link {link}"
            if url.fragment:
                ids = parser.ids if target == page else _ids(target)
                assert url.fragment in ids, f"{page.name}: no anchor #{url.fragment} in {target.name}"
            checked += 1
    assert checked >= 15
    css = (site / "style.css").read_text()
    assert "@import" not in css and not re.search(r"url\(", css)


def _ids(path: Path) -> set[str]:
    p = _Links()
    p.feed(path.read_text(encoding="utf-8"))
    return p.ids


def test_export_refuses_a_folder_that_is_not_an_export(seeded_db, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(UsageError, match="not an earlier EchoBench export"):
        export_site(data.connect(seeded_db), tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_agreement_plot_when_generators_are_rated(seeded_db, tmp_path):
    url = copy_with_matching_study(seeded_db, tmp_path / "rated.db")
    out = tmp_path / "site"
    files = [p.relative_to(out).as_posix() for p in export_site(data.connect(url), out)]
    assert "plots/agreement-FD_radiomics-radiomics.svg" in files
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "Metrics vs clinicians" in index and "src='plots/agreement-FD_radiomics-radiomics.svg'" in index
    svg = (out / "plots/agreement-FD_radiomics-radiomics.svg").read_text(encoding="utf-8")
    assert "Kendall τ = +1.00" in svg  # real < labelmap < images in FD, as rated
    human = (out / "human.html").read_text(encoding="utf-8")
    assert "zz-agreement" in human


@needs_chromium
def test_export_renders_in_chromium_from_file_url(site):
    requests: list[str] = []
    with browser_page(1280, 800) as page:
        page.on("request", lambda r: requests.append(r.url))
        page.goto((site / "index.html").as_uri())
        page.wait_for_load_state("load")
        screenshot(page, "leaderboard-export.png")
        rows = page.locator("table.board").first.locator("tbody tr").all_inner_texts()
        ranks = page.locator("table.board").first.locator("tbody td.rank").all_inner_texts()
        tips = page.locator("table.board").first.locator("th[title]").evaluate_all("ths => ths.map(t => t.title)")
        imgs = page.evaluate("() => Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
        width = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        page.goto((site / "gallery.html").as_uri())
        page.wait_for_load_state("load")
        gallery = page.evaluate("() => Array.from(document.images).map(i => i.naturalWidth)")
    assert ranks == ["noise floor", "1", "no-learning floor"]  # the same rows as the Streamlit page
    assert [r.split("\t")[1].split()[0] for r in rows] == ["real", "images", "labelmap"]
    assert any("Fréchet distance" in t and "Lower is better" in t and "N = 20" in t for t in tips)
    assert len(imgs) >= 3 + 3 and all(w > 0 for _, w in imgs), imgs  # thumbnails and FD∞ plots load
    assert len(gallery) >= 9 and all(w > 0 for w in gallery)
    assert width[0] <= width[1] <= 1280
    assert all(u.startswith("file://") for u in requests), [u for u in requests if not u.startswith("file://")]
