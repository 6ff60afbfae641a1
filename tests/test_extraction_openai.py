"""OpenAI-compatible backend: request shape, concurrency, retries and format fallback, against a scripted server.

The server here is a small http.server speaking the chat-completions shape: it answers from the request, fails
on demand and rejects json_schema on demand, which a real server cannot be made to do. The real-server test
(llama-cpp-python's own server on the tiny GGUF) is test_extraction_llama_server.py.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from engine.data.dataset import SequenceDataset
from engine.extraction import ExtractionCache, extract_items, load_prompt
from engine.extraction.backends import BackendError, create_backend
from engine.extraction.backends.openai_compat import OpenAICompatBackend


class FakeChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeChatHandler)
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0  # answer this many requests with HTTP 503 first
        self.reject_json_schema: int | None = None  # HTTP status to refuse json_schema with, if any
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeChatHandler(BaseHTTPRequestHandler):
    server: FakeChatServer

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        import time

        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv = self.server
        with srv.lock:
            srv.requests.append(body)
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
            failing = srv.fail_next > 0
            srv.fail_next -= failing
        time.sleep(0.05)
        with srv.lock:
            srv.in_flight -= 1
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": "not found"})
        if failing:
            return self._send(503, {"error": "overloaded"})
        if srv.reject_json_schema and body["response_format"]["type"] == "json_schema":
            return self._send(srv.reject_json_schema, {"error": "response_format json_schema is not supported"})
        user = body["messages"][-1]["content"]
        title = user.rsplit("Movie: ", 1)[1].splitlines()[0]
        answer = {"mood": "dark", "audience": "adults", "themes": [title.lower()]}
        self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": json.dumps(answer)}}]})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[FakeChatServer]:
    srv = FakeChatServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def dataset(n: int) -> SequenceDataset:
    texts = [{}] + [{"title": f"Film {i}", "genres": ["Drama"]} for i in range(1, n + 1)]
    return SequenceDataset("toy", ["[PAD]"] + [str(i) for i in range(1, n + 1)], ["u"], [np.arange(1, n + 1)], texts, "fp")


def test_extraction_through_a_server_keeps_order_and_bounds_concurrency(server: FakeChatServer, tmp_path: Path) -> None:
    prompt = load_prompt("movies")
    backend = create_backend("openai", "smollm2", server.url, concurrency=3)
    with ExtractionCache(tmp_path / "c.sqlite") as cache:
        report = extract_items(dataset(12), prompt, backend, cache, batch_size=12)
    assert (report.extracted, report.failed) == (12, 0)
    first = server.requests[0]
    assert first["model"] == "smollm2" and first["temperature"] == 0
    assert first["response_format"]["type"] == "json_schema"
    assert first["response_format"]["json_schema"]["schema"] == prompt.json_schema()
    assert first["messages"][0] == {"role": "system", "content": prompt.system}
    answers = backend.generate([prompt.render({"title": f"Film {i}"}) for i in range(6)], prompt.json_schema())
    assert [json.loads(a)["themes"] for a in answers] == [[f"film {i}"] for i in range(6)]
    assert 1 < server.max_in_flight <= 3


# 400/422 from most servers; llama-cpp-python's reports its validation errors as 500, which must not be retried.
@pytest.mark.parametrize("refusal", [400, 422, 500])
def test_retries_5xx_and_falls_back_to_json_object(server: FakeChatServer, refusal: int) -> None:
    backend = OpenAICompatBackend(server.url + "/v1", "m", concurrency=1, backoff=0.01)
    server.fail_next = 2
    server.reject_json_schema = refusal
    prompt = load_prompt("movies")
    [answer] = backend.generate([prompt.render({"title": "Heat"})], prompt.json_schema())
    assert json.loads(answer)["themes"] == ["heat"]
    assert [r["response_format"]["type"] for r in server.requests] == ["json_schema"] * 3 + ["json_object"]
    assert server.requests[-1]["response_format"]["schema"] == prompt.json_schema()  # llama-cpp-python's server uses it
    backend.generate([prompt.render({"title": "Heat"})], prompt.json_schema())
    assert server.requests[-1]["response_format"]["type"] == "json_object"  # the fallback is remembered


def test_persistent_5xx_and_unreachable_servers_are_clear_errors(server: FakeChatServer) -> None:
    backend = OpenAICompatBackend(server.url, "m", retries=2, backoff=0.01)
    server.fail_next = 10
    with pytest.raises(BackendError, match="giving up after 3 attempts: HTTP 503"):
        backend.generate(["Movie: x"], {})
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    with pytest.raises(BackendError, match=f"127.0.0.1:{port}.*cannot reach the LLM server"):
        OpenAICompatBackend(f"http://127.0.0.1:{port}", "m", retries=0).generate(["Movie: x"], {})
    with pytest.raises(BackendError, match="expected an http"):
        OpenAICompatBackend("localhost:8000", "m")
