"""Real browser: `harness human app` serves the page; Debian's chromium (Playwright) signs a rater in and
submits three ratings, which must then be in the database. Saves tests/artifacts/rating_app.png."""

from __future__ import annotations

from harness.store import Rating, Store
from human_eval.app import service as sv
from tests.browser import ARTIFACTS, browser_page, harness_server, needs_chromium, screenshot


@needs_chromium
def test_rater_signs_in_and_rates_three_images_in_chromium(tmp_path, sources):
    url = f"sqlite:///{tmp_path / 'browser.db'}"
    store = Store(url)
    sv.create_study(store, "browser", sources, pool_per_source=4, per_participant=2, seed=0)
    [(_, token)] = sv.add_participants(store, "browser", 1, language="en")
    rater = sv.sign_in(store, token)  # consent and questionnaire are covered by the AppTest flow
    sv.save_answers(store, rater, "consent", {"given": True})
    sv.save_answers(store, rater, "pre", {"age": 35, "sex": "female", "specialty": "cardiology"})

    choices = [("4 — likely", "Cropped image"), ("2 — unlikely", "Unnatural artifacts"),
               ("5 — very likely to resemble a real image", "Possible pathology")]
    with harness_server("human", "app", "--db", url, "--address", "127.0.0.1", env={"ECHOBENCH_ADMIN_PASSWORD": "x"}) as port, \
            browser_page(1100, 1400) as page:
        page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
        page.get_by_label("Invitation token").fill(token, timeout=60_000)
        page.get_by_role("button", name="Sign in").click()
        for i, (label, flag) in enumerate(choices, start=1):
            # the widgets of *this* item (keys carry the image's pk), not stale ones of the previous run
            pk = rater.image_pks[rater.plan[i - 1]]
            radio = page.locator(f".st-key-rating_{pk}")
            radio.wait_for(timeout=30_000)
            page.get_by_text(f"Image {i} of 8").wait_for(timeout=30_000)
            page.wait_for_function("() => [...document.querySelectorAll(\"[data-testid='stImage'] img\")]"
                                   ".some(im => im.complete && im.naturalWidth > 0)", timeout=30_000)
            radio.get_by_text(label, exact=True).click()
            flag_key = {"Cropped image": "cropped_image", "Unnatural artifacts": "unnatural_artifacts",
                        "Possible pathology": "possible_pathology"}[flag]
            page.locator(f".st-key-{flag_key}_{pk}").get_by_text(flag, exact=True).click()
            if i == len(choices):
                page.locator(f".st-key-comment_{pk} textarea").fill("speckle looks smeared")
                screenshot(page, "rating_app.png", full_page=True)
            page.get_by_role("button", name="Save and continue").click()
        page.get_by_text("Image 4 of 8").wait_for(timeout=30_000)
    with store.session() as s:
        rows = s.query(Rating).filter(Rating.participant_pk == rater.pk).order_by(Rating.position).all()
    assert [(r.position, r.rating) for r in rows] == [(1, 4), (2, 2), (3, 5)]
    assert [(r.cropped_image, r.unnatural_artifacts, r.possible_pathology) for r in rows] == [
        (True, False, False), (False, True, False), (False, False, True)]
    assert rows[2].comment == "speckle looks smeared" and all(r.revision == 1 for r in rows)
    assert (ARTIFACTS / "rating_app.png").stat().st_size > 10_000
