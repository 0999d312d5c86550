"""Fixtures of the notification tests: a local web server that records what is posted to it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class Hook:
    """A local http.server standing in for Slack/Mattermost: records each JSON body posted."""

    def __init__(self, status: int = 200, location: str | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = status
        self.location = location  # answer every POST with a redirect there (status 3xx)
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                size = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(size))
                body["_content_type"] = self.headers.get("Content-Type")
                body["_host"] = self.headers.get("Host")
                hook.bodies.append(body)
                self.send_response(hook.status)
                if hook.location:
                    self.send_header("Location", hook.location)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Hook]:
    hook = Hook()
    yield hook
    hook.close()
