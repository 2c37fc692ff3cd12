"""Headless Chromium driven over the DevTools protocol on a pipe (standard library only).

Chromium reads commands on fd 3 and writes replies on fd 4, each a JSON message ended
by a NUL byte. A test opens a page, evaluates JavaScript in it (element boxes, colours,
what a page's scripts built) and takes screenshots.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs Debian's chromium"
)


class Browser:
    """One headless Chromium with one page of the given size."""

    def __init__(self, width: int, height: int) -> None:
        commands, self._commands = os.pipe()
        self._replies, replies = os.pipe()
        # Above fd 10 first, so that putting them on 3 and 4 in the child clobbers neither.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (commands, replies)]

        def on_three_and_four() -> None:
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self._process = subprocess.Popen(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--enable-unsafe-swiftshader",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            preexec_fn=on_three_and_four,
            pass_fds=(3, 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fd in {commands, replies, *high}:
            os.close(fd)
        self._buffer = b""
        self._id = 0
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})
        self._session = attached["sessionId"]
        self._send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._send("Browser.close", session=False)
        except (OSError, RuntimeError):
            pass
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()

    def open(self, url: str) -> None:
        """Load ``url`` and wait until its document has loaded."""
        self._send("Page.navigate", {"url": url})
        self.wait("document.readyState === 'complete'", timeout=30)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        reply = self._send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in reply:
            raise RuntimeError(reply["exceptionDetails"])
        return reply["result"].get("value")

    def wait(self, expression: str, timeout: float) -> Any:
        """Poll until the expression's value is truthy; return it (fails on a timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"the page never had {expression}")
            time.sleep(0.3)

    def screenshot(self, path: Path) -> Path:
        """Save the whole page as a PNG."""
        reply = self._send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path.write_bytes(base64.b64decode(reply["data"]))
        return path

    def _send(self, method: str, params: dict | None = None, *, session: bool = True) -> dict:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session and hasattr(self, "_session"):
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed its pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(reply["error"])
                return reply["result"]
