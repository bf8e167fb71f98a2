"""A real HTTP listener on loopback for the outbound tests: it counts every TCP connection it accepts and records
every request, so a test can assert that it received nothing at all (the SSRF tests) or exactly what was sent.
It answers each request with `status`, `headers` and `body` as the test sets them, or holds the connection without
answering when `silent` (a receiver or LLM endpoint that never answers)."""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lowercased
    body: bytes


class Listener:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        status: int = 200,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        silent: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.status, self.headers, self.body, self.silent = status, dict(headers or {}), body, silent
        self.connections = 0
        self.requests: list[Received] = []
        self.server_names: list[str | None] = []  # TLS SNI of each handshake
        self.lock = threading.Lock()
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner.lock:
                    owner.requests.append(
                        Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                if owner.silent:
                    owner.release.wait(30)
                    return
                self.send_response(owner.status)
                for name, value in owner.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(owner.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(owner.body)
                self.close_connection = True

            do_GET = do_POST = _handle  # noqa: N815 - http.server's naming

            def log_message(self, *_args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

            def get_request(self) -> tuple[Any, Any]:
                conn, address = super().get_request()
                with owner.lock:
                    owner.connections += 1
                if tls is not None:
                    conn = tls.wrap_socket(conn, server_side=True)
                return conn, address

        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
        self.httpd = Server((host, 0), Handler)
        self.port = self.httpd.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{'https' if tls else 'http'}://{shown}:{self.port}/hooks/alerts"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def received_nothing(self) -> bool:
        with self.lock:
            return self.connections == 0 and not self.requests

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
