"""A real HTTP server on loopback that receives alert webhooks in tests: records every POST, answers with the
status the test sets (200 unless told otherwise)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookServer:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with server.lock:
                    server.received.append(
                        {"path": self.path, "content_type": self.headers.get("Content-Type"), "json": json.loads(body)}
                    )
                    status = server.status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/alerts"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def events(self) -> list[str]:
        with self.lock:
            return [item["json"]["event"] for item in self.received]

    def __enter__(self) -> WebhookServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
