#!/usr/bin/env python3
"""Checks the status page of a running `baton serve` (with a bearer token) in headless Chromium.

Drives one page over the DevTools protocol (a small WebSocket client on the standard library only): the page,
opened with the token in the address's fragment, shows a lease acquired through the API; after the lease is
released and taken by another holder, the same page (no reload: a marker set in it survives, and no navigation
happened) shows the new holder and token, delivered by the lease's event stream. Optionally writes a screenshot;
then a prefix typed into the filter leaves only the keys under it (and their streams).
Exits 1 with a message on any mismatch.

usage: BATON_TOKEN=TOKEN statuspage_check.py --url http://127.0.0.1:PORT --chromium PATH [--screenshot FILE.png]
"""

import argparse
import base64
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

KEY = "jobs/cleaner"


class Failure(Exception):
    pass


class WebSocket:
    """A WebSocket client, enough for the DevTools protocol: text frames, client-side masking, no extensions."""

    def __init__(self, url):
        match = re.match(r"ws://([^/:]+):(\d+)(/.*)", url)
        if not match:
            raise Failure(f"not a ws:// address: {url}")
        host, port, path = match.group(1), int(match.group(2)), match.group(3)
        self.sock = socket.create_connection((host, port), timeout=15)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise Failure("the DevTools socket closed during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise Failure(f"the DevTools handshake failed: {head.splitlines()[0]!r}")

    def send(self, text):
        payload = text.encode()
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", len(payload))
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _exactly(self, count):
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise Failure("the DevTools socket closed")
            data += chunk
        return data

    def receive(self):
        message = b""
        while True:
            first, second = self._exactly(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._exactly(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._exactly(8))[0]
            payload = self._exactly(length)
            opcode = first & 0x0F
            if opcode == 0x8:
                raise Failure("the DevTools socket was closed by the browser")
            if opcode in (0x9, 0xA):
                continue
            message += payload
            if first & 0x80:
                return message.decode()


class DevTools:
    """Commands and events of one page target."""

    def __init__(self, url):
        self.socket = WebSocket(url)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        ident = self.next_id
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.receive())
            if message.get("id") == ident:
                if "error" in message:
                    raise Failure(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise Failure(f"the page's script failed: {result['exceptionDetails']}")
        return result["result"].get("value")


def api(base, token, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            text = answer.read().decode()
            return answer.status, (json.loads(text) if text.startswith("{") else text)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def expect(condition, message):
    if not condition:
        raise Failure(message)


ROW = """(() => {
  const row = document.querySelector('#leases tbody tr[data-key="' + CSS.escape(%s) + '"]');
  if (!row) return null;
  return {holder: row.cells[1].textContent, token: row.cells[2].textContent, left: row.cells[3].textContent,
          metadata: row.cells[4].textContent, via: row.dataset.via || "", watched: row.dataset.watched || "",
          events: row.dataset.events || "0"};
})()"""


ROW_NODE = """document.querySelector('#leases tbody tr[data-key="' + CSS.escape(%s) + '"]')"""


def wait_for_row(page, want, seconds=10):
    deadline = time.monotonic() + seconds
    seen = None
    while time.monotonic() < deadline:
        seen = page.evaluate(ROW % json.dumps(KEY))
        if seen and all(seen.get(name) == value for name, value in want.items()):
            return seen
        time.sleep(0.1)
    raise Failure(f"the page did not show {want} for {KEY} within {seconds} s; it shows {seen}")


def start_chromium(chromium, profile):
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
        "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1100,800", "about:blank",
    ]
    # A session of its own, so that stop_chromium can end the browser's helper processes too.
    browser = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = browser.stderr.readline()
        if not line and browser.poll() is not None:
            break
        match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
        if match:
            # Chromium goes on writing to stderr: read it, so that a full pipe never stops the browser.
            threading.Thread(target=lambda: browser.stderr.read(), daemon=True).start()
            return browser, int(match.group(1))
    stop_chromium(browser)
    raise Failure("headless Chromium did not start its DevTools endpoint within 20 s")


def stop_chromium(browser):
    """Kills the browser and every process of its session (renderers, crash handler), and waits until they are
    gone: a helper still running would write into the profile while it is being removed."""
    try:
        os.killpg(browser.pid, 9)
    except ProcessLookupError:
        pass
    browser.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(browser.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def page_target(port):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:
            for target in json.load(answer):
                if target.get("type") == "page":
                    return target["webSocketDebuggerUrl"]
        time.sleep(0.2)
    raise Failure("Chromium lists no page target")


def check(args, page):
    base, token = args.url.rstrip("/"), args.token
    status, _ = api(base, None, "GET", "/v2/leases")
    expect(status == 401, f"the listing without a token answered {status}, not 401: is auth on?")
    status, first = api(base, token, "POST", "/v2/leases/jobs%2Fcleaner",
                        {"holder": "host-a", "ttl_ms": 60000, "metadata": "10.0.0.5:8080"})
    expect(status == 200, f"acquiring {KEY} as host-a answered {status}: {first}")
    for key, holder, metadata in [("db/primary", "db-2", "10.0.1.2:5432"), ("jobs/reporter", "host-c", None)]:
        status, answer = api(base, token, "POST", "/v2/leases/" + key.replace("/", "%2F"),
                             {"holder": holder, "ttl_ms": 45000, "metadata": metadata})
        expect(status == 200, f"acquiring {key} answered {status}: {answer}")
    for round_name, winner in [("2026-12-05T03:00", "host-a"), ("2026-12-05T04:00", "host-c")]:
        path = f"/api/v1/elect/nightly-report/{round_name}?candidate={winner}"
        status, answer = api(base, token, "GET", path)
        expect(status == 202, f"electing {winner} answered {status}: {answer}")
    status, answer = api(base, token, "POST", "/api/v1/complete/nightly-report/2026-12-05T03:00?candidate=host-a")
    expect(status == 200, f"completing the round answered {status}: {answer}")

    page.call("Page.enable")
    page.call("Runtime.enable")
    page.call("Page.navigate", url=f"{base}/#token={token}&system=nightly-report")
    shown = wait_for_row(page, {"holder": "host-a", "token": str(first["token"]), "metadata": "10.0.0.5:8080"})
    expect(shown["left"].endswith(" s"), f"the time left is not counting: {shown}")
    expect(page.evaluate("location.hash") == "", "the page left the token in the address bar")
    row = ROW_NODE % json.dumps(KEY)
    page.evaluate(f"window.__batonCheck = 'same page'; {row}.__batonCheck = 'same row'; true")
    navigations = sum(1 for event in page.events if event["method"] == "Page.frameNavigated")
    print(f"statuspage: shown {KEY} held by host-a with token {first['token']}, time left {shown['left']}")

    status, answer = api(base, token, "DELETE", "/v2/leases/jobs%2Fcleaner",
                         {"holder": "host-a", "token": first["token"]})
    expect(status == 204, f"releasing {KEY} answered {status}: {answer}")
    status, second = api(base, token, "POST", "/v2/leases/jobs%2Fcleaner",
                         {"holder": "host-b", "ttl_ms": 30000, "metadata": "10.0.0.6:8080"})
    expect(status == 200, f"acquiring {KEY} as host-b answered {status}: {second}")
    expect(second["token"] > first["token"], f"the new term's token {second['token']} is not greater")
    # The lease's event stream brought the new term into the page (`watched`), which shows it; `via` says whether
    # the stream or the periodic listing showed it first.
    changed = wait_for_row(page, {"holder": "host-b", "token": str(second["token"]), "metadata": "10.0.0.6:8080",
                                  "watched": f"host-b {second['token']}"})
    expect(page.evaluate("window.__batonCheck") == "same page", "the page was reloaded (its marker is gone)")
    # The row is usually the one that showed host-a, changed in place. A listing that ran between the release and
    # the new acquire drops it and the stream's event makes it anew: still a live change on the same page.
    kept = page.evaluate(f"{row}.__batonCheck") == "same row"
    later = sum(1 for event in page.events if event["method"] == "Page.frameNavigated")
    expect(later == navigations, "the page navigated after it first showed the lease")
    first_shown = "stream" if changed["via"] == "watch" else "listing"
    print(f"statuspage: the same page shows host-b with token {second['token']}, delivered by its event stream "
          f"({changed['events']} events on the row; first shown by the {first_shown}; "
          f"{'the same row' if kept else 'a row made anew'}), without a reload")
    wait_for_row(page, {"holder": "host-b"}, 5)
    rounds = page.evaluate("Array.from(document.querySelectorAll('#rounds tbody tr'), r => r.innerText)")
    expect(rounds and len(rounds) == 2 and "host-a" in rounds[1], f"the rounds panel shows {rounds}")
    if args.screenshot:
        time.sleep(1.3)  # the row's highlight fades
        shot = page.call("Page.captureScreenshot", format="png")
        with open(args.screenshot, "wb") as file:
            file.write(base64.b64decode(shot["data"]))
        print(f"statuspage: screenshot written to {args.screenshot}")
    page.evaluate("document.getElementById('prefix-input').value = 'db/'; "
                  "document.getElementById('prefix-form').requestSubmit(); true")
    keys, streams = None, None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        keys = page.evaluate("Array.from(document.querySelectorAll('#leases tbody tr'), r => r.dataset.key)")
        streams = page.evaluate("document.getElementById('stream-state').textContent")
        if keys == ["db/primary"] and streams.startswith("Live: 1 event stream "):
            break
        time.sleep(0.1)
    expect(keys == ["db/primary"], f"with the prefix db/ the page shows {keys}")
    expect(streams.startswith("Live: 1 event stream "), f"with one key shown the page says: {streams}")
    print("statuspage: the prefix filter db/ shows db/primary only, with one event stream")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--chromium", default="chromium")
    parser.add_argument("--screenshot")
    args = parser.parse_args()
    args.token = os.environ.get("BATON_TOKEN", "")
    if not args.token:
        parser.error("set BATON_TOKEN to the service's bearer token")
    # A helper process that outlived the browser must not turn a passed check into a failure at cleanup.
    with tempfile.TemporaryDirectory(prefix="baton-chromium-", ignore_cleanup_errors=True) as profile:
        browser, port = start_chromium(args.chromium, profile)
        try:
            check(args, DevTools(page_target(port)))
        except Failure as failure:
            print(f"statuspage: FAILED: {failure}", file=sys.stderr)
            return 1
        finally:
            stop_chromium(browser)
    print("statuspage: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
