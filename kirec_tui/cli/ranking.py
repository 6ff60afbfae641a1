"""`kirec runs ranks A B`: how every user's full rank of the held-out item changes from run A to run B, split by
head / tail item and by history length (engine.services.ranking)."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kirec_tui.cli.errors import err_console, friendly_errors
from kirec_tui.cli.runs import DbOption, naming_runs, open_db
from kirec_tui.cli.workspace import WorkspaceOption, workspace_of


def ranks_command(
    run_a: Annotated[int, typer.Argument(help="The run compared from (e.g. the ID baseline).")],
    run_b: Annotated[int, typer.Argument(help="The run compared to (e.g. KIRec).")],
    db: DbOption = None,
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Rank changes of every user's held-out test item from run A to run B (+: B ranks it higher), by head/tail
    item and by history length."""
    from engine.services import ranking

    def say(progress) -> None:
        if not as_json:
            err_console.print(f"[dim]{progress.stage}…[/]", highlight=False)

    with friendly_errors(), naming_runs(run_a, run_b):
        paths = workspace_of(workspace, db)
        loaded: dict = {}
        table = ranking.compare_run_ids(
            open_db(str(paths.db)), run_a, run_b, workspace=paths.root, on_progress=say, loaded=loaded
        )
        notes = [t.note for t in loaded.values() if t.note]
    for note in notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(table)))
        return
    console = Console()
    for part in rank_change_tables(table):
        console.print(part)


def rank_change_tables(comparison) -> tuple[Table, Table]:
    """Two tables that fit 80 columns: who gained or lost with the groups' NDCG@10, then by how much."""
    a, b = comparison.run_a, comparison.run_b
    who = Table(
        title=f"run {a} → run {b}: each user's held-out item ranked among {comparison.num_items:,} items "
        f"(+: run {b} ranks it higher)"
    )
    who.add_column("users")
    for column in ("n", "gained", "same", "lost", "median Δ", f"NDCG@10 {a}", f"NDCG@10 {b}"):
        who.add_column(column, justify="right")
    by_how_much = Table(title="users by rank change")
    by_how_much.add_column("users")
    for label in comparison.labels:
        by_how_much.add_column(label, justify="right")
    for group in comparison.groups:
        who.add_row(
            group.name,
            f"{group.users:,}",
            Text(f"{group.gained:,}", style="green"),
            f"{group.same:,}",
            Text(f"{group.lost:,}", style="red"),
            f"{group.median_change:+g}",
            f"{group.ndcg_a:.4f}",
            f"{group.ndcg_b:.4f}",
        )
        by_how_much.add_row(group.name, *(f"{group.buckets[label]:,}" for label in comparison.labels))
    return who, by_how_much
