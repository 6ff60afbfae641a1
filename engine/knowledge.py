"""Builds the item representation a run asks for: plain IDs, or LLM knowledge injected into them.

The knowledge path is prompt → LLM attribute extraction (cached) → text embeddings (cached) → reduction → fusion;
each stage lives in its own package (engine.extraction, engine.semantic) and this module only wires them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from engine.config import RunConfig
from engine.data.dataset import SequenceDataset
from engine.events import EventSink, Status, ignore_events
from engine.models.base import ItemRepresentation
from engine.workspace import Workspace  # the caches' paths; `cwd` anchors a config that sets no workspace


def resolve_prompt(cfg: RunConfig, dataset: SequenceDataset):
    """The prompt a run uses (the configured one, or the dataset's default), validated against the dataset."""
    from engine.extraction import dataset_fields, default_prompt_for, load_prompt, validate_prompt

    k = cfg.knowledge  # knowledge.prompts_dir: where a prompt name (and the dataset's default) is looked up
    prompt = load_prompt(k.prompt, k.prompts_dir) if k.prompt else default_prompt_for(dataset.name, k.prompts_dir)
    validate_prompt(prompt, dataset_fields(dataset.item_text[1:]))
    return prompt


def extraction_backend(cfg: RunConfig):
    """The LLM backend `knowledge.extractor` / `llm_model` / `llm_url` name (loaded on first use)."""
    from engine.extraction import create_backend

    k = cfg.knowledge
    return create_backend(
        k.extractor, k.llm_model, k.llm_url, n_threads=cfg.train.num_threads, llm_concurrency=k.llm_concurrency
    )


def extract_attributes(
    cfg: RunConfig,
    dataset: SequenceDataset,
    cwd: Path,
    on_event: EventSink = ignore_events,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[list[dict[str, Any] | None], dict[str, Any]]:
    """Attributes per item index (None where the LLM gave none), extracting only what the cache lacks."""
    from engine.extraction.session import extraction_session

    prompt = resolve_prompt(cfg, dataset)
    backend = extraction_backend(cfg)
    with extraction_session(prompt, backend, Workspace.of(cfg, cwd).extraction_cache, on_event) as session:
        # Items with no text are never sent to the LLM (extract_items skips them), so they stay absent here.
        report = session.extract(dataset, on_event=on_event, should_stop=should_stop)
        found = session.answers(dataset)
        # Valid JSON can still be useless (one value for every item, the title copied): say so where the user looks.
        quality = session.quality(dataset)
    quality.emit(on_event)
    attributes = [None] + [found.get(i) for i in range(1, dataset.num_items + 1)]
    info = {
        "prompt": prompt.name,
        "prompt_hash": prompt.content_hash,
        "extractor_model": backend.fingerprint,
        "extracted": report.extracted,
        "extracted_from_cache": report.from_cache,
        "extraction_failed": report.failed,
        "extraction_items_per_second": round(report.items_per_second, 3),
        **quality.as_info(),
    }
    return attributes, info


def build_items(
    cfg: RunConfig,
    dataset: SequenceDataset,
    cwd: Path,
    on_event: EventSink = ignore_events,
    device: Any = None,
    should_stop: Callable[[], bool] | None = None,
    stored: Mapping[str, Any] | None = None,
) -> tuple[ItemRepresentation, dict[str, Any]]:
    """The item representation of the run's method (engine.methods), and what it records about its knowledge;
    with `knowledge.side_fields`, the item's side values' embeddings added to it (engine.semantic.side_fields).

    `stored` (a finished run's checkpoint tensors under `items.`, prefix removed) builds the modules of that run
    without extraction, encoding or reduction, for the checkpoint to be loaded into (engine.trained)."""
    k = cfg.knowledge
    side = k.side_fields != "none"
    if stored is not None:
        from engine.semantic.side_fields import BASE_PREFIX, side_fields_from_checkpoint

        if not side:
            return _method_items(cfg, dataset, cwd, on_event, device, should_stop, None, stored)
        base_stored = {key[len(BASE_PREFIX) :]: v for key, v in stored.items() if key.startswith(BASE_PREFIX)}
        base, info = _method_items(cfg, dataset, cwd, on_event, device, should_stop, None, base_stored)
        return side_fields_from_checkpoint(base, stored), info
    attributes, extraction_info = None, {}
    if k.side_fields in ("attributes", "both"):  # extracted once: the semantic table reuses them
        attributes, extraction_info = extract_attributes(cfg, dataset, cwd, on_event, should_stop)
    items, info = _method_items(cfg, dataset, cwd, on_event, device, should_stop, attributes, None)
    info = {**extraction_info, **info}
    if side:
        from engine.semantic.side_fields import build_vocabulary, item_field_values, with_side_fields

        values = item_field_values(dataset.item_text, attributes, k.side_fields)
        vocabulary = build_vocabulary(values, k.side_min_count)
        items, side_info = with_side_fields(items, vocabulary, seed=cfg.train.seed)
        info.update(side_info)
        on_event(
            Status(
                f"knowledge: {vocabulary.size} side values ({k.side_fields} fields seen on at least "
                f"{k.side_min_count} items) cover {vocabulary.items_covered} of {dataset.num_items} items"
            )
        )
    return items, info


def _method_items(
    cfg: RunConfig,
    dataset: SequenceDataset,
    cwd: Path,
    on_event: EventSink,
    device: Any,
    should_stop: Callable[[], bool] | None,
    attributes: list[dict[str, Any] | None] | None,
    stored: Mapping[str, Any] | None,
) -> tuple[ItemRepresentation, dict[str, Any]]:
    from engine.methods import ItemBuild, get_method

    k = cfg.knowledge
    method = get_method(k.method)
    if not method.needs_semantic:  # built from the global generator the run has just seeded
        return method.item_representation(ItemBuild(k, dataset.num_items, cfg.model.hidden_size)), {}

    from engine.semantic.fusion import build_item_representation

    if stored is not None:
        return build_item_representation(
            k, dataset.num_items, cfg.model.hidden_size, None, seed=cfg.train.seed, stored=stored
        )
    table, info = semantic_table(cfg, dataset, cwd, on_event, device, should_stop, attributes=attributes)
    items, rep_info = build_item_representation(k, dataset.num_items, cfg.model.hidden_size, table, seed=cfg.train.seed)
    info.update({key: value for key, value in rep_info.items() if key != "notes"})
    if rep_info.get("notes"):  # one string, the notes joined by "; "
        on_event(Status(f"knowledge: {rep_info['notes']}"))
    return items, info


def semantic_table(
    cfg: RunConfig,
    dataset: SequenceDataset,
    cwd: Path,
    on_event: EventSink = ignore_events,
    device: Any = None,
    should_stop: Callable[[], bool] | None = None,
    attributes: list[dict[str, Any] | None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The item vectors [num_items + 1, dim] before reduction: read from `knowledge.semantic_table` when set,
    else extracted (as `embed_text` needs; `attributes` when the caller has them already) and embedded, both
    through their caches."""
    k = cfg.knowledge
    if k.semantic_table:
        from engine.semantic.table_file import load_semantic_table

        table, digest = load_semantic_table(k.semantic_table, dataset.num_items)
        on_event(Status(f"embedding: item vectors read from {k.semantic_table} ({table.shape[1]} dims)"))
        return table, {"semantic_table_sha256": digest}

    from engine.semantic.embedding_cache import EmbeddingCache, embed_item_table
    from engine.semantic.encoders import make_encoder
    from engine.semantic.texts import item_texts

    info: dict[str, Any] = {}
    if k.embed_text in ("attributes", "both") and attributes is None:
        attributes, info = extract_attributes(cfg, dataset, cwd, on_event, should_stop)
    texts = item_texts(dataset.item_text, attributes, k.embed_text)
    if texts.fell_back_to_raw:
        on_event(Status(f"embedding: {texts.fell_back_to_raw} items without attributes use their raw text", "warning"))
    encoder = make_encoder(k.encoder, k.llm_model, str(device) if device is not None else None)
    with EmbeddingCache(Workspace.of(cfg, cwd).embedding_cache) as cache:
        table, stats = embed_item_table(texts.texts, encoder, cache)
    on_event(Status(f"embedding: {stats.cached} cached, {stats.encoded} encoded with {encoder.name}"))
    info.update(stats.as_info())
    # An empty text embeds to the encoder's idea of "nothing", the same vector for every such item: give them
    # no semantic signal instead (a zero row, like padding), so only their ID embedding tells them apart.
    empty = [i for i, text in enumerate(texts.texts, start=1) if not text]
    if empty:
        table[empty] = 0.0
        info["semantic_zero_rows"] = len(empty)
    return table, info
