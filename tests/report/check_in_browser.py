#!/usr/bin/python3
"""Loads an HTML report in headless Chromium over the Chrome DevTools Protocol and checks
that it renders: no console errors, no exceptions and no failed loads; no script and no
resource outside the file (images are data: URIs); every <img> decoded (non-zero natural
width and height) and every inline <svg> laid out (non-zero bounding box); a full-page
screenshot (Page.captureScreenshot, captureBeyondViewport) that is a PNG of the page's size.

Usage: check_in_browser.py REPORT.html SCREENSHOT.png [--min-height PX]
Exit 0 when every check holds, 1 naming each failure, 2 when Chromium cannot be run.
Chromium runs with --headless=new --no-sandbox --disable-gpu and a temporary profile, and
every wait is bounded: the whole check gives up after 90 s.
"""
import argparse
import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # Debian's python3-websocket (websocket-client)

DEADLINE_S = 90


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Cdp:
    """A CDP session on one page target: commands by id, events collected as they come."""

    def __init__(self, ws_url, deadline):
        self.deadline = deadline
        self.ws = websocket.create_connection(ws_url, timeout=10)
        self.next_id = 0
        self.events = []

    def _recv(self):
        left = self.deadline - time.time()
        if left <= 0:
            raise TimeoutError("the browser check ran past its %d s limit" % DEADLINE_S)
        self.ws.settimeout(min(left, 30))
        return json.loads(self.ws.recv())

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = self._recv()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, method):
        for e in self.events:
            if e["method"] == method:
                return e
        while True:
            msg = self._recv()
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return msg


def png_size(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


PAGE_FACTS = r"""
(() => {
  const imgs = [...document.images].map((img, i) => ({
    i, w: img.naturalWidth, h: img.naturalHeight, complete: img.complete,
    data: img.getAttribute('src').startsWith('data:'),
    alt: (img.getAttribute('alt') || '').slice(0, 80)}));
  const svgs = [...document.querySelectorAll('svg')].filter(s => !s.parentElement.closest('svg')).map((s, i) => {
    const r = s.getBoundingClientRect();
    return {i, w: r.width, h: r.height};
  });
  const outside = [...document.querySelectorAll('[src],[href],link')]
    .map(e => e.getAttribute('src') || e.getAttribute('href') || '')
    .filter(u => !(u.startsWith('data:') || u.startsWith('#')));
  return JSON.stringify({imgs, svgs, outside, scripts: document.scripts.length,
    width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight,
    sections: document.querySelectorAll('section').length});
})()
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("screenshot")
    ap.add_argument("--min-height", type=int, default=400)
    args = ap.parse_args()
    deadline = time.time() + DEADLINE_S
    chromium = chromium_binary()
    if not chromium:
        print("check_in_browser: no chromium on PATH", file=sys.stderr)
        return 2
    profile = tempfile.mkdtemp(prefix="ewe_report_chromium_")
    proc = subprocess.Popen(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--remote-debugging-port=0",
         "--remote-debugging-address=127.0.0.1", "--user-data-dir=" + profile, "--window-size=1280,1000",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    failures = []
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        while not os.path.exists(port_file) or os.path.getsize(port_file) == 0:
            if proc.poll() is not None:
                print("check_in_browser: chromium exited with %d before DevTools was up: %s"
                      % (proc.returncode, proc.stderr.read().decode(errors="replace")[-2000:]), file=sys.stderr)
                return 2
            if time.time() > deadline - 60:
                print("check_in_browser: chromium's DevTools port did not appear within 30 s", file=sys.stderr)
                return 2
            time.sleep(0.1)
        time.sleep(0.2)
        port = int(open(port_file).read().split()[0])
        with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=10) as r:
            targets = json.load(r)
        page = next(t for t in targets if t.get("type") == "page")
        cdp = Cdp(page["webSocketDebuggerUrl"], deadline)
        for domain in ("Page", "Runtime", "Log"):
            cdp.call(domain + ".enable")
        cdp.call("Page.navigate", url="file://" + os.path.abspath(args.report))
        cdp.wait_for("Page.loadEventFired")
        facts = json.loads(cdp.call("Runtime.evaluate", expression=PAGE_FACTS, returnByValue=True)["result"]["value"])
        shot = base64.b64decode(cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"])
        open(args.screenshot, "wb").write(shot)
        # Console and log entries that arrived meanwhile.
        cdp.call("Runtime.evaluate", expression="1")
        for e in cdp.events:
            m, p = e["method"], e.get("params", {})
            if m == "Runtime.exceptionThrown":
                details = p.get("exceptionDetails", {})
                failures.append("exception: %s %s" % (details.get("text"), details.get("exception", {}).get("description", "")))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                failures.append("console.%s: %s" % (p["type"], [a.get("value") for a in p.get("args", [])]))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                failures.append("log error: %s %s" % (p["entry"].get("text"), p["entry"].get("url", "")[:120]))
        for img in facts["imgs"]:
            if not img["data"]:
                failures.append("img %d (%s) is not a data: URI" % (img["i"], img["alt"]))
            if not (img["complete"] and img["w"] > 0 and img["h"] > 0):
                failures.append("img %d (%s) did not decode: natural size %dx%d" % (img["i"], img["alt"], img["w"], img["h"]))
        for svg in facts["svgs"]:
            if not (svg["w"] > 0 and svg["h"] > 0):
                failures.append("inline svg %d has an empty bounding box %gx%g" % (svg["i"], svg["w"], svg["h"]))
        if facts["scripts"]:
            failures.append("the page has %d <script> elements" % facts["scripts"])
        for url in facts["outside"]:
            failures.append("reference outside the file: %s" % url[:120])
        size = png_size(shot)
        if size is None:
            failures.append("the screenshot is not a PNG")
        else:
            w, h = size
            if h < args.min_height or h < facts["height"] * 0.9 or w < 600:
                failures.append("screenshot %dx%d does not cover the page (%dx%d, at least %d high)"
                                % (w, h, facts["width"], facts["height"], args.min_height))
        print("check_in_browser: %s: %d sections, %d images, %d inline svgs, page %dx%d, screenshot %s (%d bytes)"
              % (args.report, facts["sections"], len(facts["imgs"]), len(facts["svgs"]), facts["width"],
                 facts["height"], "%dx%d" % size if size else "?", len(shot)))
    except Exception as e:  # noqa: BLE001 - every failure of the check is reported, never a hang
        failures.append("%s: %s" % (type(e).__name__, e))
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
