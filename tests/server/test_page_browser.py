"""The page in a real browser: Playwright drives Debian's Chromium (headless) against a uvicorn on loopback.

Skips, saying why, only when Playwright or Chromium is missing (``bash scripts/setup_browser.sh`` installs it).
The screenshot of the page with results is written to ``$SOUNDSMITH_TEST_ARTIFACTS`` (default: the test's tmp dir).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from soundsmith.server import ServerSettings, create_app

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
    import uvicorn

    app = create_app(
        ServerSettings(models={"tiny": wavenet_dir}, out_dir=tmp_path / "out", max_duration_s=2.0)
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 20 s"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def page(live_server):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(20_000)
        messages: list[str] = []
        page.on("pageerror", lambda e: messages.append(str(e)))
        page.goto(live_server + "/")
        yield page
        browser.close()
        assert messages == [], f"JavaScript errors on the page: {messages}"


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


def test_generate_listen_compare_and_see_errors(page, tmp_path):
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

    # 3. errors from the server are shown to the user, naming the field
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
    assert page.locator("#results li.job").count() == 2  # nothing was generated

    # 4. "again" refills the form with a take's settings; history survives a reload and is searchable
    page.locator("#results li.job").nth(1).locator("button", has_text="again").click()
    assert page.input_value("#prompt") == "a bell rings twice" and page.input_value("#seed") == "7"
    page.reload()
    page.wait_for_function("document.querySelectorAll('#results li.job').length === 2")
    page.fill("#search", "tin roof")
    page.wait_for_function("document.querySelectorAll('#results li.job').length === 1")
    assert page.locator("#results li.job .prompt").text_content() == "rain on a tin roof"
