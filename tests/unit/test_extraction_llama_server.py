"""The OpenAI-compatible backend against a real server: llama-cpp-python's own (`python -m llama_cpp.server`),
serving the tiny GGUF the tests write, in a subprocess on a free local port.

This is what catches a request shape a real server refuses: llama-cpp-python's server answers OpenAI's
`json_schema` response format with an HTTP 500 validation error and constrains decoding with `json_object` plus a `schema` instead.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

pytest.importorskip("gguf")

from engine.data.dataset import SequenceDataset  # noqa: E402
from engine.extraction import ExtractionCache, extract_items, load_prompt  # noqa: E402
from engine.extraction.backends import create_backend  # noqa: E402
from engine.extraction.schema import parse_json_object  # noqa: E402
from engine.extraction.tiny_gguf import write_tiny_gguf  # noqa: E402

STARTUP_SECONDS = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model),
                "--model_alias",
                "tiny",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                "--n_threads",
                "1",
                "--chat_format",
                "chatml",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer within {STARTUP_SECONDS}s: {log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def dataset(n: int) -> SequenceDataset:
    texts = [{}] + [{"title": f"Film {i} ({1990 + i})", "genres": ["Drama"]} for i in range(1, n + 1)]
    return SequenceDataset(
        "toy", ["[PAD]"] + [str(i) for i in range(1, n + 1)], ["u"], [np.arange(1, n + 1)], texts, "fp"
    )


def test_extraction_through_llama_cpp_server_gives_schema_valid_repeatable_answers(
    server_url: str, tmp_path: Path
) -> None:
    prompt = load_prompt("movies")
    backend = create_backend("openai", "tiny", server_url, llm_concurrency=2, max_tokens=400)
    with ExtractionCache(tmp_path / "c.sqlite") as cache:
        report = extract_items(dataset(3), prompt, backend, cache, batch_size=3)
    assert (report.extracted, report.failed) == (3, 0)
    assert backend._format == 1  # json_schema refused (an HTTP 500 naming response_format); json_object + schema taken
    texts = [prompt.render({"title": f"Film {i}", "genres": ["War"]}) for i in range(2)]
    first = backend.generate(texts, prompt.json_schema(), system=prompt.system)
    for raw in first:
        prompt.schema.validate(parse_json_object(raw))  # random weights: only the server's grammar makes these valid
    assert backend.generate(texts, prompt.json_schema(), system=prompt.system) == first  # temperature 0: repeatable


def test_an_item_longer_than_the_servers_context_fails_alone(server_url: str, tmp_path: Path) -> None:
    data = dataset(2)
    data.item_text[2] = {"title": "A very long title " * 284, "genres": ["Drama"]}  # 5,112 characters: over n_ctx 2048
    backend = create_backend("openai", "tiny", server_url, llm_concurrency=2, max_tokens=400)
    with ExtractionCache(tmp_path / "c.sqlite") as cache:
        report = extract_items(data, load_prompt("movies"), backend, cache)
    assert (report.extracted, report.failed) == (1, 1)
    [failure] = report.failures
    assert failure.item_id == "2" and failure.attempts == 1
    assert failure.error.startswith("item text too long for the prompt: the server said HTTP")
