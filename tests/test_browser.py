"""The notebooks in a real JupyterLab in a real browser (Debian's chromium via Playwright), smoke mode.

For every notebook: run all cells in the front end, then check that no cell shows an error, every
figure appears as an image, every widget renders as a control (no "Error displaying widget" or
"Loading widget..."), and that moving one control per explorer changes the figure's pixels.
Screenshots go to runs/browser/ (git-ignored). Skipped, with the reason, when chromium or
Playwright is missing; .ci/run installs chromium so CI always runs it.
"""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = ROOT / "runs" / "browser"
# notebook -> does it hold an explorer whose control must change the picture
EXPLORERS = {"00_playground.ipynb", "03_head_tail.ipynb"}

pytestmark = [pytest.mark.notebook, pytest.mark.slow, pytest.mark.full]  # make test-full (make test: nbmake)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    settings = tmp_path_factory.mktemp("lab-settings")
    (settings / "@jupyterlab" / "docmanager-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings").write_text(
        json.dumps({"autosave": False}))  # the tracked notebooks stay clean
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "LTLAB_SMOKE": "1", "JUPYTERLAB_SETTINGS_DIR": str(settings), "MPLBACKEND": "Agg",
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path_factory.mktemp("lab-workspaces"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}", "--LabApp.expose_app_in_browser=True",
         "--allow-root"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("JupyterLab did not start")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            yield page, url, token
        finally:
            browser.close()
            proc.terminate()  # the server we started, by its PID
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _run_all(page, url, token, name):
    # a fresh workspace per notebook: only this notebook is open
    page.goto(f"{url}/lab/workspaces/{Path(name).stem}/tree/notebooks/{name}?reset&token={token}")
    page.wait_for_function("() => window.jupyterapp?.shell.currentWidget?.node.querySelector('.jp-Notebook')",
                           timeout=120_000)
    page.wait_for_function(  # the kernel is connected and idle (the status bar alone can say idle earlier)
        """() => { const k = window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel;
                   return k && k.connectionStatus === 'connected' && k.status === 'idle'; }""", timeout=120_000)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")  # not awaited
    # done when every code cell has a number in its prompt and none shows [*]
    page.wait_for_function(
        """() => {
            const nb = window.jupyterapp.shell.currentWidget.node;
            const prompts = [...nb.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent);
            return prompts.length > 0 && prompts.every(t => /\\[\\d+\\]/.test(t));
        }""", timeout=600_000, polling=1000)
    page.wait_for_timeout(1500)  # late widget renders


def _shutdown_kernels(url, token):
    """Free the cores for the next notebook (the server keeps kernels alive otherwise)."""
    with urllib.request.urlopen(f"{url}/api/kernels?token={token}", timeout=10) as r:
        kernels = json.load(r)
    for k in kernels:
        req = urllib.request.Request(f"{url}/api/kernels/{k['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(req, timeout=30)


def _figure(widget) -> bytes | None:
    """The explorer's figure as PNG bytes, or None while its output area is swapping the image."""
    from playwright.sync_api import Error

    try:
        return widget.locator("img").first.screenshot(timeout=10_000)
    except Error:  # "element is not attached to the DOM": a redraw replaced it
        return None


def _settled_figure(page, widget, timeout_s: float = 60) -> bytes:
    """The figure once two looks a second apart agree (the first draw may still be replacing it)."""
    last, deadline = None, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shot = _figure(widget)
        if shot is not None and shot == last:
            return shot
        last = shot
        page.wait_for_timeout(1000)
    raise AssertionError("the explorer's figure never settled")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_renders_in_jupyterlab(lab, name):
    page, url, token = lab
    try:
        _check(page, url, token, name)
    finally:
        _shutdown_kernels(url, token)


def _check(page, url, token, name):
    _run_all(page, url, token, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{Path(name).stem}.png"), full_page=True)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    texts = [errors.nth(i).inner_text() for i in range(errors.count())]
    assert not [t for t in texts if "Traceback" in t or "Error" in t.split("\n")[0]], texts
    body = page.inner_text(".jp-Notebook")
    assert "Error displaying widget" not in body and "Loading widget" not in body
    if name != "04_paper_figures.ipynb":  # 04 writes figures to files in smoke mode
        assert page.locator(".jp-OutputArea-output img").count() >= 1
    if name in EXPLORERS:
        widget = page.locator(".jupyter-widgets.widget-vbox").first
        assert widget.count() == 1, "the explorer did not render as a control"
        before = _settled_figure(page, widget)
        if widget.locator("select").count():
            select = widget.locator("select").first
            options = select.locator("option").all_inner_texts()
            select.select_option(label=options[-1] if options else None)
        else:  # the playground: walk the paths back to their start (a large change, no re-run needed)
            slider = widget.locator(".widget-slider", has_text="show step")
            handle = (slider if slider.count() else widget).locator(".noUi-handle, input[type=range]").first
            handle.focus()
            for key in ["Home"] + ["PageDown"] * 5 + ["ArrowLeft"] * 10:  # whichever keys the slider supports
                handle.press(key)
        deadline = time.monotonic() + 60  # the kernel re-draws at its own pace on a loaded machine
        after = before
        while after == before and time.monotonic() < deadline:
            page.wait_for_timeout(1000)
            after = _figure(widget) or before
        assert before != after, "moving the control did not change the figure"
        page.screenshot(path=str(SHOTS / f"{Path(name).stem}_after.png"), full_page=True)
