"""`kirec embed`: a dataset's semantic item table, written to a .npy file that another machine trains with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from kirec_tui.options import flags_of, option
from kirec_tui.cli.errors import friendly_errors, print_status
from kirec_tui.cli.workspace import WorkspaceOption


def embed_command(
    export: Annotated[Path, typer.Option(help="The .npy file to write: [items + 1, dim], row 0 padding.")],
    dataset: option("dataset") = None,
    text: option("text") = None,
    encoder: option("encoder") = None,
    prompt: option("prompt") = None,
    prompts_dir: option("prompts_dir") = None,
    data_root: option("data_root") = None,
    workspace: WorkspaceOption = None,
    half: Annotated[bool, typer.Option(help="Store float16 (half the size; read back as float32).")] = False,
) -> None:
    """Embed every item's text (extracting attributes the caches lack) and save the table for
    `--set knowledge.semantic_table=FILE` on a machine without the LLM or the encoder."""
    from engine.config import load_config
    from engine.services.embedding import export_table

    flags = flags_of(locals(), ("dataset", "data_root", "text", "encoder", "prompt", "prompts_dir"))
    flags["workspace"] = workspace
    with friendly_errors():
        cfg = load_config(env=os.environ, flags=flags, keys=("data", "knowledge", "workspace"))  # what embedding reads
        table = export_table(cfg, export, half=half, cwd=Path.cwd(), on_event=print_status)
    typer.echo(f"{table.dataset} / {cfg.knowledge.embed_text}: {table.items} items × {table.dims} dims → {table.path}")
