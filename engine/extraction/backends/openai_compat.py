"""OpenAI-compatible server backend (/v1/chat/completions): vLLM, llama.cpp's server, Ollama, OpenAI itself.

Decoding is constrained with `response_format: json_schema` (OpenAI, vLLM). A server that rejects that (HTTP
400 or 422, or any error naming response_format) is asked again with `json_object` carrying the schema (which
llama-cpp-python's server constrains decoding with), then with plain `json_object`; the first format a server
accepts is remembered. Requests run in a small thread pool; 5xx answers, 429 and timeouts are retried with exponential backoff; an unreachable server is one clear BackendError.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engine.extraction.backends.base import DEFAULT_MAX_TOKENS, BackendError, chat_messages


RESPONSE_FORMATS = (
    lambda schema: {"type": "json_schema", "json_schema": {"name": "attributes", "schema": schema, "strict": True}},
    lambda schema: {"type": "json_object", "schema": schema},
    lambda schema: {"type": "json_object"},
)


def _names_response_format(status: int, payload: str) -> bool:
    """An error about the request's response_format: no retry will change it. llama-cpp-python's server reports
    its request-validation errors as HTTP 500 (measured against 0.3.36), not 422, so the status alone cannot say."""
    return status >= 400 and "response_format" in payload


class OpenAICompatBackend:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        concurrency: int = 4,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise BackendError(f"llm_url: expected an http(s) URL of an OpenAI-compatible server, got {base_url!r}")
        base = base_url.rstrip("/")
        self.url = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        self.model = model
        self.api_key = api_key
        self.concurrency = max(1, concurrency)
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._format = 0  # index into RESPONSE_FORMATS: moves on each time a server rejects one
        self.fingerprint = f"openai:{base}:{model}:temperature=0:max_tokens={max_tokens}"

    def generate(self, prompts: list[str], json_schema: dict[str, Any], system: str = "") -> list[str]:
        if not prompts:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            return list(pool.map(lambda p: self._complete(p, json_schema, system), prompts))

    def _complete(self, prompt: str, json_schema: dict[str, Any], system: str) -> str:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": chat_messages(prompt, system),
            "temperature": 0,
            "seed": 0,
            "max_tokens": self.max_tokens,
        }
        while True:
            fmt = self._format
            body["response_format"] = RESPONSE_FORMATS[fmt](json_schema)
            status, payload = self._post(body)
            rejected = status in (400, 422) or _names_response_format(status, payload)
            if rejected and fmt + 1 < len(RESPONSE_FORMATS):
                self._format = max(self._format, fmt + 1)
                continue
            if rejected:  # the last format too
                raise BackendError(f"{self.url}: the server rejected every response format "
                                   f"(json_schema, json_object with a schema, json_object): HTTP {status}: {payload[:200]}")
            if status != 200:
                raise BackendError(f"{self.url}: HTTP {status}: {payload[:200]}")
            try:
                return json.loads(payload)["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError):
                raise BackendError(f"{self.url}: not an OpenAI chat-completions response: {payload[:200]!r}") from None

    def _post(self, body: dict[str, Any]) -> tuple[int, str]:
        """(status, body text). Retries 429/5xx/timeouts; raises BackendError when the server cannot be reached."""
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode()
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.status, response.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as exc:
                text = exc.read().decode("utf-8", "replace")
                if (exc.code == 429 or exc.code >= 500) and not _names_response_format(exc.code, text):
                    last = f"HTTP {exc.code}: {text[:200]}"
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
