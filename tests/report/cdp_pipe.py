"""A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (stdlib only).

Why not a PyPI driver: pyppeteer is unmaintained, playwright and selenium download their own browser
builds or drivers. The protocol over a pipe is small: JSON messages separated by NUL bytes, commands
on the browser's fd 3, replies and events on its fd 4. We need four things: open a page, record every
network request the page makes (``Network.requestWillBeSent``), evaluate a script in it, and collect
script exceptions and console errors.

Chromium also runs with a proxy that refuses everything and a host resolver that resolves nothing, so
even a request this client failed to see could not reach the network.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root in CI containers
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--window-size=1280,1000",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium; :meth:`open` loads a page and returns what happened there."""

    def __init__(self, executable: str, timeout: float = 20.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="precdiff-chromium-")
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        # Chromium reads fd 3 and writes fd 4: move our ends above 10 first so the dup2 below cannot
        # overwrite one pipe end with the other.
        high_cmd = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
        high_res = fcntl.fcntl(res_w, fcntl.F_DUPFD, 10)

        def wire() -> None:
            os.dup2(high_cmd, 3)
            os.dup2(high_res, 4)

        self._proc = subprocess.Popen(
            [
                executable,
                *FLAGS,
                "--remote-debugging-pipe",
                f"--user-data-dir={self._profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire,
            pass_fds=(3, 4),
        )
        for fd in (cmd_r, res_w, high_cmd, high_res):
            os.close(fd)
        self._out, self._in = cmd_w, res_r
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._out, self._in):
            os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer over the DevTools pipe")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        """Send one command and return its result; events arriving meanwhile go to :attr:`events`."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == method and e.get("sessionId") == session for e in self.events):
            self.events.append(self._read(deadline))

    def open(self, path: Path, expression: str) -> PageResult:
        """Load ``path`` in a new tab, wait for its load event, evaluate ``expression`` (JSON-able)."""
        self.events = []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        self.wait_for("Page.loadEventFired", session)
        value = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
        )["result"].get("value")
        self.send("Target.closeTarget", {"targetId": target})
        mine = [e for e in self.events if e.get("sessionId") == session]
        requests = [
            e["params"]["request"]["url"] for e in mine if e.get("method") == "Network.requestWillBeSent"
        ]
        errors = [
            json.dumps(e["params"])[:300]
            for e in mine
            if e.get("method") == "Runtime.exceptionThrown"
            or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")
            or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") == "error")
        ]
        return PageResult(value=value, requests=requests, errors=errors)


class PageResult:
    """What a page did: the evaluated value, every request URL it made, its errors."""

    def __init__(self, value: Any, requests: list[str], errors: list[str]) -> None:
        self.value = value
        self.requests = requests
        self.errors = errors

    @property
    def remote_requests(self) -> list[str]:
        """Requests for anything but the page file itself (``file://``) or inline ``data:``."""
        return [url for url in self.requests if not url.startswith(("file://", "data:"))]
