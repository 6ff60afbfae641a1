"""transformers backend: a local model folder (or a GGUF file) with batched greedy generation, on the GPU if any.

There is no grammar here, so the answer is primed with "{" and parsed leniently (schema.parse_json_object);
answers that still fail validation are retried by the extraction driver.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from engine.extraction.backends.base import DEFAULT_MAX_TOKENS, BackendError, chat_messages

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
            raise BackendError(f"{model_path}: transformers cannot load this model: {str(exc).splitlines()[0]}") from None
        self.tokenizer.padding_side = "left"  # generation continues on the right, so pad on the left
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not getattr(self.tokenizer, "chat_template", None):
            self.tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
        self.batch_size = max(1, batch_size)
        self.max_tokens = max_tokens
        self._torch = torch
        self.fingerprint = f"transformers:{folder_fingerprint(path, gguf_file)}:greedy:max_tokens={max_tokens}"

    def generate(self, prompts: list[str], json_schema: dict[str, Any], system: str = "") -> list[str]:
        texts = [
            self.tokenizer.apply_chat_template(chat_messages(p, system), tokenize=False, add_generation_prompt=True)
            + ANSWER_PRIMER
            for p in prompts
        ]
        answers: list[str] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            encoded = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            with self._torch.inference_mode():
                output = self.model.generate(
                    **encoded,
                    max_new_tokens=self.max_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new_tokens = output[:, encoded["input_ids"].shape[1] :]
            for row in new_tokens:
                answers.append(ANSWER_PRIMER + self.tokenizer.decode(row, skip_special_tokens=True))
        return answers

    def close(self) -> None:
        self.model = None
