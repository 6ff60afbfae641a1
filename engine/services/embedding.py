"""Embedding use case: a dataset's semantic item table (extracting what the caches lack), written to a file
that a machine without the LLM or the encoder trains with (`knowledge.semantic_table`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.config import ConfigError, RunConfig
from engine.events import EventSink, ignore_events


@dataclass(frozen=True)
class ExportedTable:
    dataset: str
    items: int
    dims: int
    path: Path


def export_table(
    cfg: RunConfig, export: Path, half: bool = False, cwd: Path | None = None, on_event: EventSink = ignore_events
) -> ExportedTable:
    from engine.knowledge import semantic_table
    from engine.semantic.table_file import save_semantic_table
    from engine.services.datasets import load
    from engine.workspace import Workspace

    if cfg.knowledge.semantic_table:
        raise ConfigError("knowledge.semantic_table is set: kirec embed makes that file, it does not read one")
    cwd = Path(cwd or Path.cwd())
    dataset = load(cfg.data, cwd, cache_dir=Workspace.of(cfg, cwd).dataset_cache)
    table, _ = semantic_table(cfg, dataset, cwd, on_event=on_event)
    path = save_semantic_table(table, export, half=half)
    return ExportedTable(dataset.name, table.shape[0] - 1, table.shape[1], path)
