"""The embedding cache: only missing texts reach the encoder, entries survive reopening and concurrent writers."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.semantic.embedding_cache import EmbeddingCache, embed_item_table, embed_texts, text_key
from engine.semantic.encoders import TextEncoder

ROOT = Path(__file__).resolve().parents[2]


class FakeEncoder(TextEncoder):
    """Deterministic vectors from a hash of the text; records every text it is asked to encode."""

    def __init__(self, dim=6, version="v1"):
        self.name, self._dim, self.version = "fake", dim, version
        self.seen: list[str] = []

    @property
    def fingerprint(self):
        return f"fake:{self.version}:{self._dim}"

    @property
    def dim(self):
        return self._dim

    def _encode_chunk(self, texts, batch_size):
        self.seen.extend(texts)
        seeds = [int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) for t in texts]
        return np.stack([np.random.default_rng(s).standard_normal(self._dim) for s in seeds]).astype(np.float32)


def test_only_missing_texts_are_encoded_and_duplicates_once(tmp_path):
    encoder = FakeEncoder()
    with EmbeddingCache(tmp_path) as cache:
        first, stats = embed_texts(["a", "b", "a"], encoder, cache)
        assert encoder.seen == ["a", "b"]
        assert (stats.texts, stats.unique, stats.cached, stats.encoded) == (3, 2, 0, 2)
        np.testing.assert_array_equal(first[0], first[2])
        second, stats = embed_texts(["b", "c"], encoder, cache)
        assert encoder.seen == ["a", "b", "c"]
        assert (stats.cached, stats.encoded) == (1, 1)
        np.testing.assert_array_equal(second[0], first[1])
        assert cache.count(encoder.fingerprint) == 3


def test_cache_survives_reopening_and_returns_identical_vectors(tmp_path):
    texts = [f"item {i}" for i in range(50)]
    with EmbeddingCache(tmp_path) as cache:
        before, _ = embed_texts(texts, FakeEncoder(), cache)
    encoder = FakeEncoder()
    with EmbeddingCache(tmp_path) as cache:
        after, stats = embed_texts(texts, encoder, cache)
    assert encoder.seen == [] and stats.cached == 50
    np.testing.assert_array_equal(before, after)
    assert after.dtype == np.float32


def test_another_encoder_fingerprint_is_a_different_entry(tmp_path):
    with EmbeddingCache(tmp_path) as cache:
        embed_texts(["x"], FakeEncoder(version="v1"), cache)
        other = FakeEncoder(version="v2")
        embed_texts(["x"], other, cache)
        assert other.seen == ["x"]
        assert cache.count() == 2


def test_item_table_has_a_zero_padding_row_and_progress_is_reported(tmp_path):
    calls = []
    with EmbeddingCache.in_working_dir(tmp_path) as cache:
        table, stats = embed_item_table(
            ["p", "q", "r"], FakeEncoder(dim=4), cache, on_progress=lambda d, t: calls.append((d, t))
        )
        assert cache.path == tmp_path / ".cache" / "embeddings" / "embeddings.sqlite"
    assert table.shape == (4, 4) and np.all(table[0] == 0) and np.all(np.abs(table[1:]).sum(axis=1) > 0)
    assert calls[0] == (0, 3) and calls[-1] == (3, 3)


def test_works_without_a_cache(tmp_path):
    encoder = FakeEncoder()
    vectors, stats = embed_texts(["a", "a"], encoder, None)
    assert vectors.shape == (2, 6) and encoder.seen == ["a"] and stats.cached == 0


def test_empty_input_gives_an_empty_matrix(tmp_path):
    with EmbeddingCache(tmp_path) as cache:
        vectors, stats = embed_texts([], FakeEncoder(dim=5), cache)
    assert vectors.shape == (0, 5) and stats.unique == 0


def test_a_file_that_is_not_sqlite_is_reported_by_path(tmp_path):
    (tmp_path / "embeddings.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ValueError, match="embeddings.sqlite: not a usable embedding cache"):
        EmbeddingCache(tmp_path)


WRITER = """
import sys, numpy as np
from engine.semantic.embedding_cache import EmbeddingCache
cache = EmbeddingCache(sys.argv[1])
offset = int(sys.argv[2])
for start in range(0, 600, 20):  # many small transactions, overlapping with the other writer's keys
    cache.put_many("fp", ((f"k{i}", np.full(8, i, np.float32)) for i in range(offset + start, offset + start + 20)))
cache.close()
"""


def test_two_processes_can_write_at_once(tmp_path):
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(off)], cwd=ROOT, stderr=subprocess.PIPE)
        for off in (0, 300)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    with EmbeddingCache(tmp_path) as cache:
        assert cache.count("fp") == 900
        found = cache.get_many("fp", ["k0", "k450", "k899"])
    assert found["k450"][0] == 450.0 and len(found) == 3


def test_text_key_is_sha256_of_utf8():
    assert text_key("é") == hashlib.sha256("é".encode("utf-8")).hexdigest()
