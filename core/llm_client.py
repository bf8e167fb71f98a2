"""The LLM endpoint every LLM call in EvalStudio uses (OPENAI_BASE_URL, OPENAI_API_KEY): whether one is configured,
the client, and what calls share across processes through Django's cache: adaptations learned from a model's
refusals (core.llm_compat) and the model's context. Judges and the naming of suggested groupings both call through
here and core.llm_calls.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from core import llm_calls, llm_compat


def llm_configured() -> bool:
    """An OpenAI-compatible endpoint is set (a local server needs no key; the official API needs one)."""
    return bool(settings.OPENAI_BASE_URL or settings.OPENAI_API_KEY)


# Learned adaptations (a model that refuses max_tokens or temperature) are shared between processes through the
# cache: workers and web processes learn from each other's refusals. A lost entry (Redis flushed, down, evicted)
# costs one refused call, which teaches it again, so the cache is enough; no table is needed. Tests set their own
# namespace so loopback servers reusing a port never inherit another test's model.
SHARED_NAMESPACE = "llm"
ADAPTATION_SECONDS = 30 * 24 * 3600
# A server's context can change (Ollama's num_ctx is set per model and per request); asked again after this.
CONTEXT_SECONDS = 600


class _SharedCache:
    """llm_compat.SharedStore over Django's cache (fails open: an outage is a miss, a dropped write)."""

    def __init__(self, timeout: int) -> None:
        self.timeout = timeout

    def get(self, key: str) -> Any:
        from django.core.cache import cache

        return cache.get(f"{SHARED_NAMESPACE}:{key}")

    def set(self, key: str, value: Any) -> None:
        from django.core.cache import cache

        cache.set(f"{SHARED_NAMESPACE}:{key}", value, self.timeout)


def model_context(client: Any, config: dict[str, Any], *, probe: bool = True) -> llm_compat.Context | None:
    """The model's context window: the version's `context_tokens` setting, else what the server reported (vLLM's
    /v1/models max_model_len, Ollama's /api/show num_ctx or context_length), read from the cache and, with `probe`,
    asked of the server when nobody has asked for ten minutes. None when unknown."""
    if "context_tokens" in config:
        return llm_compat.Context(config["context_tokens"], "the judge's context_tokens setting")
    model = config["model"]
    # The openai client's default endpoint when none is set, so pages find what a worker's client learned.
    where = str(client.base_url) if client is not None else (settings.OPENAI_BASE_URL or "https://api.openai.com/v1")
    shared = _SharedCache(CONTEXT_SECONDS)
    key = f"llm-context:{where.rstrip('/')}:{model}"
    cached = shared.get(key)
    if isinstance(cached, dict):
        return llm_compat.Context(**cached) if cached else None
    if not probe or client is None:
        return None
    found = llm_compat.probe_context(client, model, timeout=min(5.0, settings.EVALSTUDIO_LLM_TIMEOUT_SECONDS))
    shared.set(key, {"tokens": found.tokens, "source": found.source} if found else {})
    return found


def llm_endpoint(client: Any, config: dict[str, Any]) -> llm_calls.Endpoint:
    """The client, the shared memo of adaptations, and the model's context, for the calls of one batch. What other
    processes learned about the model is read here, in the calling thread, not by each call in the pool."""
    shared = _SharedCache(ADAPTATION_SECONDS)
    llm_compat.MEMO.get(str(client.base_url), config["model"], shared)
    return llm_calls.Endpoint(client=client, shared=shared, context=model_context(client, config))


def llm_client(*, max_retries: int | None = None) -> Any:
    """The openai client for the configured endpoint; `max_retries` (429s, 5xx, timeouts) defaults to
    EVALSTUDIO_LLM_MAX_RETRIES."""
    import openai

    return openai.OpenAI(
        base_url=settings.OPENAI_BASE_URL or None,
        # The client refuses to start without a key; a local OpenAI-compatible server usually needs none.
        api_key=settings.OPENAI_API_KEY or "not-needed",
        max_retries=settings.EVALSTUDIO_LLM_MAX_RETRIES if max_retries is None else max_retries,
        # The endpoint is the operator's and trusted, but a provider that never answers must not hold a worker (or
        # a web request) for the client's default 10 minutes; a version's `timeout_s` still governs its calls.
        timeout=settings.EVALSTUDIO_LLM_TIMEOUT_SECONDS,
    )
