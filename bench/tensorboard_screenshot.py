"""The README's screenshot of TensorBoard's HParams view, taken in a real browser (Debian's chromium via Playwright).

Starts `tensorboard --logdir LOGDIR`, opens the HParams tab, keeps the columns a reader compares runs by (the
label, optimizer, prompt length, lr, seed and test accuracy) and saves a PNG. Needs chromium (`apt-get install
chromium`) and Playwright's Python package (a dev dependency); no browser is downloaded.

    python bench/tensorboard_screenshot.py runs/demo figures/tensorboard_hparams.png
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

KEEP = {"label", "optimizer.name", "seed", "model.prompt_length", "optimizer.lr", "test/overall", "test/many",
        "test/few", "Unknown", "Success", "Failure", "Running"}  # the last four filter rows by status: all kept
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("logdir", help="a comparison's runs directory (each run writes RUN/tb/hparams at its end)")
    ap.add_argument("out", help="PNG to write")
    ap.add_argument("--port", type=int, default=6077)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tensorboard = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen([str(tensorboard), "--logdir", a.logdir, "--port", str(a.port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(8)  # TensorBoard reads the event files before it serves them
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=a.chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1500, "height": 760})
            page.goto(f"http://localhost:{a.port}/?darkMode=false#hparams", wait_until="networkidle")
            time.sleep(8)
            boxes = page.get_by_role("checkbox")
            names = [boxes.nth(i).evaluate("e => (e.closest('paper-checkbox,mat-checkbox,label,div') || e).innerText").strip()
                     for i in range(boxes.count())]
            for name in filter(None, names):
                box = page.get_by_role("checkbox", name=name, exact=True).first
                if box.is_checked() != (name in KEEP):
                    box.click()
                    time.sleep(0.3)
            time.sleep(3)
            page.mouse.move(150, 300)
            page.mouse.wheel(0, -5000)  # the column list back to its top
            time.sleep(1)
            page.screenshot(path=a.out)
            browser.close()
    finally:
        server.terminate()
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
