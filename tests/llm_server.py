"""A real OpenAI-compatible HTTP server on loopback that stands in for an LLM provider in tests.

The code under test talks to it with the official `openai` client over a socket, exactly as it would talk to a
provider; nothing is mocked. Tests script the replies and read back the requests:

    with ScriptedLLMServer() as llm:
        llm.reply('{"name": "Invents statistics", "definition": "…"}')   # next reply, in order
        llm.reply("not json at all")
        llm.fail(503)                                                   # an HTTP error
        llm.reply("late", delay=2.0)                                    # answers after 2 s (for timeouts)
        llm.respond_with(lambda request: Reply(content=...))            # once the script is used up
        ScriptedLLMServer(latency=(0.02, 0.05), seed=7)                 # every completion waits 20–50 ms first
        settings.OPENAI_BASE_URL = llm.base_url
        ...
        assert llm.requests[0].json["temperature"] == 0

Serves `POST /v1/chat/completions` and `GET /v1/models` (with `max_model_len` when given, as vLLM), and Ollama's
`POST /api/show` when `ollama_show` is given. With no scripted reply and no responder it answers 500
with a message saying so, so a test that sends more calls than it expects fails loudly.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _QuietServer(ThreadingHTTPServer):
    # socketserver's listen backlog is 5, and a judge run opens up to EVALSTUDIO_JUDGE_CONCURRENCY (16) connections
    # at once: on a busy machine the accept thread falls behind, the kernel drops the SYNs past the backlog, and
    # each dropped one costs its call a retransmit (1 s, then 3 s, 7 s…) that a short timeout turns into an error.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-request (the chaos tests SIGKILL workers) resets its connection: not the server's error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Reply:
    """One scripted answer. `content` becomes the assistant message; `status` ≠ 200 sends an OpenAI-style error;
    `raw_body` sends bytes as they are (for broken responses); `delay` waits first; `headers` are added to the
    response (e.g. `{"Retry-After": "1"}` on a 429)."""

    content: str | None = ""
    status: int = 200
    delay: float = 0.0
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str = "stop"
    raw_body: bytes | None = None
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 10, "completion_tokens": 5})
    headers: dict[str, str] = field(default_factory=dict)
    # The whole `error` object of a non-200 answer, as a real server words it (type, param, code); else a generic one.
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any  # the decoded body, or None when it was not JSON
    received_at: float = 0.0  # time.monotonic() on arrival

    @property
    def messages(self) -> list[dict[str, Any]]:
        return (self.json or {}).get("messages", [])


# OpenAI's words, type, param and code for a reasoning model (o1, o3, gpt-5) sent what a chat model takes.
MAX_TOKENS_REFUSED = {
    "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
    "Use 'max_completion_tokens' instead.",
    "type": "invalid_request_error",
    "param": "max_tokens",
    "code": "unsupported_parameter",
}
TEMPERATURE_REFUSED = {
    "message": "Unsupported value: 'temperature' does not support 0 with this model. "
    "Only the default (1) value is supported.",
    "type": "invalid_request_error",
    "param": "temperature",
    "code": "unsupported_value",
}


def openai_reasoning_model(answer: Callable[[RecordedRequest], Reply]) -> Callable[[RecordedRequest], Reply]:
    """A responder that answers like OpenAI's reasoning models: 400 for `max_tokens`, then for a temperature other
    than 1, and `answer(request)` once the request has neither."""

    def respond(request: RecordedRequest) -> Reply:
        body = request.json or {}
        if "max_tokens" in body:
            return Reply(status=400, error=MAX_TOKENS_REFUSED)
        if body.get("temperature", 1) != 1:
            return Reply(status=400, error=TEMPERATURE_REFUSED)
        return answer(request)

    return respond


class ScriptedLLMServer:
    """`latency` makes every chat completion wait before it answers, like a real provider: a number of seconds, or
    `(low, high)` for a uniform draw per call from a generator seeded with `seed` (added to a reply's own `delay`)."""

    def __init__(
        self,
        *,
        model_ids: tuple[str, ...] = ("test-model",),
        latency: float | tuple[float, float] = 0.0,
        seed: int = 0,
        max_model_len: int | None = None,
        ollama_show: dict[str, Any] | None = None,
    ) -> None:
        self.model_ids = model_ids
        # vLLM lists each model's context as `max_model_len` in /v1/models; Ollama answers `POST /api/show` (at the
        # server's root, beside /v1) with the model's `parameters` (`num_ctx 2048`) and `model_info`. None: absent,
        # as on servers that do neither (/api/show is then a 404).
        self.max_model_len = max_model_len
        self.ollama_show = ollama_show
        self.latency = latency
        self._random = random.Random(seed)
        self.requests: list[RecordedRequest] = []
        self._script: deque[Reply] = deque()
        self._responder: Callable[[RecordedRequest], Reply] | None = None
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="llm-server", daemon=True)

    # Scripting ---------------------------------------------------------------------------------------------------

    def reply(self, content: str | None, **options: Any) -> None:
        self.script(Reply(content=content, **options))

    def reply_json(self, payload: Any, **options: Any) -> None:
        self.script(Reply(content=json.dumps(payload), **options))

    def fail(self, status: int, message: str = "scripted failure", **options: Any) -> None:
        self.script(Reply(status=status, content=message, **options))

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def respond_with(self, responder: Callable[[RecordedRequest], Reply] | None) -> None:
        """Compute replies from requests once the scripted ones are used up."""
        self._responder = responder

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # Lifecycle ---------------------------------------------------------------------------------------------------

    def start(self) -> ScriptedLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # Serving -----------------------------------------------------------------------------------------------------

    def _latency(self) -> float:
        if isinstance(self.latency, tuple):
            with self._lock:
                return self._random.uniform(*self.latency)
        return self.latency

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            if self._script:
                return self._script.popleft()
        if self._responder is not None:
            return self._responder(request)
        return Reply(status=500, content=f"ScriptedLLMServer: no reply scripted for request #{len(self.requests)}")

    def _completion_body(self, request: RecordedRequest, reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        usage = {**reply.usage, "total_tokens": sum(reply.usage.values())}
        return {
            "id": f"chatcmpl-test-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": (request.json or {}).get("model", self.model_ids[0]),
            "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}],
            "usage": usage,
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in two writes; with Nagle's algorithm the body then waits for the client's
            # delayed ACK (~40 ms on Linux), which no real provider adds to every call.
            disable_nagle_algorithm = True

            def log_message(self, *_args: object) -> None:  # keep test output clean
                return None

            def _record(self, body: bytes) -> RecordedRequest:
                try:
                    decoded = json.loads(body) if body else None
                except ValueError:
                    decoded = None
                headers = {key.lower(): value for key, value in self.headers.items()}
                recorded = RecordedRequest(self.command, self.path, headers, decoded, time.monotonic())
                with server._lock:
                    server.requests.append(recorded)
                return recorded

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test); nothing to answer

            def do_GET(self) -> None:
                self._record(b"")
                if self.path.rstrip("/").endswith("/models"):
                    data = [{"id": m, "object": "model", "created": 0, "owned_by": "tests"} for m in server.model_ids]
                    if server.max_model_len is not None:
                        data = [{**entry, "max_model_len": server.max_model_len} for entry in data]
                    self._send(200, json.dumps({"object": "list", "data": data}).encode())
                else:
                    self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = self._record(self.rfile.read(length))
                if self.path.rstrip("/") == "/api/show" and server.ollama_show is not None:
                    self._send(200, json.dumps(server.ollama_show).encode())
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}).encode())
                    return
                reply = server._next_reply(request)
                wait = reply.delay + server._latency()
                if wait:
                    time.sleep(wait)
                if reply.raw_body is not None:
                    self._send(reply.status, reply.raw_body, reply.headers)
                elif reply.status != 200:
                    error = {
                        "error": reply.error or {"message": reply.content, "type": "test_error", "code": reply.status}
                    }
                    self._send(reply.status, json.dumps(error).encode(), reply.headers)
                else:
                    self._send(200, json.dumps(server._completion_body(request, reply)).encode(), reply.headers)

        return Handler
