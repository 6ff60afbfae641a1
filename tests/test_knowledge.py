"""Knowledge injection through the one pipeline: every method and fusion mode trains, records what it used,
and the shipped extractions of the embedded default match what the real LLM extracts now."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import load_config
from engine.pipeline import run_experiment
from engine.store import open_store

TINY = {"model.hidden_size": 16, "model.max_len": 10, "train.batch_size": 32, "train.device": "cpu", "train.epochs": 1,
        "knowledge.embed_text": "raw"}


@pytest.mark.parametrize(
    "method, fusion, reduction",
    [("kirec", "gate", "pca"), ("kirec", "add", "pca-whiten"), ("kirec", "concat", "random"),
     ("kirec", "gate", "adapter-mlp"), ("init", "gate", "pca"), ("semantic-only", "gate", "adapter-linear")],
)
def test_every_method_trains_and_records_its_knowledge(tiny_dataset, tmp_path, method, fusion, reduction):
    cfg = load_config(flags={**TINY, "data.dataset": str(tiny_dataset), "db": str(tmp_path / "runs.db"),
                             "knowledge.method": method, "knowledge.fusion": fusion, "knowledge.reduction": reduction})
    result = run_experiment(cfg, cwd=tmp_path)
    assert result.status == "FINISHED"
    assert 0.0 <= result.test["NDCG@10"] <= result.test["HR@10"] <= 1.0
    params = open_store(tmp_path / "runs.db").get_run(result.run_id).params
    assert params["knowledge.method"] == method and params["knowledge.reduction"] == reduction
    assert int(params["knowledge.embed_encoded"]) + int(params["knowledge.embed_cached"]) > 0
    # a second run reuses the embedding cache instead of encoding again
    again = run_experiment(cfg, cwd=tmp_path)
    assert open_store(tmp_path / "runs.db").get_run(again.run_id).params["knowledge.embed_encoded"] == "0"


def test_id_method_has_fewer_parameters_than_kirec(tiny_dataset, tmp_path):
    counts = {}
    for method in ("id", "kirec"):
        cfg = load_config(flags={**TINY, "data.dataset": str(tiny_dataset), "db": str(tmp_path / "runs.db"),
                                 "knowledge.method": method})
        run_id = run_experiment(cfg, cwd=tmp_path).run_id
        counts[method] = int(open_store(tmp_path / "runs.db").get_run(run_id).params["model.parameters"])
    assert counts["kirec"] > counts["id"]  # the gate adds weights; the frozen semantic table adds none


def test_a_representation_note_reaches_the_events_as_one_status(tiny_dataset, tmp_path):
    from engine.events import Status

    cfg = load_config(flags={**TINY, "data.dataset": str(tiny_dataset), "db": str(tmp_path / "runs.db"),
                             "knowledge.method": "init", "knowledge.freeze_semantic": True})
    events = []
    run_experiment(cfg, on_event=events.append, cwd=tmp_path)
    notes = [e.message for e in events if isinstance(e, Status) and e.message.startswith("knowledge:")]
    assert notes == ["knowledge: freeze_semantic does not apply to 'init': the initialised ID table always trains"]


SHIPPED = Path(__file__).resolve().parents[1] / "prompts" / "extractions"


@pytest.mark.slow
def test_shipped_default_extractions_match_a_fresh_extraction(shared_data, tmp_path):
    """The shipped answers are what the real quantized SmolLM2 answers today for the same items.

    llama.cpp's batched decoding is exact only for the same batch composition, so the sample is the first chunk the
    shipping run extracted: items 1..64 in one chunk of 64, with the backend's default parallelism and threads.
    """
    from engine.data.preprocess import load_dataset
    from engine.extraction import ExtractionCache, cached_attributes, create_backend, default_prompt_for, extract_items

    files = sorted(SHIPPED.glob("ml-latest-small*.jsonl"))
    assert files, "the default dataset's extractions are shipped"
    header = json.loads(files[0].read_text().splitlines()[0])
    cfg = load_config(flags={"data.dataset": "ml-latest-small", "data.data_root": str(shared_data)})
    dataset = load_dataset(cfg.data, cwd=tmp_path)
    prompt = default_prompt_for(dataset.name)
    backend = create_backend("llama-cpp")
    assert (backend.fingerprint, prompt.content_hash) == (header["model"], header["prompt_hash"])
    shipped = {}
    for line in files[0].read_text().splitlines()[1:]:
        row = json.loads(line)
        shipped[row["item_id"]] = row
    assert len(shipped) == dataset.num_items
    sample = list(range(1, 65))
    with ExtractionCache(tmp_path / "fresh.sqlite") as cache:
        extract_items(dataset, prompt, backend, cache, item_indices=sample, batch_size=64)
        fresh = cached_attributes(dataset, prompt, backend.fingerprint, cache, sample)
    mismatched = [dataset.title(i) for i in sample if fresh.get(i) != shipped[dataset.item_ids[i]]["attributes"]]
    assert mismatched == []
