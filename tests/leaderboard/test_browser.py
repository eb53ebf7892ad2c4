"""Real browser: `harness leaderboard` serves the page; Debian's chromium (Playwright) renders the table."""

from __future__ import annotations

from tests.browser import browser_page, harness_server, needs_chromium, screenshot


@needs_chromium
def test_page_renders_in_chromium(seeded_db):
    with harness_server("leaderboard", "--db", seeded_db) as port, browser_page(1600, 1000) as page:
        page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
        grid = page.locator("[data-testid='stDataFrame']").first
        grid.wait_for(state="visible", timeout=60_000)
        page.wait_for_function(
            "() => document.body.innerText.includes('EchoBench leaderboard')", timeout=30_000)
        page.wait_for_timeout(1500)  # let the grid draw its canvas before the screenshot
        screenshot(page, "leaderboard.png")
        # The grid is a canvas; its accessible table mirror carries the cell text.
        text = grid.inner_text() + " " + " ".join(grid.locator("[role='gridcell'], [role='columnheader'], td, th").all_inner_texts())
    for gen in ("real", "labelmap", "images"):
        assert gen in text, text[:2000]
    assert "FD_radiomics ↓ [radiomics]" in text, text[:2000]
