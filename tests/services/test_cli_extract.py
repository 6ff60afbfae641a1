"""`kirec extract` end to end: real llama.cpp decoding on a tiny random GGUF, answers cached as they arrive,
a second call continuing where the first stopped, and --export writing the shipping format."""

from __future__ import annotations

import re

import pytest
from tests.cli_support import invoke  # in the test's folder, where the caches land

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from tests.data_support import write_generic_dataset  # noqa: E402
from engine.extraction import ExtractionCache, default_cache_path, default_prompt_for  # noqa: E402
from engine.extraction.shipped import import_shipped_extractions, read_shipped_extractions  # noqa: E402
from engine.extraction.tiny_gguf import write_tiny_gguf  # noqa: E402

SUMMARY = re.compile(
    r"^tiny / generic \((\w{12})\): (\d+) extracted, (\d+) cached, (\d+) failed, [\d.]+ items/s$", re.MULTILINE
)


def squashed(text: str) -> str:
    return "".join(text.split())  # stderr's console wraps long lines at 80 columns


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("KIREC_TRAIN__NUM_THREADS", "1")  # one llama.cpp thread: no spin-waiting on a busy machine
    dataset = write_generic_dataset(tmp_path / "tiny", users=30, items=10)
    return dataset, write_tiny_gguf(tmp_path / "tiny.gguf")


def test_extract_caches_answers_continues_and_exports(tmp_path, setup):
    dataset, model = setup
    prompt = default_prompt_for("tiny")
    export = tmp_path / "out" / "tiny.products.jsonl"
    first = invoke(
        "extract",
        "--dataset",
        str(dataset),
        "--llm-model",
        str(model),
        "--limit",
        "6",
        "--export",
        str(export),
        cwd=tmp_path,
    )
    assert first.exit_code == 0, first.output
    short_hash, extracted, cached, failed = SUMMARY.search(first.stdout).groups()
    assert short_hash == prompt.content_hash[:12]
    assert int(extracted) + int(failed) == 6 and int(extracted) > 0 and cached == "0"
    with ExtractionCache(default_cache_path(tmp_path)) as cache:
        counts = cache.counts(prompt_hash=prompt.content_hash)
    assert counts["ok"] + counts["failed"] == 6  # every answer stored

    # the export holds exactly the cached answers, in the shipping format
    header, records = read_shipped_extractions(export)
    assert (header["prompt_hash"], header["prompt_name"], header["dataset"]) == (prompt.content_hash, "generic", "tiny")
    assert "tiny.gguf" in header["model"] and len(records) == 6
    assert squashed(f"wrote 6 answers to {export}") in squashed(first.output)
    assert "answer quality (" in first.output  # the quality report follows every extraction

    # run again without a limit: the six are served from the cache, only the other four are asked
    second = invoke("extract", "--dataset", str(dataset), "--llm-model", str(model), cwd=tmp_path)
    assert second.exit_code == 0, second.output
    _, extracted2, cached2, failed2 = SUMMARY.search(second.stdout).groups()
    assert cached2 == extracted and int(extracted2) + int(failed2) - int(failed) == 4

    # what was exported imports into another cache as the same answers
    with ExtractionCache(tmp_path / "elsewhere.sqlite") as other:
        assert import_shipped_extractions(other, header["model"], prompt.content_hash, export.parent) == 6
        hashes = [r.item_hash for r in records]
        imported = other.lookup(header["model"], prompt.content_hash, hashes)
    assert {h: r.attributes for h, r in imported.items()} == {r.item_hash: r.attributes for r in records}


def test_extract_with_an_unknown_extractor_is_a_one_line_usage_error(tmp_path, setup):
    dataset, _ = setup
    result = invoke("extract", "--dataset", str(dataset), "--extractor", "gpt", cwd=tmp_path)
    assert result.exit_code == 2 and "knowledge.extractor (--extractor): unknown 'gpt'" in result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1
    assert not default_cache_path(tmp_path).exists()


def test_extract_with_a_broken_shipped_file_is_a_one_line_usage_error(tmp_path, setup, monkeypatch):
    from engine.extraction import shipped

    dataset, model = setup
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "broken.jsonl").write_text("this is not a header\n")
    monkeypatch.setattr(shipped, "SHIPPED_DIR", folder)
    result = invoke("extract", "--dataset", str(dataset), "--llm-model", str(model), cwd=tmp_path)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert squashed(f"{folder / 'broken.jsonl'} line 1: not a kirec extractions header") in squashed(result.output)
    with ExtractionCache(default_cache_path(tmp_path)) as cache:
        assert cache.counts() == {"ok": 0, "failed": 0}  # nothing was extracted either
