"""The extraction driver and its SQLite cache: resume after a stop or a kill, failures kept with raw output."""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.data.dataset import SequenceDataset
from engine.events import Status
from engine.extraction.backends.base import Refusal
from engine.extraction.cache import ExtractionCache, item_text_hash
from engine.extraction.extractor import ExtractionProgress, cached_attributes, extract_items
from engine.extraction.prompts import PromptError, load_prompt, save_prompt_version

ROOT = Path(__file__).resolve().parents[2]
LINE_DEADLINE = 120  # seconds for a child's next line: generous, for a loaded 2-core machine


def make_dataset(n: int = 10, duplicate_last: bool = False) -> SequenceDataset:
    texts = [{}] + [
        {"title": f"Movie {i} ({1980 + i})", "year": str(1980 + i), "genres": ["Drama"]} for i in range(1, n + 1)
    ]
    if duplicate_last:
        texts[n] = dict(texts[n - 1])
    return SequenceDataset(
        name="toy",
        item_ids=["[PAD]"] + [f"m{i}" for i in range(1, n + 1)],
        user_ids=["u0"],
        sequences=[np.arange(1, n + 1, dtype=np.int64)],
        item_text=texts,
        fingerprint="toy",
    )


def movie_number(prompt: str) -> int:
    return int(prompt.rsplit("Movie: Movie ", 1)[1].split(" ")[0])


class BatchOnlyFake:
    """Answers from the title, all at once when the batch is done (a backend without `on_answer`); items whose
    title holds a 'bad' number answer non-JSON until told their error, 'refused' ones are too long."""

    fingerprint = "fake:1"

    def __init__(
        self, bad: set[int] = frozenset(), fix_on_retry: bool = False, refused: set[int] = frozenset()
    ) -> None:
        self.bad, self.fix_on_retry, self.refused, self.calls = set(bad), fix_on_retry, set(refused), []

    def answer(self, prompt: str):
        number = movie_number(prompt)
        retried = "previous answer was invalid" in prompt
        if number in self.refused:
            return Refusal(f"item text too long for the prompt: movie {number}")
        if number in self.bad and not (retried and self.fix_on_retry):
            return f"I think movie {number} is nice"
        return json.dumps({"mood": "dark", "audience": "adults", "themes": [f"t{number}"]})

    def generate(self, prompts, json_schema, system=""):
        assert json_schema["required"] == ["mood", "audience", "themes"]
        self.calls.append(list(prompts))
        return [self.answer(p) for p in prompts]

    def close(self):
        pass


class FakeBackend(BatchOnlyFake):
    """The same answers, each handed back as it is 'decoded', like the real backends."""

    def generate(self, prompts, json_schema, system="", on_answer=None):
        self.calls.append(list(prompts))
        answers = []
        for index, prompt in enumerate(prompts):
            answers.append(self.answer(prompt))
            if on_answer is not None:
                on_answer(index, answers[-1])
        return answers


def test_extracts_validates_and_caches(tmp_path: Path) -> None:
    dataset, prompt = make_dataset(), load_prompt("movies")
    events, progress = [], []
    with ExtractionCache(tmp_path / "c.sqlite") as cache:
        backend = BatchOnlyFake()  # no on_answer: its answers are stored when each batch returns
        report = extract_items(
            dataset, prompt, backend, cache, batch_size=4, on_event=events.append, on_progress=progress.append
        )
        assert (report.extracted, report.from_cache, report.failed, report.total) == (10, 0, 0, 10)
        assert [len(c) for c in backend.calls] == [4, 4, 2]
        assert any(isinstance(e, Status) and "items/s" in e.message for e in events)
        assert (
            isinstance(progress[-1], ExtractionProgress) and progress[-1].done == 10 and progress[-1].eta_seconds == 0
        )
        attributes = cached_attributes(dataset, prompt, backend.fingerprint, cache)
        assert attributes[7] == {"mood": "dark", "audience": "adults", "themes": ["t7"]}
        again = extract_items(dataset, prompt, backend, cache)
        assert (again.extracted, again.from_cache) == (0, 10) and len(backend.calls) == 3
        assert cache.counts(backend.fingerprint, prompt.content_hash) == {"ok": 10, "failed": 0}


def test_a_stop_ends_the_batch_after_the_answer_being_stored_and_a_resume_asks_only_the_rest(tmp_path: Path) -> None:
    dataset, prompt = make_dataset(), load_prompt("movies")
    with ExtractionCache(tmp_path / "c.sqlite") as cache:
        stop = threading.Event()

        def progress(p: ExtractionProgress) -> None:
            if p.done == 6:
                stop.set()

        report = extract_items(
            dataset, prompt, FakeBackend(), cache, batch_size=4, should_stop=stop.is_set, on_progress=progress
        )
        # the stop came with the 6th answer, in the middle of the second batch of 4: nothing after it was stored
        assert report.interrupted and report.extracted == 6 and cache.counts()["ok"] == 6
        second = FakeBackend()
        resumed = extract_items(dataset, prompt, second, cache, batch_size=3)
        assert [movie_number(p) for call in second.calls for p in call] == [7, 8, 9, 10]
        assert (resumed.extracted, resumed.from_cache, resumed.interrupted) == (4, 6, False)


def test_a_refused_prompt_is_stored_as_failed_at_once_without_a_retry(tmp_path: Path) -> None:
    dataset, prompt = make_dataset(4), load_prompt("movies")
    with ExtractionCache(tmp_path / "c.sqlite") as cache:
        backend = FakeBackend(refused={2})
        report = extract_items(dataset, prompt, backend, cache, max_attempts=3)
        assert (report.extracted, report.failed) == (3, 1) and len(backend.calls) == 1
        [failure] = report.failures
        assert (failure.item_id, failure.attempts, failure.raw_output) == ("m2", 1, "")
        assert failure.error == "item text too long for the prompt: movie 2"
        [stored] = cache.failures(backend.fingerprint, prompt.content_hash)
        assert (stored.item_id, stored.error) == ("m2", failure.error)


def test_failures_are_stored_with_raw_output_and_reported(tmp_path: Path) -> None:
    dataset, prompt = make_dataset(), load_prompt("movies")
    with ExtractionCache(tmp_path / "c.sqlite") as cache:
        backend = FakeBackend(bad={3, 5})
        report = extract_items(dataset, prompt, backend, cache, max_attempts=2)
        assert (report.extracted, report.failed) == (8, 2)
        assert {f.item for f in report.failures} == {3, 5}
        assert report.failures[0].raw_output.startswith("I think movie") and report.failures[0].attempts == 2
        assert "no JSON object" in report.failures[0].error
        # the retry re-asked only the two bad items, with the error appended (greedy decoding would repeat itself)
        assert len(backend.calls[1]) == 2 and all("previous answer was invalid" in p for p in backend.calls[1])
        stored = cache.failures(backend.fingerprint, prompt.content_hash)
        assert sorted(s.item_id for s in stored) == ["m3", "m5"] and all(s.raw_output for s in stored)
        # a later run reports the cached failures without asking again, unless told to retry them
        later = extract_items(dataset, prompt, FakeBackend(bad={3, 5}), cache)
        assert (later.failed, later.from_cache) == (2, 8)
        fixed = extract_items(dataset, prompt, FakeBackend(bad={3, 5}, fix_on_retry=True), cache, retry_failed=True)
        assert (fixed.extracted, fixed.failed) == (2, 0)
        assert cache.counts(backend.fingerprint, prompt.content_hash) == {"ok": 10, "failed": 0}


def test_identical_texts_are_asked_once_and_history_spans_prompt_versions(tmp_path: Path) -> None:
    dataset = make_dataset(4, duplicate_last=True)
    prompt = load_prompt("movies")
    with ExtractionCache(tmp_path / "c.sqlite") as cache:
        backend = FakeBackend()
        report = extract_items(dataset, prompt, backend, cache)
        assert report.extracted == 4 and sum(len(c) for c in backend.calls) == 3
        copy = tmp_path / "movies.toml"
        copy.write_text(prompt.text)
        v2 = load_prompt(save_prompt_version(load_prompt(copy), prompt.text.replace("film expert", "film critic")))
        extract_items(dataset, v2, backend, cache, item_indices=[2])
        history = cache.item_history("m2")
        assert {h.prompt_hash for h in history} == {prompt.content_hash, v2.content_hash}
        assert history[0].prompt_name == "movies" and history[0].attributes["themes"] == ["t2"]
        assert cache.item_history("m2", item_text_hash(dataset.item_text[2])) == history
        assert cache.item_history("m2", item_text_hash({"title": "another dataset's m2"})) == []


def test_prompt_is_validated_against_the_dataset_before_any_call(tmp_path: Path) -> None:
    dataset = make_dataset(3)
    products = load_prompt("products")
    text = products.text.replace("Brand: {brand}", "Brand: {brand}\nShade: {shade}")
    bad = tmp_path / "p.toml"
    bad.write_text(text)
    backend = FakeBackend()
    with (
        ExtractionCache(tmp_path / "c.sqlite") as cache,
        pytest.raises(PromptError, match=r"p.toml: unknown placeholder \{shade\}"),
    ):
        extract_items(dataset, load_prompt(bad), backend, cache)
    assert backend.calls == []
    with ExtractionCache(tmp_path / "c.sqlite") as cache, pytest.raises(IndexError, match="outside 1..3"):
        extract_items(dataset, load_prompt("movies"), backend, cache, item_indices=[4])


class LineReader:
    """A child's stdout, line by line, each read bounded by a deadline (a reader thread; no sleeps)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, wanted: str, deadline: float = LINE_DEADLINE) -> list[str]:
        seen = []
        while True:
            try:
                line = self.lines.get(timeout=deadline)
            except queue.Empty:
                pytest.fail(f"no {wanted!r} from the child within {deadline}s; it said: {seen[-5:]}")
            if line is None:
                pytest.fail(f"the child ended before saying {wanted!r}; it said: {seen[-5:]}")
            seen.append(line)
            if line == wanted:
                return seen


# A child extracting with the default batch of 32 through the backend `setup` makes. The backend's answers are relayed
# to the driver, which stores each before the relay announces it; after the Nth the relay waits on its stdin, which
# nobody writes, and the test kills the child there, knowing what was handed back: a driver that stores answers only
# when a batch ends, or a backend that hands them back only then, cannot pass.
KILLED_RUN = """
import sys
sys.path[:0] = [{root!r}, {tests!r}]
from test_extraction_cache import make_dataset
from engine.extraction.cache import ExtractionCache
from engine.extraction.extractor import extract_items
from engine.extraction.prompts import load_prompt
{setup}
class Announcing:
    fingerprint = backend.fingerprint
    answered = 0
    def generate(self, prompts, json_schema, system="", on_answer=None):
        def relay(index, answer):
            on_answer(index, answer)  # the driver stores (or queues for a retry) before this returns
            Announcing.answered += 1
            print(f"answered {{Announcing.answered}}", flush=True)
            if Announcing.answered == {stop_at}:
                sys.stdin.readline()
        return backend.generate(prompts, json_schema, system, on_answer=relay)
extract_items(make_dataset({n}), load_prompt("movies"), Announcing(), ExtractionCache({db!r}))
print("finished", flush=True)
"""


def kill_after_stored(db: Path, setup: str, n_items: int, stop_at: int, env: dict | None = None) -> None:
    """Run KILLED_RUN with the `backend` that `setup` defines, wait for its `stop_at`th answer, kill -9 it."""
    script = KILLED_RUN.format(
        root=str(ROOT), tests=str(Path(__file__).resolve().parent), setup=setup, n=n_items, stop_at=stop_at, db=str(db)
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        LineReader(proc).wait_for(f"answered {stop_at}")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def stored_rows(db: Path) -> list[tuple[str, str, int]]:
    """(item_id, status, attempts) of every row, read straight from the file."""
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute("SELECT item_id, status, attempts FROM extractions"))


@pytest.mark.parametrize("stop_at", [5, 33])
def test_a_killed_run_keeps_every_answer_stored_before_the_kill(tmp_path: Path, stop_at: int) -> None:
    """Answers are stored as they arrive, not per batch: killed at the 5th answer of a 32-item batch, or at the retry
    of item 3 that opens the second batch (32 + 1 answers), the cache holds exactly the valid answers handed back."""
    db = tmp_path / "c.sqlite"
    setup = "from test_extraction_cache import FakeBackend\nbackend = FakeBackend(bad={3}, fix_on_retry=True)"
    kill_after_stored(db, setup, 40, stop_at)
    rows = stored_rows(db)
    if stop_at == 5:
        assert rows == sorted((f"m{i}", "ok", 1) for i in (1, 2, 4, 5))  # m3's invalid answer awaits its retry
    else:
        assert rows == sorted([(f"m{i}", "ok", 1) for i in range(1, 33) if i != 3] + [("m3", "ok", 2)])
    kept = len(rows)
    dataset, prompt = make_dataset(40), load_prompt("movies")
    with ExtractionCache(db) as cache:
        backend = FakeBackend()
        report = extract_items(dataset, prompt, backend, cache)
        assert report.from_cache == kept and report.extracted == 40 - kept
        assert sum(len(c) for c in backend.calls) == 40 - kept
    rows = stored_rows(db)
    assert len(rows) == 40 and len({r[0] for r in rows}) == 40  # every item once, no duplicate row
    assert item_text_hash({"a": 1, "b": [2]}) == item_text_hash({"b": [2], "a": 1})
