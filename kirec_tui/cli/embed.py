"""`kirec embed`: a dataset's semantic item table, written to a .npy file that another machine trains with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from kirec_tui.cli.errors import friendly_errors, print_status
from kirec_tui.cli.workspace import WorkspaceOption


def embed_command(
    export: Annotated[Path, typer.Option(help="The .npy file to write: [items + 1, dim], row 0 padding.")],
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name or folder.")] = None,
    text: Annotated[Optional[str], typer.Option(help="attributes | raw | both")] = None,
    encoder: Annotated[Optional[str], typer.Option(help="minilm | llm")] = None,
    prompt: Annotated[Optional[str], typer.Option(help="Prompt file or name under prompts/ (default: the dataset's).")] = None,
    data_root: Annotated[Optional[str], typer.Option("--data-root")] = None,
    workspace: WorkspaceOption = None,
    half: Annotated[bool, typer.Option(help="Store float16 (half the size; read back as float32).")] = False,
) -> None:
    """Embed every item's text (extracting attributes the caches lack) and save the table for
    `--set knowledge.semantic_table=FILE` on a machine without the LLM or the encoder."""
    from engine.config import ConfigError, load_config
    from engine.data.preprocess import load_dataset
    from engine.knowledge import semantic_table
    from engine.semantic.table_file import save_semantic_table
    from engine.workspace import Workspace

    flags = {"data.dataset": dataset, "data.data_root": data_root, "knowledge.embed_text": text,
             "knowledge.encoder": encoder, "knowledge.prompt": prompt, "workspace": workspace}
    cwd = Path.cwd()
    with friendly_errors():
        cfg = load_config(env=os.environ, flags=flags, keys=("data", "knowledge", "workspace"))  # what embedding reads
        if cfg.knowledge.semantic_table:
            raise ConfigError("knowledge.semantic_table is set: kirec embed makes that file, it does not read one")
        ds = load_dataset(cfg.data, cwd=cwd, cache_dir=Workspace.of(cfg).dataset_cache)
        table, _ = semantic_table(cfg, ds, cwd, on_event=print_status)
        path = save_semantic_table(table, export, half=half)
    typer.echo(f"{ds.name} / {cfg.knowledge.embed_text}: {table.shape[0] - 1} items × {table.shape[1]} dims → {path}")
