"""Shipped extractions (prompts/extractions/*.jsonl): import fills only what the cache lacks, a bad line is named
with its file and line and imports nothing, and export → import gives back the same answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.data import DataError
from engine.data.dataset import SequenceDataset
from engine.extraction import ExtractionCache, cached_attributes, item_text_hash, load_prompt
from engine.extraction.cache import ExtractionRecord
from engine.extraction.shipped import (
    SHIPPED_DIR,
    ShippedExtractionsError,
    export_extractions,
    import_shipped_extractions,
    read_shipped_extractions,
)

MODEL, PROMPT_HASH = "llama.cpp:test.gguf:1:abc:greedy", "p" * 64
TEXTS = [{"title": f"Film {i}", "genres": ["Drama"]} for i in range(3)]


def row(i: int, mood: str = "dark") -> dict:
    attributes = {"mood": mood}
    return {
        "item_id": str(i),
        "item_hash": item_text_hash(TEXTS[i]),
        "attributes": attributes,
        "raw_output": json.dumps(attributes),
        "status": "ok",
        "attempts": 1,
        "error": None,
    }


def write_shipped(path: Path, rows: list, model: str = MODEL, prompt_hash: str = PROMPT_HASH) -> Path:
    header = {
        "kirec_extractions": 1,
        "model": model,
        "prompt_hash": prompt_hash,
        "prompt_name": "movies",
        "dataset": "d",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) if not isinstance(r, str) else r for r in [header, *rows]) + "\n")
    return path


def cache_rows(cache: ExtractionCache) -> dict[str, dict]:
    found = cache.lookup(MODEL, PROMPT_HASH, [item_text_hash(t) for t in TEXTS])
    return {h: r.attributes for h, r in found.items()}


def test_import_of_three_rows_into_a_cache_holding_one_adds_two_and_keeps_the_one(tmp_path):
    folder = tmp_path / "shipped"
    write_shipped(folder / "a.jsonl", [row(0), row(1), row(2)])
    write_shipped(folder / "other-model.jsonl", [row(0, "other")], model="another model")
    with ExtractionCache(tmp_path / "c.sqlite") as cache:
        cache.put_many(
            MODEL,
            PROMPT_HASH,
            "movies",
            [ExtractionRecord("1", item_text_hash(TEXTS[1]), {"mood": "mine"}, '{"mood":"mine"}', "ok", 1)],
        )
        assert import_shipped_extractions(cache, MODEL, PROMPT_HASH, folder) == 2
        rows = cache_rows(cache)
        assert len(rows) == 3
        assert rows[item_text_hash(TEXTS[1])] == {"mood": "mine"}  # what the cache had is not overwritten
        assert rows[item_text_hash(TEXTS[0])] == rows[item_text_hash(TEXTS[2])] == {"mood": "dark"}
        assert import_shipped_extractions(cache, MODEL, PROMPT_HASH, folder) == 0  # nothing left to add
        assert import_shipped_extractions(cache, MODEL, "another prompt", folder) == 0


@pytest.mark.parametrize(
    "bad, problem",
    [
        ("{not json", "not JSON"),
        ('["a", "list"]', "expected a JSON object"),
        (json.dumps({k: v for k, v in row(2).items() if k != "item_hash"}), "missing item_hash"),
        (json.dumps({**row(2), "status": "maybe"}), "status 'maybe'"),
    ],
)
def test_a_bad_row_is_named_by_file_and_line_and_nothing_is_imported(tmp_path, bad, problem):
    folder = tmp_path / "shipped"
    write_shipped(folder / "a-good.jsonl", [row(0)])  # read first (sorted), yet not imported either
    broken = write_shipped(folder / "b-broken.jsonl", [row(1), bad])
    with ExtractionCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(ShippedExtractionsError) as info:
            import_shipped_extractions(cache, MODEL, PROMPT_HASH, folder)
        assert cache_rows(cache) == {}
    message = str(info.value)
    assert message.startswith(f"{broken} line 3: ") and problem in message and "\n" not in message
    assert isinstance(info.value, DataError)  # the CLI reports it in one line with exit 2


def test_a_file_without_a_header_is_named(tmp_path):
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "x.jsonl").write_text(json.dumps(row(0)) + "\n")
    with (
        ExtractionCache(tmp_path / "c.sqlite") as cache,
        pytest.raises(ShippedExtractionsError, match=r"x\.jsonl line 1: not a kirec extractions header"),
    ):
        import_shipped_extractions(cache, MODEL, PROMPT_HASH, folder)


def test_export_then_import_gives_the_same_answers(tmp_path):
    prompt = load_prompt("movies")
    ds = SequenceDataset("d", ["[PAD]", "10", "11", "12"], ["u"], [np.array([1, 2, 3])], [{}, *TEXTS], "fp")
    with ExtractionCache(tmp_path / "first.sqlite") as cache:
        cache.put_many(
            MODEL,
            prompt.content_hash,
            prompt.name,
            [
                ExtractionRecord("10", item_text_hash(TEXTS[0]), {"mood": "dark"}, '{"mood":"dark"}', "ok", 1),
                ExtractionRecord("12", item_text_hash(TEXTS[2]), None, "junk", "failed", 2, "not JSON"),
            ],
        )
        assert export_extractions(cache, ds, prompt, MODEL, tmp_path / "out" / "d.movies.jsonl") == 2
        before = cached_attributes(ds, prompt, MODEL, cache)
    header, records = read_shipped_extractions(tmp_path / "out" / "d.movies.jsonl")
    assert (header["model"], header["prompt_hash"], header["prompt_name"]) == (MODEL, prompt.content_hash, "movies")
    assert sorted((r.item_id, r.status) for r in records) == [("10", "ok"), ("12", "failed")]
    with ExtractionCache(tmp_path / "second.sqlite") as cache:
        assert import_shipped_extractions(cache, MODEL, prompt.content_hash, tmp_path / "out") == 2
        assert cached_attributes(ds, prompt, MODEL, cache) == before == {1: {"mood": "dark"}}
        failed = cache.lookup(MODEL, prompt.content_hash, [item_text_hash(TEXTS[2])])[item_text_hash(TEXTS[2])]
        assert (failed.status, failed.raw_output, failed.error, failed.attempts) == ("failed", "junk", "not JSON", 2)


def test_the_shipped_files_of_the_project_read_cleanly():
    files = sorted(SHIPPED_DIR.glob("*.jsonl"))
    assert files
    for path in files:
        header, records = read_shipped_extractions(path)
        assert header["model"] and len(header["prompt_hash"]) == 64 and records
        assert len({r.item_hash for r in records}) == len(records)
