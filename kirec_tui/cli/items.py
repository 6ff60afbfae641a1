"""`kirec recommend` and `kirec item`: what a run recommends to a user, and what the project knows of an item."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from kirec_tui.cli.errors import err_console, friendly_errors
from kirec_tui.cli.runs import DbOption, naming_runs, open_db
from kirec_tui.cli.workspace import WorkspaceOption, workspace_of


def recommend_command(
    run: Annotated[int, typer.Option("--run", help="Run id (see kirec runs list).")],
    user: Annotated[str, typer.Option("--user", help="User id as in the dataset.")],
    k: Annotated[int, typer.Option("-k", help="How many items.")] = 10,
    db: DbOption = None,
    workspace: WorkspaceOption = None,
    include_history: Annotated[
        bool, typer.Option("--include-history", help="Also rank items the user already has.")
    ] = False,
) -> None:
    """Top-k items a trained run recommends after the user's whole history."""
    from engine.services import runs

    with friendly_errors(), naming_runs(run):
        paths = workspace_of(workspace, db)
        trained = runs.load_trained(open_db(str(paths.db)), run, workspace=paths.root)
        if trained.note:  # not FINISHED: say which weights these are and what can be done
            err_console.print(f"[yellow]note:[/] {trained.note}", highlight=False, soft_wrap=True)
        found = runs.recommend_for(trained, user, k=k, history="all", exclude_history=not include_history)
    table = Table(title=f"run {run}: top {k} for user {user} ({found.history_length} interactions)")
    for column in ("rank", "item", "title", "score", "in history"):
        table.add_column(column)
    for r in found.recommendations:
        table.add_row(str(r.rank), r.item_id, r.title, f"{r.score:.3f}", "yes" if r.in_history else "")
    Console().print(table)


def item_command(
    item_id: Annotated[str, typer.Argument(help="Item id as in the dataset.")],
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name or folder.")] = None,
    data_root: Annotated[Optional[str], typer.Option("--data-root")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """An item's text fields and popularity."""
    from engine.config import load_config
    from engine.services import datasets, items
    from engine.workspace import Workspace

    with friendly_errors():
        cfg = load_config(
            env=os.environ,
            flags={"data.dataset": dataset, "data.data_root": data_root, "workspace": workspace},
            keys=("data", "workspace"),
        )
        ds = datasets.load(cfg.data, cwd=Path.cwd(), cache_dir=Workspace.of(cfg).dataset_cache)
        view = items.item_view(ds, items.item_index(ds, item_id))
    table = Table(title=f"{ds.name} item {item_id}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key, value in view.fields.items():
        table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    table.add_row(
        "popularity", f"{view.popularity} training interactions (rank {view.popularity_rank} of {view.num_items})"
    )
    Console().print(table)
