"""Real browser: `harness leaderboard` serves the page; Debian's chromium (Playwright) renders it at 1280×800."""

from __future__ import annotations

from tests.browser import browser_page, harness_server, needs_chromium, screenshot

FITS = """() => { const s = document.querySelector("[data-testid='stDataFrame'] .dvn-scroller");
  return {page: document.documentElement.scrollWidth, view: document.documentElement.clientWidth,
          grid: s ? s.scrollWidth : -1, gridView: s ? s.clientWidth : -1} }"""


@needs_chromium
def test_page_renders_in_chromium(seeded_db):
    with harness_server("leaderboard", "--db", seeded_db) as port, browser_page(1280, 800) as page:
        page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
        grid = page.locator("[data-testid='stDataFrame']").first
        grid.wait_for(state="visible", timeout=60_000)
        page.wait_for_function(
            "() => document.body.innerText.includes('EchoBench leaderboard')", timeout=30_000)
        page.wait_for_timeout(1500)  # let the grid draw its canvas before the screenshot
        screenshot(page, "leaderboard.png")
        # The grid is a canvas; its accessible table mirror carries the cell text.
        text = grid.inner_text() + " " + " ".join(grid.locator("[role='gridcell'], [role='columnheader'], td, th").all_inner_texts())
        # the first view fits 1280 px: no horizontal scroll on the page or inside the table
        fits = page.evaluate(FITS)
        assert fits["page"] <= fits["view"] <= 1280 and 0 < fits["grid"] <= fits["gridView"], fits
        # a column header's tooltip: hover along the header row until the FD column's help shows
        box = grid.bounding_box()
        tip = ""
        for x in range(200, int(box["width"]), 40):
            page.mouse.move(box["x"] + x, box["y"] + 18)
            page.wait_for_timeout(250)
            content = page.locator("[data-testid='stDataFrameTooltipContent']")
            if content.count() and "Fréchet" in (tip := content.first.inner_text()):
                break
        assert "Fréchet distance" in tip and "Lower is better" in tip and "radiomics" in tip, tip
        # gallery tab: image elements that loaded (non-zero natural size)
        page.get_by_role("tab", name="Gallery").click()
        page.wait_for_function("() => Array.from(document.querySelectorAll(\"[data-testid='stImage'] img\"))"
                               ".filter(i => i.complete && i.naturalWidth > 0).length >= 6", timeout=30_000)
        sizes = page.evaluate("() => Array.from(document.querySelectorAll(\"[data-testid='stImage'] img\"))"
                              ".map(i => [i.naturalWidth, i.naturalHeight])")
    for gen in ("real", "labelmap", "images"):
        assert gen in text, text[:2000]
    for label in ("noise floor", "no-learning floor", "FD_radiomics ↓"):
        assert label in text, text[:2000]
    assert "★" not in text
    assert sizes and all(w > 0 and h > 0 for w, h in sizes), sizes
