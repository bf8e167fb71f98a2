"""The loopback LLM server the judge tests talk to must take a judge's whole burst of connections at once."""

from __future__ import annotations

import socket

from django.conf import settings

from tests.llm_server import ScriptedLLMServer


def test_a_judges_burst_of_connections_is_queued_by_the_kernel_without_waiting_for_the_server():
    # Not started: nothing accepts, so every handshake has to wait in the listen backlog. Over the backlog the
    # kernel drops the SYN and the connect retries a second later, which is what a busy machine turned into slow
    # calls and timeouts; within it, each connect completes at once, however late the server's thread runs.
    server = ScriptedLLMServer()
    host, port = server._server.server_address[:2]
    burst = 2 * settings.EVALSTUDIO_JUDGE_CONCURRENCY  # two runs' worth, as a dev run and a battery overlap
    connections: list[socket.socket] = []
    try:
        for _ in range(burst):
            # Under a second: a dropped SYN is retransmitted only after one.
            connections.append(socket.create_connection((host, port), timeout=0.9))
    finally:
        for conn in connections:
            conn.close()
        server._server.server_close()
    assert len(connections) == burst
