"""Every LLM client has a timeout: a provider that accepts the connection and never answers fails the call within
EVALSTUDIO_LLM_TIMEOUT_SECONDS, instead of holding a worker or a web request for the client's default 10 minutes."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from core.llm_client import llm_client
from tests.listener import Listener


@pytest.fixture
def silent_provider(settings):
    with Listener(silent=True) as listener:
        settings.OPENAI_BASE_URL = f"http://127.0.0.1:{listener.port}/v1"
        settings.OPENAI_API_KEY = "test-key"
        settings.EVALSTUDIO_LLM_MAX_RETRIES = 0
        settings.EVALSTUDIO_LLM_TIMEOUT_SECONDS = 0.3
        yield listener


def test_the_judges_llm_client_gives_up_on_a_provider_that_never_answers(silent_provider):
    client = llm_client()

    def ask() -> BaseException | None:
        try:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        except BaseException as exc:  # noqa: BLE001 - the outcome is what the test reads
            return exc
        return None

    assert client.timeout == 0.3  # the setting, not the client's default of 600 s
    started = time.monotonic()
    pool = ThreadPoolExecutor(1)
    try:
        # Without a timeout the call would wait the client's 10 minutes: far past this deadline, which is generous
        # so that a busy machine scheduling the thread late never fails a client that did give up at 0.3 s.
        outcome = pool.submit(ask).result(timeout=30)
    finally:
        pool.shutdown(wait=False)
    assert isinstance(outcome, openai.APITimeoutError)
    assert time.monotonic() - started >= 0.3  # it waited the timeout out, not less
    assert len(silent_provider.requests) == 1  # it was asked, once, and gave up
