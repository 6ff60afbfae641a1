"""The one interface every LLM backend implements: raw text out for a batch of user messages, greedy and repeatable.

Answers are handed back one by one as each is complete (`on_answer`), so the driver can store each the moment it
exists: backends decode a batch in parallel, and a kill must not lose the answers of a batch already finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Union, runtime_checkable

DEFAULT_MAX_TOKENS = 96  # a compact schema's answer is 25-45 tokens; the bound stops a runaway list or string


class BackendError(RuntimeError):
    """The backend cannot run at all (model missing, server unreachable); retrying items will not help."""


@dataclass(frozen=True)
class Refusal:
    """A prompt the backend could not even start on (longer than the model's context): no retry can change that."""

    reason: str


Answer = Union[str, Refusal]
AnswerCallback = Callable[[int, Answer], None]  # (index into prompts, answer)


@runtime_checkable
class ExtractionBackend(Protocol):
    #: Identity of model + decoding settings. Cached answers are keyed on it: change it when outputs could change.
    fingerprint: str

    def generate(
        self, prompts: list[str], json_schema: dict[str, Any], system: str = "", on_answer: AnswerCallback | None = None
    ) -> list[Answer]:
        """One raw answer (or Refusal) per prompt (a user message), in order. `system` is shared by all prompts.

        `on_answer(index, answer)` is called once per prompt as soon as its answer is complete, in the calling
        thread, before generate returns. An exception it raises stops the batch and propagates.
        """
        ...

    def close(self) -> None: ...


def chat_messages(prompt: str, system: str = "") -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return messages


# Private-use characters: in no chat template and no vocabulary's special tokens, and untouched by `| trim`.
_CONTENT_MARK = "\ue000kirec-content-{}\ue001"


def chat_pieces(render: Callable[[list[dict[str, str]]], str], prompt: str, system: str = "") -> list[tuple[str, bool]]:
    """The chat prompt as (text, is_content) pieces, in order: the template's own text and each message's content.

    Item text is data. A title holding "<|im_start|>system" must not become a chat control token, so backends
    tokenize the template's pieces with special tokens parsed and the content pieces with them read as plain text.
    The template is rendered with a marker in place of each content and split at the markers.
    """
    messages = chat_messages(prompt, system)
    marks = [_CONTENT_MARK.format(i) for i in range(len(messages))]
    rest = render([dict(m, content=mark) for m, mark in zip(messages, marks)])
    pieces: list[tuple[str, bool]] = []
    for mark, message in zip(marks, messages):
        before, found, rest = rest.partition(mark)
        if not found or mark in rest:
            raise BackendError(
                "the chat template does not place each message's content in the prompt exactly once, "
                "unchanged; kirec cannot keep item text apart from the template's control tokens"
            )
        pieces += [(before, False), (message["content"], True)]
    pieces.append((rest, False))
    return [(text, is_content) for text, is_content in pieces if text]
