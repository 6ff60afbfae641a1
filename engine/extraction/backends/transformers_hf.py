"""transformers backend: a local model folder (or a GGUF file) with batched greedy generation, on the GPU if any.

There is no grammar here, so the answer is primed with "{" and parsed leniently (schema.parse_json_object);
answers that still fail validation are retried by the extraction driver. Each sub-batch's answers are handed back
(`on_answer`) as soon as it is generated.

Item text is data: the messages' text is tokenized with `split_special_tokens`, so "<|im_start|>" in a title stays
text; only the chat template's own parts yield control tokens. A prompt that would not fit the model's context with
its answer is refused ("item text too long for the prompt") instead of generated.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from engine.extraction.backends.base import (
    DEFAULT_MAX_TOKENS,
    Answer,
    AnswerCallback,
    BackendError,
    Refusal,
    chat_pieces,
)

FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
ANSWER_PRIMER = "{"  # starts the assistant's answer as a JSON object


def folder_fingerprint(folder: Path, gguf_file: str | None) -> str:
    """Config content plus weight file names and sizes: changes whenever the model does, without hashing GBs."""
    digest = hashlib.sha256()
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    weights = [folder / gguf_file] if gguf_file else sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    for path in weights:
        digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return f"{folder.name}{'/' + gguf_file if gguf_file else ''}:{digest.hexdigest()[:16]}"


def chat_token_ids(tokenizer: Any, prompt: str, system: str = "") -> list[int]:
    """The chat prompt's ids, primed answer included, with special tokens only where the chat template put them.

    The tokenizer cuts text at its special tokens and tokenizes each run between them on its own; this makes the
    same cut, finding special tokens in the template's parts only, and reads messages' text (item text) as text.
    A prompt without special-token text in it gets exactly the ids that tokenizing the whole string gives.
    """

    def render(messages: list[dict[str, str]]) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    special = _special_tokens(tokenizer)
    runs: list[str | int] = [""]  # text runs and special-token ids, alternating
    for text, is_content in chat_pieces(render, prompt, system) + [(ANSWER_PRIMER, False)]:
        parts = [text] if is_content or special is None else special.split(text)
        for n, part in enumerate(parts):
            if n % 2:  # re.split puts the matched special tokens at odd positions
                runs += [tokenizer.convert_tokens_to_ids(part), ""]
            else:
                runs[-1] += part
    ids: list[int] = []
    for run in runs:
        if isinstance(run, int):
            ids.append(run)
        elif run:
            ids += tokenizer(run, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    return ids


def _special_tokens(tokenizer: Any) -> re.Pattern[str] | None:
    """A pattern matching the tokenizer's special tokens, longest first (as the tokenizer itself matches them)."""
    names = sorted({t.content for t in tokenizer.added_tokens_decoder.values() if t.special}, key=len, reverse=True)
    return re.compile("(" + "|".join(re.escape(n) for n in names) + ")") if names else None


class TransformersBackend:
    def __init__(
        self,
        model_path: str | Path,
        device: str | None = None,
        batch_size: int = 8,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise BackendError(f"transformers backend needs torch and transformers ({exc})") from None
        path = Path(model_path)
        gguf_file = None
        if path.is_file() and path.suffix == ".gguf":
            path, gguf_file = path.parent, path.name
        if not path.is_dir():
            raise BackendError(f"{model_path}: not a model folder or GGUF file")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        extra: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), **extra)
            dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
            self.model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, **extra).to(self.device).eval()
        except (OSError, ValueError, ImportError) as exc:
            raise BackendError(
                f"{model_path}: transformers cannot load this model: {str(exc).splitlines()[0]}"
            ) from None
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not getattr(self.tokenizer, "chat_template", None):
            self.tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
        self.batch_size = max(1, batch_size)
        self.max_tokens = max_tokens
        self._torch = torch
        self.context_length = getattr(self.model.config, "max_position_embeddings", None)
        self.fingerprint = f"transformers:{folder_fingerprint(path, gguf_file)}:greedy:max_tokens={max_tokens}"

    def _render_chat(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def tokenize_chat(self, prompt: str, system: str = "") -> list[int]:
        return chat_token_ids(self.tokenizer, prompt, system)

    def generate(
        self, prompts: list[str], json_schema: dict[str, Any], system: str = "", on_answer: AnswerCallback | None = None
    ) -> list[Answer]:
        torch = self._torch
        answers: list[Answer | None] = [None] * len(prompts)

        def finish(index: int, answer: Answer) -> None:
            answers[index] = answer
            if on_answer is not None:
                on_answer(index, answer)

        runnable: list[tuple[int, list[int]]] = []
        for index, prompt in enumerate(prompts):
            ids = self.tokenize_chat(prompt, system)
            if self.context_length and len(ids) + self.max_tokens > self.context_length:
                finish(
                    index,
                    Refusal(
                        f"item text too long for the prompt: {len(ids)} prompt tokens and {self.max_tokens} "
                        f"for the answer exceed the model's context of {self.context_length}"
                    ),
                )
            else:
                runnable.append((index, ids))
        for start in range(0, len(runnable), self.batch_size):
            chunk = runnable[start : start + self.batch_size]
            width = max(len(ids) for _, ids in chunk)
            pad = self.tokenizer.pad_token_id
            # generation continues on the right, so pad on the left
            input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for _, ids in chunk], device=self.device)
            attention = torch.tensor(
                [[0] * (width - len(ids)) + [1] * len(ids) for _, ids in chunk], device=self.device
            )
            with torch.inference_mode():
                output = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=attention,
                    max_new_tokens=self.max_tokens,
                    do_sample=False,
                    pad_token_id=pad,
                )
            for (index, _), row in zip(chunk, output[:, width:]):
                finish(index, ANSWER_PRIMER + self.tokenizer.decode(row, skip_special_tokens=True))
        return [a if a is not None else "" for a in answers]

    def close(self) -> None:
        self.model = None
