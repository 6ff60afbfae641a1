"""Write a tiny llama-architecture GGUF with random weights, so tests exercise llama.cpp's real loading and decoding.

The vocabulary is every printable ASCII character plus ChatML control tokens, with no duplicates (a duplicate
token aborts llama.cpp) and no byte-fallback tokens (with them, grammar-constrained output can contain control
characters). Any JSON the grammar allows can therefore be spelled one character per token.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL = 1, 2, 3


def tiny_vocab() -> list[str]:
    chars = ["\u2581" if c == " " else c for c in (chr(i) for i in range(32, 127))]  # SentencePiece's space mark
    return SPECIAL_TOKENS + chars + ["\n"]


def write_tiny_gguf(
    path: str | Path,
    n_embd: int = 32,
    n_layer: int = 2,
    n_head: int = 2,
    n_ff: int = 64,
    n_ctx: int = 4096,
    seed: int = 0,
) -> Path:
    import gguf

    path = Path(path)
    rng = np.random.default_rng(seed)
    vocab = tiny_vocab()
    assert len(set(vocab)) == len(vocab), "duplicate tokens abort llama.cpp"
    n_vocab = len(vocab)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("kirec-tiny-test")
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocab)
    writer.add_token_scores([0.0] * len(SPECIAL_TOKENS) + [-float(i) for i in range(n_vocab - len(SPECIAL_TOKENS))])
    writer.add_token_types(
        [TOKEN_UNKNOWN] + [TOKEN_CONTROL] * (len(SPECIAL_TOKENS) - 1) + [TOKEN_NORMAL] * (n_vocab - len(SPECIAL_TOKENS))
    )
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(SPECIAL_TOKENS.index("<|im_end|>"))
    writer.add_add_bos_token(True)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    writer.add_tensor("token_embd.weight", weight(n_vocab, n_embd))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", weight(n_vocab, n_embd))
    for layer in range(n_layer):
        prefix = f"blk.{layer}."
        writer.add_tensor(prefix + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(prefix + name + ".weight", weight(n_embd, n_embd))
        writer.add_tensor(prefix + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(prefix + "ffn_gate.weight", weight(n_ff, n_embd))
        writer.add_tensor(prefix + "ffn_up.weight", weight(n_ff, n_embd))
        writer.add_tensor(prefix + "ffn_down.weight", weight(n_embd, n_ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
