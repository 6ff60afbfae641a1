"""The one interface every LLM backend implements: raw text out for a batch of user messages, greedy and repeatable."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

DEFAULT_MAX_TOKENS = 96  # a compact schema's answer is 25-45 tokens; the bound stops a runaway list or string


class BackendError(RuntimeError):
    """The backend cannot run at all (model missing, server unreachable); retrying items will not help."""


@runtime_checkable
class ExtractionBackend(Protocol):
    #: Identity of model + decoding settings. Cached answers are keyed on it: change it when outputs could change.
    fingerprint: str

    def generate(self, prompts: list[str], json_schema: dict[str, Any], system: str = "") -> list[str]:
        """One raw answer per prompt (a user message), in order. `system` is shared by all prompts."""
        ...

    def close(self) -> None:
        ...


def chat_messages(prompt: str, system: str = "") -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return messages
