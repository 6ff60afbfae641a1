"""OpenAI-compatible server backend (/v1/chat/completions): vLLM, llama.cpp's server, Ollama, OpenAI itself.

Decoding is constrained with `response_format: json_schema` (OpenAI, vLLM). A server that rejects that (HTTP
400 or 422, or any error naming response_format) is asked again with `json_object` carrying the schema (which
llama-cpp-python's server constrains decoding with), then with plain `json_object`; the first format a server
accepts is remembered.

At most `max_concurrency` requests are in flight (a thread pool: the standard library only, no HTTP client package),
and each answer is handed back (`on_answer`) as its response arrives, so the driver stores it at once. 429, 5xx
and timeouts are retried with exponential backoff, waiting at least what a Retry-After header asks; an unreachable
server is one clear BackendError. A prompt the server says is longer than the model's context is refused for that
item alone. The item's text travels only inside a message's `content`: the server applies the chat template.
"""

from __future__ import annotations

import email.utils
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Mapping

from engine.extraction.backends.base import (
    DEFAULT_MAX_TOKENS,
    Answer,
    AnswerCallback,
    BackendError,
    Refusal,
    chat_messages,
)

RESPONSE_FORMATS = (
    lambda schema: {"type": "json_schema", "json_schema": {"name": "attributes", "schema": schema, "strict": True}},
    lambda schema: {"type": "json_object", "schema": schema},
    lambda schema: {"type": "json_object"},
)
DEFAULT_MAX_CONCURRENCY = 8
MAX_RETRY_AFTER = 120.0  # seconds: a longer Retry-After is capped, so a misbehaving server cannot stall a run for hours
# vLLM/OpenAI: "maximum context length is 2048 tokens"; llama.cpp's server: "exceeds the available context size";
# llama-cpp-python's: "Requested tokens (5000) exceed context window of 2048".
_CONTEXT_OVERFLOW = re.compile(r"context (length|window|size)|too many tokens|prompt is too long", re.IGNORECASE)


def _names_response_format(status: int, payload: str) -> bool:
    """An error about the request's response_format: no retry will change it. llama-cpp-python's server reports
    its request-validation errors as HTTP 500 (measured against 0.3.36), not 422, so the status alone cannot say."""
    return status >= 400 and "response_format" in payload


def _context_overflow(status: int, payload: str) -> bool:
    return status >= 400 and not _names_response_format(status, payload) and bool(_CONTEXT_OVERFLOW.search(payload))


def retry_after_seconds(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """A Retry-After header (delay in seconds or an HTTP date) as seconds to wait, or None."""
    value = (headers or {}).get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class OpenAICompatBackend:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise BackendError(f"llm_url: expected an http(s) URL of an OpenAI-compatible server, got {base_url!r}")
        if int(max_concurrency) < 1:
            raise BackendError(f"llm_concurrency: expected at least 1 request in flight, got {max_concurrency!r}")
        base = base_url.rstrip("/")
        self.url = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        self.model = model
        self.api_key = api_key
        self.max_concurrency = int(max_concurrency)
        # Rounds several times the concurrency keep the pool full; the driver stores answers as they come anyway.
        self.preferred_batch_size = max(32, 4 * self.max_concurrency)
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._format = 0  # index into RESPONSE_FORMATS: moves on each time a server rejects one
        self._sleep = time.sleep  # the wait between retries (tests record it instead)
        self.fingerprint = f"openai:{base}:{model}:temperature=0:max_tokens={max_tokens}"

    def generate(
        self, prompts: list[str], json_schema: dict[str, Any], system: str = "", on_answer: AnswerCallback | None = None
    ) -> list[Answer]:
        if not prompts:
            return []
        answers: list[Answer] = [""] * len(prompts)
        pool = ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(prompts)), thread_name_prefix="kirec-llm")
        futures: dict[Future, int] = {}
        abandoned = threading.Event()  # set when this call ends early: requests still retrying give up
        try:
            futures = {pool.submit(self._complete, p, json_schema, system, abandoned): i for i, p in enumerate(prompts)}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(finished, key=futures.__getitem__):  # the callback runs in this thread
                    index = futures[future]
                    answers[index] = future.result()
                    if on_answer is not None:
                        on_answer(index, answers[index])
        finally:
            # on an error or a stop: drop the queued requests; the few in flight end in the background, without retries
            abandoned.set()
            pool.shutdown(wait=False, cancel_futures=True)
        return answers

    def _complete(
        self, prompt: str, json_schema: dict[str, Any], system: str, abandoned: threading.Event | None = None
    ) -> Answer:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": chat_messages(prompt, system),  # the item's text is a message's content, never template text
            "temperature": 0,
            "seed": 0,
            "max_tokens": self.max_tokens,
        }
        while True:
            fmt = self._format
            body["response_format"] = RESPONSE_FORMATS[fmt](json_schema)
            status, payload = self._post(body, abandoned)
            if _context_overflow(status, payload):
                return Refusal(f"item text too long for the prompt: the server said HTTP {status}: {payload[:200]}")
            rejected = status in (400, 422) or _names_response_format(status, payload)
            if rejected and fmt + 1 < len(RESPONSE_FORMATS):
                self._format = max(self._format, fmt + 1)
                continue
            if rejected:  # the last format too
                raise BackendError(
                    f"{self.url}: the server rejected every response format "
                    f"(json_schema, json_object with a schema, json_object): HTTP {status}: {payload[:200]}"
                )
            if status != 200:
                raise BackendError(f"{self.url}: HTTP {status}: {payload[:200]}")
            try:
                return json.loads(payload)["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError):
                raise BackendError(f"{self.url}: not an OpenAI chat-completions response: {payload[:200]!r}") from None

    def _post(self, body: dict[str, Any], abandoned: threading.Event | None = None) -> tuple[int, str]:
        """(status, body text). Retries 429/5xx/timeouts; raises BackendError when the server cannot be reached."""
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode()
        last = ""
        wait_for: float | None = None  # what the server's last Retry-After asked
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(min(MAX_RETRY_AFTER, max(self.backoff * 2 ** (attempt - 1), wait_for or 0.0)))
                if abandoned is not None and abandoned.is_set():
                    raise BackendError(f"{self.url}: request abandoned (the extraction stopped or failed): {last}")
            wait_for = None
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.status, response.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as exc:
                text = exc.read().decode("utf-8", "replace")
                retryable = exc.code == 429 or exc.code >= 500
                if retryable and not _names_response_format(exc.code, text) and not _context_overflow(exc.code, text):
                    last = f"HTTP {exc.code}: {text[:200]}"
                    wait_for = retry_after_seconds(exc.headers)
                    continue
                return exc.code, text
            except (TimeoutError, socket.timeout) as exc:
                last = f"timed out after {self.timeout:g}s ({exc})"
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                    last = f"timed out after {self.timeout:g}s"
                    continue
                raise BackendError(f"{self.url}: cannot reach the LLM server ({exc.reason}); is it running?") from None
            except ConnectionError as exc:
                last = f"connection error ({exc})"
        raise BackendError(f"{self.url}: giving up after {self.retries + 1} attempts: {last}")

    def close(self) -> None:
        pass
