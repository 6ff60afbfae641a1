"""The extraction driver and its SQLite cache: resume after a stop or a kill, failures kept with raw output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from engine.data.dataset import SequenceDataset
from engine.events import Status
from engine.extraction.cache import ExtractionCache, item_text_hash
from engine.extraction.extractor import ExtractionProgress, cached_attributes, extract_items
from engine.extraction.prompts import PromptError, load_prompt, save_prompt_version

ROOT = Path(__file__).resolve().parents[1]


def make_dataset(n: int = 10, duplicate_last: bool = False) -> SequenceDataset:
    texts = [{}] + [{"title": f"Movie {i} ({1980 + i})", "year": str(1980 + i), "genres": ["Drama"]} for i in range(1, n + 1)]
    if duplicate_last:
        texts[n] = dict(texts[n - 1])
    return SequenceDataset(
        name="toy", item_ids=["[PAD]"] + [f"m{i}" for i in range(1, n + 1)], user_ids=["u0"],
        sequences=[np.arange(1, n + 1, dtype=np.int64)], item_text=texts, fingerprint="toy",
    )


class FakeBackend:
    """Answers from the title; items whose title contains a 'bad' number answer non-JSON until told their error."""

    fingerprint = "fake:1"

    def __init__(self, bad: set[int] = frozenset(), fix_on_retry: bool = False) -> None:
        self.bad, self.fix_on_retry, self.calls = set(bad), fix_on_retry, []

    def generate(self, prompts, json_schema, system=""):
        assert json_schema["required"] == ["mood", "audience", "themes"]
        self.calls.append(list(prompts))
        answers = []
        for p in prompts:
            number = int(p.rsplit("Movie: Movie ", 1)[1].split(" ")[0])
            retried = "previous answer was invalid" in p
            if number in self.bad and not (retried and self.fix_on_retry):
                answers.append(f"I think movie {number} is nice")
            else:
                answers.append(json.dumps({"mood": "dark", "audience": "adults", "themes": [f"t{number}"]}))
        return answers

    def close(self):
        pass


def test_extracts_validates_and_caches(tmp_path: Path) -> None:
    dataset, prompt = make_dataset(), load_prompt("movies")
    events, progress = [], []
    with ExtractionCache(tmp_path / "c.sqlite") as cache:
        backend = FakeBackend()
        report = extract_items(dataset, prompt, backend, cache, batch_size=4, on_event=events.append, on_progress=progress.append)
        assert (report.extracted, report.from_cache, report.failed, report.total) == (10, 0, 0, 10)
        assert [len(c) for c in backend.calls] == [4, 4, 2]
        assert any(isinstance(e, Status) and "items/s" in e.message for e in events)
        assert isinstance(progress[-1], ExtractionProgress) and progress[-1].done == 10 and progress[-1].eta_seconds == 0
        attributes = cached_attributes(dataset, prompt, backend.fingerprint, cache)
        assert attributes[7] == {"mood": "dark", "audience": "adults", "themes": ["t7"]}
        again = extract_items(dataset, prompt, backend, cache)
        assert (again.extracted, again.from_cache) == (0, 10) and len(backend.calls) == 3
        assert cache.counts(backend.fingerprint, prompt.content_hash) == {"ok": 10, "failed": 0}


def test_resume_after_stop_extracts_only_the_missing_items(tmp_path: Path) -> None:
    dataset, prompt = make_dataset(), load_prompt("movies")
    with ExtractionCache(tmp_path / "c.sqlite") as cache:
        first = FakeBackend()
        stop_after = iter([False, False, True])
        report = extract_items(dataset, prompt, first, cache, batch_size=3, should_stop=lambda: next(stop_after))
        assert report.interrupted and report.extracted == 6
        second = FakeBackend()
        resumed = extract_items(dataset, prompt, second, cache, batch_size=3)
        asked = [p.rsplit("Movie: ", 1)[1].split(" (")[0] for call in second.calls for p in call]
        assert asked == ["Movie 7", "Movie 8", "Movie 9", "Movie 10"]
        assert (resumed.extracted, resumed.from_cache, resumed.interrupted) == (4, 6, False)


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
    with ExtractionCache(tmp_path / "c.sqlite") as cache, pytest.raises(PromptError, match=r"p.toml: unknown placeholder \{shade\}"):
        extract_items(dataset, load_prompt(bad), backend, cache)
    assert backend.calls == []
    with ExtractionCache(tmp_path / "c.sqlite") as cache, pytest.raises(IndexError, match="outside 1..3"):
        extract_items(dataset, load_prompt("movies"), backend, cache, item_indices=[4])


KILLED_RUN = """
import sys, time, json
sys.path.insert(0, {root!r})
sys.path.insert(0, {tests!r})
from test_extraction_cache import FakeBackend, make_dataset
from engine.extraction.cache import ExtractionCache
from engine.extraction.extractor import extract_items
from engine.extraction.prompts import load_prompt

class SlowFake(FakeBackend):
    def generate(self, prompts, json_schema, system=""):
        out = super().generate(prompts, json_schema, system)
        print("batch", flush=True)
        time.sleep(0.3)
        return out

extract_items(make_dataset(40), load_prompt("movies"), SlowFake(), ExtractionCache({db!r}), batch_size=2)
"""


def test_a_killed_run_keeps_committed_batches(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    script = KILLED_RUN.format(root=str(ROOT), tests=str(ROOT / "tests"), db=str(db))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3):
            assert proc.stdout.readline().strip() == "batch"
        time.sleep(0.5)  # the third batch is committed while the fourth is generating
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    dataset, prompt = make_dataset(40), load_prompt("movies")
    with ExtractionCache(db) as cache:
        kept = cache.counts()["ok"]
        assert 6 <= kept < 40
        backend = FakeBackend()
        report = extract_items(dataset, prompt, backend, cache, batch_size=50)
        assert report.from_cache == kept and report.extracted == 40 - kept
        assert sum(len(c) for c in backend.calls) == 40 - kept
    assert item_text_hash({"a": 1, "b": [2]}) == item_text_hash({"b": [2], "a": 1})
