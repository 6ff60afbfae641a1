"""Knowledge injection through the one pipeline: every method and fusion mode trains, records what it used,
and the shipped extractions of the embedded default match what the real LLM extracts now."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import load_config
from engine.pipeline import run_experiment
from engine.store import open_store

TINY = {
    "model.hidden_size": 16,
    "model.max_len": 10,
    "train.batch_size": 32,
    "train.device": "cpu",
    "train.epochs": 1,
    "knowledge.embed_text": "raw",
}


@pytest.mark.parametrize(
    "method, fusion, reduction",
    [
        ("kirec", "gate", "pca"),
        ("kirec", "add", "pca-whiten"),
        ("kirec", "concat", "random"),
        ("kirec", "gate", "adapter-mlp"),
        ("init", "gate", "pca"),
        ("semantic-only", "gate", "adapter-linear"),
    ],
)
def test_every_method_trains_and_records_its_knowledge(tiny_dataset, tmp_path, method, fusion, reduction):
    cfg = load_config(
        flags={
            **TINY,
            "data.dataset": str(tiny_dataset),
            "db": str(tmp_path / "runs.db"),
            "knowledge.method": method,
            "knowledge.fusion": fusion,
            "knowledge.reduction": reduction,
        }
    )
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
        cfg = load_config(
            flags={
                **TINY,
                "data.dataset": str(tiny_dataset),
                "db": str(tmp_path / "runs.db"),
                "knowledge.method": method,
                "knowledge.fusion": "gate",
            }
        )
        run_id = run_experiment(cfg, cwd=tmp_path).run_id
        counts[method] = int(open_store(tmp_path / "runs.db").get_run(run_id).params["model.parameters"])
    assert counts["kirec"] > counts["id"]  # the gate adds weights; the frozen semantic table adds none


def test_a_representation_note_reaches_the_events_as_one_status(tiny_dataset, tmp_path):
    from engine.events import Status

    cfg = load_config(
        flags={
            **TINY,
            "data.dataset": str(tiny_dataset),
            "db": str(tmp_path / "runs.db"),
            "knowledge.method": "init",
            "knowledge.freeze_semantic": True,
        }
    )
    events = []
    run_experiment(cfg, on_event=events.append, cwd=tmp_path)
    notes = [e.message for e in events if isinstance(e, Status) and e.message.startswith("knowledge:")]
    assert notes == ["knowledge: freeze_semantic does not apply to 'init': the initialised ID table always trains"]


def test_the_default_knowledge_path_extracts_records_and_is_served_from_the_cache_the_second_time(tmp_path):
    """The attributes path (kirec, embed_text = attributes, llama.cpp extraction, MiniLM) on a tiny random GGUF:
    `kirec run`'s defaults but the text (raw by default since #10's evidence)."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    from tests.data_support import write_generic_dataset
    from engine.config import KnowledgeConfig
    from engine.extraction import ExtractionCache, default_cache_path, default_prompt_for
    from engine.extraction.tiny_gguf import write_tiny_gguf

    dataset = write_generic_dataset(tmp_path / "tiny", users=30, items=10)  # 10 items: the extraction takes ~2 s
    model = write_tiny_gguf(tmp_path / "tiny.gguf")
    flags = {key: value for key, value in TINY.items() if not key.startswith("knowledge.")}
    cfg = load_config(
        flags={
            **flags,
            "train.num_threads": 1,
            "data.dataset": str(dataset),
            "db": str(tmp_path / "runs.db"),
            "knowledge.llm_model": str(model),
            "knowledge.embed_text": "attributes",
        }
    )
    defaults = KnowledgeConfig()
    assert (
        (cfg.knowledge.method, cfg.knowledge.extractor, cfg.knowledge.encoder)
        == (defaults.method, defaults.extractor, defaults.encoder)
        == ("kirec", "llama-cpp", "minilm")
    )
    assert defaults.embed_text == "raw"
    prompt = default_prompt_for("tiny")

    first = run_experiment(cfg, cwd=tmp_path)
    assert first.status == "FINISHED"
    params = open_store(tmp_path / "runs.db").get_run(first.run_id).params
    assert params["knowledge.prompt"] == prompt.name and params["knowledge.prompt_hash"] == prompt.content_hash
    assert "tiny.gguf" in params["knowledge.extractor_model"]
    extracted, failed = int(params["knowledge.extracted"]), int(params["knowledge.extraction_failed"])
    assert extracted + failed == 10 and extracted > 0 and params["knowledge.extracted_from_cache"] == "0"
    assert first.info["prompt_hash"] == prompt.content_hash and first.info["extracted"] == extracted
    with ExtractionCache(default_cache_path(tmp_path)) as cache:
        counts = cache.counts(prompt_hash=prompt.content_hash)
    assert (counts["ok"], counts["failed"]) == (extracted, failed)  # every answer was stored
    # what was embedded is the rendered attributes (raw text only for items without any), nothing else
    from engine.data.preprocess import load_dataset
    from engine.extraction import cached_attributes
    from engine.semantic.embedding_cache import EmbeddingCache, text_key
    from engine.semantic.encoders import make_encoder
    from engine.semantic.texts import item_texts

    ds = load_dataset(cfg.data, cwd=tmp_path)
    with ExtractionCache(default_cache_path(tmp_path)) as cache:
        found = cached_attributes(ds, prompt, params["knowledge.extractor_model"], cache)
    texts = set(item_texts(ds.item_text, [None] + [found.get(i) for i in range(1, 11)], "attributes").texts)
    assert texts.isdisjoint(item_texts(ds.item_text, None, "raw").texts) or failed
    with EmbeddingCache.in_working_dir(tmp_path) as embeddings:
        assert embeddings.count() == len(texts) == int(params["knowledge.embed_unique"])
        assert len(embeddings.get_many(make_encoder("minilm").fingerprint, [text_key(t) for t in texts])) == len(texts)

    events = []
    second = run_experiment(cfg, on_event=events.append, cwd=tmp_path)
    again = open_store(tmp_path / "runs.db").get_run(second.run_id).params
    assert again["knowledge.extracted"] == "0" and again["knowledge.extracted_from_cache"] == str(extracted)
    assert again["knowledge.extraction_failed"] == str(failed)  # stored failures are reported, not asked again
    assert again["knowledge.prompt_hash"] == prompt.content_hash and again["knowledge.embed_encoded"] == "0"
    assert f"extraction: {extracted} cached, 0 to extract" in " ".join(getattr(e, "message", "") for e in events)


def test_llama_cpp_extraction_runs_on_the_train_thread_count(tmp_path, monkeypatch):
    """llama.cpp's threads spin-wait: on a busy machine train.num_threads = 1 must reach the decoder too."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    import engine.extraction
    from tests.data_support import write_generic_dataset
    from engine.data.preprocess import load_dataset
    from engine.extraction.tiny_gguf import write_tiny_gguf
    from engine.knowledge import extract_attributes

    real = engine.extraction.create_backend
    made = []
    monkeypatch.setattr(engine.extraction, "create_backend", lambda *a, **kw: made.append(real(*a, **kw)) or made[-1])
    model = write_tiny_gguf(tmp_path / "tiny.gguf")
    cfg = load_config(
        flags={
            "data.dataset": str(write_generic_dataset(tmp_path / "tiny", users=10, items=3)),
            "knowledge.llm_model": str(model),
            "train.num_threads": 1,
        }
    )
    _, info = extract_attributes(cfg, load_dataset(cfg.data, cwd=tmp_path), tmp_path)
    assert len(made) == 1 and made[0]._llm.n_threads == 1 and info["extracted"] + info["extraction_failed"] == 3
    made[0].close()
    # a server backend takes no thread count and is not handed one
    assert engine.extraction.create_backend("openai", "some-model", "http://127.0.0.1:9", n_threads=1).fingerprint


def shipped_for_the_tiny_gguf(tmp_path: Path, rows: list[str] | None = None):
    """A tiny dataset, the tiny GGUF, and a shipped file of answers for every item keyed by that model and the
    dataset's default prompt (or the given raw lines), in its own folder."""
    from tests.data_support import write_generic_dataset
    from engine.data.preprocess import load_dataset
    from engine.extraction import create_backend, default_prompt_for, item_text_hash
    from engine.extraction.tiny_gguf import write_tiny_gguf

    dataset = write_generic_dataset(tmp_path / "tiny", users=30, items=10)
    model = write_tiny_gguf(tmp_path / "tiny.gguf")
    cfg = load_config(
        flags={
            **{k: v for k, v in TINY.items() if not k.startswith("knowledge.")},
            "train.num_threads": 1,
            "data.dataset": str(dataset),
            "db": str(tmp_path / "runs.db"),
            "knowledge.llm_model": str(model),
            "knowledge.embed_text": "attributes",
        }
    )
    ds = load_dataset(cfg.data, cwd=tmp_path / "prep")
    prompt = default_prompt_for(ds.name)
    backend = create_backend("llama-cpp", str(model), n_threads=1)
    fingerprint = backend.fingerprint
    backend.close()
    header = {
        "kirec_extractions": 1,
        "model": fingerprint,
        "prompt_hash": prompt.content_hash,
        "prompt_name": prompt.name,
    }
    if rows is None:
        rows = []
        for i in range(1, ds.num_items + 1):
            attributes = {"product_type": f"shipped thing {i}", "area": "face", "features": ["imported"]}
            rows.append(
                json.dumps(
                    {
                        "item_id": ds.item_ids[i],
                        "item_hash": item_text_hash(ds.item_text[i]),
                        "attributes": attributes,
                        "raw_output": json.dumps(attributes),
                        "status": "ok",
                        "attempts": 1,
                        "error": None,
                    }
                )
            )
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "tiny.products.jsonl").write_text("\n".join([json.dumps(header), *rows]) + "\n")
    return cfg, ds, prompt, folder


def test_a_run_imports_the_shipped_answers_instead_of_asking_the_llm(tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    from engine.extraction import shipped
    from engine.semantic.embedding_cache import EmbeddingCache, text_key
    from engine.semantic.texts import render_attribute_text

    cfg, ds, prompt, folder = shipped_for_the_tiny_gguf(tmp_path)
    monkeypatch.setattr(shipped, "SHIPPED_DIR", folder)
    events = []
    result = run_experiment(cfg, on_event=events.append, cwd=tmp_path)
    assert result.status == "FINISHED"
    params = open_store(tmp_path / "runs.db").get_run(result.run_id).params
    assert (
        params["knowledge.extracted"],
        params["knowledge.extracted_from_cache"],
        params["knowledge.extraction_failed"],
    ) == ("0", "10", "0")
    messages = [getattr(e, "message", "") for e in events]
    assert "extraction: 10 answers imported from the project's shipped extractions" in messages
    # the shipped attributes are what was embedded
    texts = {
        render_attribute_text({"product_type": f"shipped thing {i}", "area": "face", "features": ["imported"]})
        for i in range(1, 11)
    }
    with EmbeddingCache.in_working_dir(tmp_path) as embeddings:
        assert embeddings.count() == 10 and int(params["knowledge.embed_unique"]) == 10
        from engine.semantic.encoders import make_encoder

        assert len(embeddings.get_many(make_encoder("minilm").fingerprint, [text_key(t) for t in texts])) == 10


def test_kirec_run_with_a_bad_shipped_line_exits_2_naming_it_and_stores_nothing(tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    from typer.testing import CliRunner

    from engine.extraction import shipped
    from kirec_tui.cli import app

    cfg, ds, prompt, folder = shipped_for_the_tiny_gguf(tmp_path, rows=['{"item_id": "i1"', "{}"])
    monkeypatch.setattr(shipped, "SHIPPED_DIR", folder)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--dataset",
            cfg.data.dataset,
            "--db",
            str(tmp_path / "runs.db"),
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--set",
            f"knowledge.llm_model={cfg.knowledge.llm_model}",
            "--set",
            "train.num_threads=1",
            "--set",
            "knowledge.embed_text=attributes",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 2, result.output
    assert "error:" + str(folder / "tiny.products.jsonl") + "line2:notJSON" in "".join(
        result.output.split()
    )  # wrapped at 80
    assert result.output.count("error:") == 1
    assert "Traceback" not in result.output
    from engine.extraction import ExtractionCache, default_cache_path
    from engine.store import open_store

    with open_store(tmp_path / "runs.db") as store:  # opened (writable) before any work, but no run recorded
        assert store.list_runs() == []

    with ExtractionCache(default_cache_path(tmp_path)) as cache:
        assert cache.counts() == {"ok": 0, "failed": 0}


SHIPPED = Path(__file__).resolve().parents[2] / "prompts" / "extractions"


@pytest.mark.slow
def test_shipped_default_extractions_match_a_fresh_extraction(shared_data, tmp_path):
    """The shipped answers are what the real quantized SmolLM2 answers today for the same items.

    A handful of items on one thread, so the test takes seconds on a busy machine (llama.cpp's threads spin-wait
    when the cores are taken); benchmarks/bench_shipped.py re-extracts a whole chunk. Batched decoding is exact
    only for a batch like the shipping run's, so the sample is items 1..8, which started together in its first
    eight slots (the backend's default parallel=8; one or four slots give other answers, the thread count does not).
    """
    from engine.data.preprocess import load_dataset
    from engine.extraction import ExtractionCache, cached_attributes, create_backend, default_prompt_for, extract_items
    from engine.extraction.shipped import read_shipped_extractions

    files = sorted(SHIPPED.glob("ml-latest-small*.jsonl"))
    assert files, "the default dataset's extractions are shipped"
    header, records = read_shipped_extractions(files[0])
    cfg = load_config(flags={"data.dataset": "ml-latest-small", "data.data_root": str(shared_data)})
    dataset = load_dataset(cfg.data, cwd=tmp_path)
    prompt = default_prompt_for(dataset.name)
    backend = create_backend("llama-cpp", n_threads=1)
    assert backend.parallel == 8
    assert (backend.fingerprint, prompt.content_hash) == (header["model"], header["prompt_hash"])
    shipped = {r.item_id: r for r in records}
    assert len(shipped) == dataset.num_items
    sample = list(range(1, 9))
    with ExtractionCache(tmp_path / "fresh.sqlite") as cache:
        report = extract_items(dataset, prompt, backend, cache, item_indices=sample, batch_size=64)
        fresh = cached_attributes(dataset, prompt, backend.fingerprint, cache, sample)
    assert report.extracted == len(sample)
    mismatched = [dataset.title(i) for i in sample if fresh.get(i) != shipped[dataset.item_ids[i]].attributes]
    assert mismatched == []
