"""Headless Chromium driven over the DevTools protocol: open a page, wait until its text
shows what a person would look for, save a screenshot. For the Temporal UI's pages that
`--screenshot` alone leaves blank (the workflow detail page renders after its API calls)."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from navarch.temporal.devserver import free_port


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot_when(url: str, shows: list[str], shot: Path, profile: Path,
                    within: float = 60) -> str:
    """The page's text once it contains every string in `shows` (AssertionError with the
    text seen last otherwise); the screenshot then goes to `shot`."""
    import websocket  # websocket-client, which the kubernetes client brings

    port = free_port()
    browser = subprocess.Popen(
        [str(chromium()), "--headless=new", "--no-sandbox", "--disable-gpu",
         "--disable-dev-shm-usage", "--window-size=1400,1100", f"--remote-debugging-port={port}",
         "--remote-allow-origins=*", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + within
        tabs: list[dict[str, Any]] = []
        while not tabs:
            try:
                tabs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2))
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        page = next(tab for tab in tabs if tab["type"] == "page")
        ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=within,
                                         suppress_origin=True)
        ids = itertools.count(1)

        def call(method: str, **params: Any) -> dict[str, Any]:
            n = next(ids)
            ws.send(json.dumps({"id": n, "method": method, "params": params}))
            while True:
                message = json.loads(ws.recv())
                if message.get("id") == n:
                    return dict(message.get("result", {}))

        call("Page.navigate", url=url)
        text = ""
        while time.monotonic() < deadline:
            time.sleep(1)
            result = call("Runtime.evaluate",
                          expression="document.body ? document.body.innerText : ''")
            text = str(result.get("result", {}).get("value", ""))
            if all(s in text for s in shows):
                image = call("Page.captureScreenshot", format="png")["data"]
                shot.write_bytes(base64.b64decode(image))
                ws.close()
                return text
        raise AssertionError(f"{url} never showed {shows}; its text:\n{text[:3000]}")
    finally:
        browser.kill()
        browser.wait(10)
