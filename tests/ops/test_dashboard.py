#!/usr/bin/env python3
"""The dashboard in a real browser: Debian's chromium, headless, driven by
chromedriver over the W3C WebDriver protocol (plain HTTP and JSON). It opens
the dashboard of a three-agent cluster, waits until the page lists three
live members, kills one agent and waits until the page shows it dead (and
its leave in the event feed), then saves screenshots, wide and narrow, and
checks the narrow page needs no sideways scrolling.

    test_dashboard.py --agent build/debug/examples/node-agent/aiocluster-node --out build/debug
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request
from typing import Any, Optional

from agents import PATIENCE, Cluster, end_process, free_port, parse_args, tool, wait_until

ARGS = parse_args()

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


class Browser:
    """One chromedriver and one WebDriver session of headless chromium."""

    def __init__(self, workdir: str) -> None:
        self.port = free_port()
        self.log_path = os.path.join(workdir, "chromedriver.log")
        with open(self.log_path, "wb") as log:
            self.driver = subprocess.Popen([tool("chromedriver"), f"--port={self.port}"],
                                           stdout=log, stderr=subprocess.STDOUT)
        wait_until("chromedriver to be ready", lambda: self.call("GET", "/status")["ready"])
        capabilities = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tool("chromium"),
                "args": CHROMIUM_FLAGS + [f"--user-data-dir={os.path.join(workdir, 'profile')}",
                                          "--window-size=1280,800"]}}}}
        self.session = self.call("POST", "/session", capabilities)["sessionId"]

    def call(self, method: str, path: str, body: Optional[dict] = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                         method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=PATIENCE * 2) as reply:
                return json.load(reply)["value"]
        except urllib.error.HTTPError as error:
            raise AssertionError(f"WebDriver {method} {path}: {error.read()!r}") from error

    def session_call(self, method: str, path: str, body: Optional[dict] = None) -> Any:
        return self.call(method, f"/session/{self.session}{path}", body)

    def open(self, url: str) -> None:
        self.session_call("POST", "/url", {"url": url})

    def run(self, script: str) -> Any:
        return self.session_call("POST", "/execute/sync", {"script": script, "args": []})

    def screenshot(self, path: str) -> None:
        png = base64.b64decode(self.session_call("GET", "/screenshot"))
        assert png.startswith(b"\x89PNG"), "not a PNG"
        with open(path, "wb") as out:
            out.write(png)

    def resize(self, width: int, height: int) -> None:
        self.session_call("POST", "/window/rect", {"width": width, "height": height})

    def close(self) -> None:
        try:
            self.call("DELETE", f"/session/{self.session}")
        finally:
            end_process(self.driver)


# What the page shows: each member row's name and state.
ROWS = "return [...document.querySelectorAll('#members tr')]" \
       ".map(r => [r.dataset.member, r.dataset.state]);"


class Dashboard(unittest.TestCase):
    def test_dashboard_follows_the_cluster(self) -> None:
        cluster = Cluster(ARGS.agent)
        workdir = tempfile.mkdtemp(prefix="aiocluster-dashboard-")
        browser = None
        try:
            cluster.start(["asio", "libevent", "asio"], "ops-dashboard")
            browser = Browser(workdir)
            first = cluster.agents[0]
            browser.open(f"http://127.0.0.1:{first.port}/")
            self.assertEqual(browser.run("return document.title;"), "aiocluster")

            all_live = [["agent1", "live"], ["agent2", "live"], ["agent3", "live"]]
            wait_until("the page to list three live members",
                       lambda: sorted(browser.run(ROWS)) == all_live)
            # The stream is open and phi has a line for the live peers.
            wait_until("the event stream", lambda: browser.run(
                "return document.getElementById('stream').textContent;") == "streaming")
            wait_until("phi sparklines", lambda: browser.run(
                "return document.querySelectorAll('svg.spark polyline').length;") >= 2)

            cluster.agents[2].kill()
            wait_until("the page to show agent3 dead", lambda: sorted(browser.run(ROWS)) ==
                       [["agent1", "live"], ["agent2", "live"], ["agent3", "dead"]])
            wait_until("the leave in the event feed", lambda: browser.run(
                "return [...document.querySelectorAll('#feed li[data-kind=leave]')]"
                ".some(li => li.textContent.includes('agent3 left'));"))
            self.assertEqual(browser.run("return document.getElementById('live-count')"
                                         ".textContent;"), "live 2")

            os.makedirs(ARGS.out, exist_ok=True)
            wide = os.path.join(ARGS.out, "dashboard.png")
            browser.screenshot(wide)
            # A phone-sized window: one column, nothing wider than the screen.
            browser.resize(390, 844)
            wait_until("the narrow layout", lambda: browser.run(
                "return getComputedStyle(document.querySelector('main'))"
                ".gridTemplateColumns.split(' ').length;") == 1)
            self.assertTrue(browser.run(
                "return document.documentElement.scrollWidth <= window.innerWidth;"))
            browser.screenshot(os.path.join(ARGS.out, "dashboard-narrow.png"))
            print(f"screenshots: {wide}, {os.path.join(ARGS.out, 'dashboard-narrow.png')}")
        finally:
            if browser is not None:
                browser.close()
            statuses = cluster.stop()
            shutil.rmtree(workdir, ignore_errors=True)
        # agent3 was killed (status -9); the others exit cleanly.
        self.assertEqual((statuses["agent1"], statuses["agent2"]), (0, 0))


if __name__ == "__main__":
    unittest.main(verbosity=2)
