#!/usr/bin/env python3
"""`make screenshots`: the README's pictures, taken from the running demo so they stay true.

Starts `make run`'s demo (scripts/run.py) on free ports with a throw-away data directory,
signs in as the demo admin in headless Chromium, walks the main screens the way a new team
member would (overview, a connection, conversations, a transcript, search, the erasure
preview, a dry-run request, job and receipt, findings, jobs, policies) and saves each at
1280 and 390 px wide into docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("LETHE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]
WIDTHS = {1280: 800, 390: 844}


def free_port(span: int = 1, after: int = 20000) -> int:
    """A port with `span` free ports from it (the fakes listen on consecutive ports)."""
    for first in range(after, 40000, 16):
        try:
            for port in range(first, first + span):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise SystemExit("no free ports on 127.0.0.1")


def wait_for(url: str, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the demo exited early; see its output above")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit(f"the demo did not answer at {url}")


def shoot(page, base: str, name: str, path: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Save the current page (or `path`, visited) at each width."""
    if path is not None:
        page.goto(base + path)
    for width, height in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(150)  # let the layout settle after the resize
        page.screenshot(path=str(OUT / f"{name}-{width}.png"))
        print(f"  docs/screenshots/{name}-{width}.png")
    page.set_viewport_size({"width": 1280, "height": 800})


def walk(page, base: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(base + "/accounts/login/")
    page.fill("#id_username", "demo")
    page.fill("#id_password", "lethe-demo")
    page.click("button[type=submit]")

    # The demo syncs its connections on first start; wait for every sync to end so the
    # pictures show a mirror, not a progress bar.
    deadline = time.monotonic() + 180
    while page.goto(base + "/conversations/") and page.locator("input[data-row]").count() == 0:
        if time.monotonic() > deadline:
            raise SystemExit("the demo's connections did not sync within three minutes")
        page.wait_for_timeout(1000)
    while page.goto(base + "/") and page.locator("[data-sync-running]").count():
        page.wait_for_timeout(1000)
    shoot(page, base, "overview")

    page.goto(base + "/connections/")
    page.locator("main table a[href^='/connections/']").first.click()
    shoot(page, base, "connection")

    shoot(page, base, "conversations", "/conversations/")
    page.locator("main table a[href^='/conversations/']").first.click()
    shoot(page, base, "transcript")
    words = re.findall(r"[A-Za-z]{5,}", page.inner_text("main"))
    shoot(page, base, "search", f"/search/?q={words[-1] if words else 'hello'}")

    page.goto(base + "/conversations/")
    boxes = page.locator("input[data-row]")
    boxes.nth(0).click()
    boxes.nth(2).click(modifiers=["Shift"])
    page.click("button[data-erase]")
    page.wait_for_selector("text=Review what will be erased")
    shoot(page, base, "preview")

    # A selection over several connections becomes a request of one job per connection.
    page.click("button[value=dry_run]")
    page.wait_for_url(re.compile(r"/(jobs|requests)/"))
    if "/requests/" in page.url:
        page.wait_for_selector("#request-status:not([hx-get])", timeout=120_000)
        shoot(page, base, "request")
        page.locator("#request-status a[href^='/jobs/']").first.click()
    page.wait_for_selector("#job-status[data-job-status=done]", timeout=120_000)
    shoot(page, base, "job")
    page.locator("a[href$='/receipt/']").first.click()
    shoot(page, base, "receipt")

    shoot(page, base, "findings", "/findings/")
    shoot(page, base, "jobs", "/jobs/")
    shoot(page, base, "policy", "/policies/add/")


def main() -> int:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    fake_port = free_port(8)
    port = free_port(1, after=fake_port + 16)
    with tempfile.TemporaryDirectory(prefix="lethe-shots-") as data:
        env = {**os.environ, "PORT": str(port), "LETHE_FAKE_PORT": str(fake_port),
               "LETHE_DATA_DIR": data}
        env.pop("DATABASE_URL", None)  # the demo's own SQLite, as `make run` has it
        demo = subprocess.Popen([sys.executable, "scripts/run.py"], cwd=ROOT, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(base + "/healthz", demo)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=FLAGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.set_default_timeout(30_000)
                walk(page, base)
                browser.close()
        finally:
            demo.send_signal(signal.SIGTERM)
            demo.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
