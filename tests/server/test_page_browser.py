"""The page in a real browser: Playwright drives Debian's Chromium (headless) against a uvicorn on loopback.

Skips, saying why, only when Playwright or Chromium is missing (``bash scripts/setup_browser.sh`` installs it).
The screenshot of the page with results is written to ``$SOUNDSMITH_TEST_ARTIFACTS`` (default: the test's tmp dir).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import httpx
import pytest

from soundsmith.server.loadtest import local_server

CHROMIUM = os.environ.get("SOUNDSMITH_CHROMIUM", "/usr/bin/chromium")
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(
        f"no Chromium at {CHROMIUM}; run `bash scripts/setup_browser.sh` (needs root + apt)",
        allow_module_level=True,
    )


@pytest.fixture
def live_server(tmp_path, wavenet_dir):
    """A real uvicorn serving the tiny WaveNet on 127.0.0.1 (a free port), stopped after the test."""
    settings = {"max_duration_s": 2.0, "preload": False}
    with local_server({"tiny": wavenet_dir}, tmp_path / "out", **settings) as url:
        yield url


@pytest.fixture
def browser():
    """Opens pages in headless Chromium; fails the test on any JavaScript error."""
    errors: list[str] = []
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True)

        def open_page(url: str):
            page = chromium.new_page(viewport={"width": 1100, "height": 900})
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            return page

        yield open_page
        chromium.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(browser, live_server):
    return browser(live_server + "/")


def artifacts_dir(tmp_path: Path) -> Path:
    target = Path(os.environ.get("SOUNDSMITH_TEST_ARTIFACTS", tmp_path))
    target.mkdir(parents=True, exist_ok=True)
    return target


def generate(page, prompt: str, seed: int | None = None) -> None:
    page.fill("#prompt", prompt)
    page.fill("#seed", "" if seed is None else str(seed))
    before = page.locator("#results li.job").count()
    page.click("#generate")
    page.wait_for_function(f"document.querySelectorAll('#results li.job').length > {before}")


def test_generate_listen_compare_rate_and_see_errors(page, live_server, tmp_path):
    # the page found the server and its model
    page.wait_for_function("document.querySelector('#model').options.length > 0")
    assert page.input_value("#model") == "tiny"
    assert "1 model" in page.text_content("#server-state")

    # 1. generate: a result with a playable audio source of the asked duration, and its spectrogram
    page.fill("#duration", "0.25")
    generate(page, "a bell rings twice", seed=7)
    take = page.locator("#results li.job").first
    assert "done" in take.get_attribute("class")
    assert take.locator(".prompt").text_content() == "a bell rings twice"
    assert "seed 7" in take.locator(".seed").text_content()
    audio = take.locator("audio")
    assert "/v1/audio/" in audio.get_attribute("src")
    audio.evaluate("a => a.load()")
    page.wait_for_function(
        "a => a.readyState >= 1 && isFinite(a.duration)", arg=audio.element_handle()
    )  # the browser decoded the WAV's header
    assert abs(audio.evaluate("a => a.duration") - 0.25) < 0.01
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=take.locator("img").element_handle())
    assert take.locator("a.download").get_attribute("download").endswith("seed7.wav")
    assert page.locator("#generate").is_enabled() and "done in" in page.text_content("#progress")

    # 2. another take, and the A/B comparison of the two
    generate(page, "rain on a tin roof", seed=8)
    page.locator("#results li.job").nth(1).locator("button.to-a").click()
    page.locator("#results li.job").nth(0).locator("button.to-b").click()
    page.wait_for_function("document.querySelectorAll('#compare-slots audio').length === 2")
    slots = page.locator("#compare-slots .prompt").all_text_contents()
    assert slots == ["a bell rings twice", "rain on a tin roof"]
    page.screenshot(path=str(artifacts_dir(tmp_path) / "serve_page.png"), full_page=True)

    # 3. "vary": the same settings with a new seed
    page.locator("#results li.job").nth(1).locator("button", has_text="vary").click()
    page.wait_for_function("document.querySelectorAll('#results li.job.done').length === 3")
    varied = page.locator("#results li.job").first
    assert varied.locator(".prompt").text_content() == "a bell rings twice"
    assert varied.locator(".seed").text_content() != "seed 7"

    # 4. listening test: a blind clip, OVL and REL ratings stored on the server. Opening the panel and pressing
    # "next" both ask for a clip. The server's answers are held here and let through one at a time, so a second
    # answer landing after the sliders moved (it once reset them to 50, one CI run in many) fails every time.
    held, holding = [], [True]
    page.route("**/v1/listening/next*", lambda route: held.append(route) if holding[0] else route.continue_())
    page.click("#listen summary")
    page.fill("#rater", "tester")
    # closed and opened again: the panel asks for a clip itself, now that it has a rater
    page.click("#listen summary")
    page.click("#listen summary")
    page.click("#listen-next")
    for _ in range(100):  # the page's request reaches the route handler while Playwright waits
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the page asked for no clip"
    held.pop(0).continue_()
    page.wait_for_selector("#listen-clip:not([hidden])")
    page.fill("#ovl", "80")
    page.fill("#rel", "35")
    holding[0] = False
    for route in held:  # any second request the page made answers now, after the sliders moved
        route.continue_()
    page.wait_for_timeout(300)
    assert page.input_value("#ovl") == "80" and page.input_value("#rel") == "35"
    assert page.text_content("#listen-prompt") in ("a bell rings twice", "rain on a tin roof")
    assert "/v1/audio/" in page.get_attribute("#listen-audio", "src")
    assert "3 clip(s) left" in page.text_content("#listen-state")
    assert page.text_content("#ovl-value") == "80"
    page.click("#rate")
    page.wait_for_function("document.querySelector('#listen-state').textContent.startsWith('2 clip')")
    page.screenshot(path=str(artifacts_dir(tmp_path) / "serve_listening.png"))
    rows = list(csv.DictReader(io.StringIO(httpx.get(live_server + "/v1/ratings.csv?raw=true").text)))
    assert [(r["rater"], r["ovl"], r["rel"]) for r in rows] == [("tester", "80", "35")]

    # 5. errors from the server are shown to the user, naming the field
    page.fill("#prompt", "   ")
    page.click("#generate")
    page.wait_for_selector("#error:not([hidden])")
    assert "prompt is empty" in page.text_content("#error")
    assert page.get_attribute("#prompt", "aria-invalid") == "true"
    page.fill("#prompt", "too long")
    page.fill("#duration", "999")
    page.click("#generate")
    page.wait_for_function("document.querySelector('#error').textContent.includes('duration')")
    assert "422" in page.text_content("#error") and page.get_attribute("#duration", "aria-invalid") == "true"
    assert page.locator("#results li.job").count() == 3  # nothing was generated

    # 6. "again" refills the form with a take's settings; history survives a reload and is searchable
    page.locator("#results li.job").nth(2).locator("button", has_text="again").click()
    assert page.input_value("#prompt") == "a bell rings twice" and page.input_value("#seed") == "7"
    page.reload()
    page.wait_for_function("document.querySelectorAll('#results li.job').length === 3")
    page.fill("#search", "tin roof")
    page.wait_for_function("document.querySelectorAll('#results li.job').length === 1")
    assert page.locator("#results li.job .prompt").text_content() == "rain on a tin roof"


def test_api_key_and_a_job_finishing_after_the_page_loaded(browser, tmp_path, gate):
    key = "browser-test-key"
    with local_server({"gate": gate}, tmp_path / "out", api_key=key, preload=False) as url:
        headers = {"Authorization": f"Bearer {key}"}
        job = httpx.post(
            url + "/v1/generate", json={"prompt": "held", "duration": 0.1}, headers=headers
        ).json()
        page = browser(url + "/")
        # without the key: the page says so and opens the key box
        page.wait_for_selector("#error:not([hidden])")
        assert "401" in page.text_content("#error") and page.get_attribute("#key-box", "open") is not None
        page.fill("#api-key", key)
        page.dispatch_event("#api-key", "change")
        page.wait_for_function("document.querySelector('#model').options.length === 1")
        assert page.is_hidden("#error") and page.input_value("#model") == "gate"
        # the job submitted elsewhere shows as unfinished, then turns into a playable take when it ends
        item = page.locator(f"#results li.job[data-job='{job['id']}']")
        assert item.locator(".meta").last.text_content() in ("queued…", "running…")
        gate.gate.set()
        page.wait_for_selector(f"#results li.job.done[data-job='{job['id']}'] audio[src^='blob:']")
        page.wait_for_function(
            "a => a.readyState >= 1 && Math.abs(a.duration - 0.1) < 0.01",
            arg=page.locator("#results li.job.done audio").element_handle(),
        )
