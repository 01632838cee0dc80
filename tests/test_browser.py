"""The guided notebook in a real JupyterLab, driven by headless Chromium (Debian's, via Playwright).

Starts JupyterLab on a free localhost port with a token, opens ``codec_guide.ipynb`` with tiny
parameters injected, runs all cells and checks in the page that the live plotly figure renders,
that its PSNR trace grows while training runs, that guidance events appear, that the final
table is shown, and that the frame viewer renders and moves to another frame when its slider
moves. Screenshots of the running and the finished notebook and of the viewer go to ``$NVPKIT_SCREENSHOTS``
(default: the test's temporary folder). Run it alone with ``pytest -m browser``.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import papermill
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "codec_guide.ipynb"
TINY = {"num_frames": 4, "downscale": 8, "steps": 1500, "period": 500, "batch": 1024, "log_every": 25,
        "device": "cpu", "sweep_crfs": "20,35,50", "anchor_crfs": "30", "preset": "fast",
        "out_dir": "run", "cache_dir": "cache"}

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")]

# The titles of the plotly figures in the page (the frame viewer's says which frame it shows).
READ_TITLES = """() => [...document.querySelectorAll('.js-plotly-plot')].map(
  p => (p.layout && p.layout.title && (p.layout.title.text || p.layout.title)) || '')"""

# What the live figure shows: per arm, traces (loss, PSNR, guidance events) in that order.
READ_FIGURE = """() => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  return plots.map(p => (p.data || []).map(t => ({name: t.name, n: (t.x || []).filter(v => v !== null).length})));
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "guide.ipynb"), parameters=TINY, prepare_only=True)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(tmp_path / ".rt")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start within 60 s")
    yield f"{base}/lab/tree/guide.ipynb?token={token}"
    server.terminate()
    server.wait(timeout=30)


def _run_and_watch(page, url: str, shots: Path) -> str:
    page.goto(url)
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    # a fresh environment can take a while to start its first kernel: wait for it, and run all
    # cells again if the first request went out before the kernel could take it
    page.wait_for_selector(".jp-StatusBar-TextItem:has-text('Idle')", timeout=120_000)
    for attempt in range(3):
        page.get_by_role("menuitem", name="Run", exact=True).click(timeout=10_000)
        page.get_by_text("Run All Cells", exact=True).click(timeout=10_000)
        try:
            page.wait_for_selector(".jp-InputPrompt:has-text('[*]'), .jp-InputPrompt:has-text('[1]')",
                                   timeout=30_000)
            break
        except playwright.Error:
            if attempt == 2:
                raise

    # the live figure renders, then its PSNR trace grows while training runs
    page.wait_for_function(f"({READ_FIGURE})().some(p => p.length >= 6 && p[1].n > 0)", timeout=180_000)
    page.wait_for_function(f"({READ_FIGURE})()[0][4].n > 0", timeout=180_000)  # the guided arm is training
    growing = page.evaluate(READ_FIGURE)[0][4]["n"]
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "running.png"))
    page.wait_for_function(f"({READ_FIGURE})()[0][4].n > {growing}", timeout=120_000)
    # guidance events: segments on the guided arm's PSNR panel
    page.wait_for_function(f"({READ_FIGURE})()[0][5].n >= 2", timeout=180_000)

    # the final table
    table = page.wait_for_selector("table:has-text('ΔPSNR')", timeout=300_000)
    table.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "finished.png"))
    text = table.inner_text()

    # the frame viewer renders at frame 1; its slider moves it to frame 2
    page.wait_for_function(f"({READ_TITLES})().some(t => t.startsWith('frame 1 of'))", timeout=300_000)
    handle = page.locator(".widget-slider .noUi-handle").last
    handle.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "viewer.png"))
    handle.focus()
    handle.press("ArrowRight")
    page.wait_for_function(f"({READ_TITLES})().some(t => t.startsWith('frame 2 of'))", timeout=120_000)
    page.screenshot(path=str(shots / "viewer_moved.png"))
    return text


def test_live_figure_in_jupyterlab(lab, tmp_path):
    shots = Path(os.environ.get("NVPKIT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            text = _run_and_watch(page, lab, shots)
        except Exception:
            page.screenshot(path=str(shots / "failure.png"))
            raise
        finally:
            browser.close()
    assert "no guidance" in text and "hevc guidance" in text
    for name in ("running.png", "finished.png", "viewer.png", "viewer_moved.png"):
        assert (shots / name).stat().st_size > 10_000, name
