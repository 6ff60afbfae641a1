"""`kirec data list | show NAME | download NAME`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from kirec_tui.cli.errors import err_console, friendly_errors, print_status
from kirec_tui.cli.workspace import WorkspaceOption

app = typer.Typer(help="Datasets: where they are, their statistics, downloading them.", no_args_is_help=True)
DataRoot = Annotated[Optional[str], typer.Option("--data-root", help="Folder holding the datasets (or KIREC_DATA).")]


def _data_root(flag: str | None) -> str | None:
    """The data root by the one precedence order (flag > KIREC_DATA > config defaults)."""
    from engine.config import resolve_setting

    return resolve_setting("data.data_root", os.environ, flag)


@app.command("list")
def list_command(data_root: DataRoot = None) -> None:
    """Known datasets and where each was found."""
    from engine.services.datasets import list_datasets

    table = Table()
    for column in ("name", "format", "location", "description"):
        table.add_column(column)
    for entry in list_datasets(_data_root(data_root)):
        where = (
            str(entry.location)
            if entry.location is not None
            else "[yellow]missing[/] (kirec data download " + entry.name + ")"
        )
        table.add_row(entry.name, entry.format, where, entry.description)
    Console().print(table)


@app.command("show")
def show_command(
    name: str,
    data_root: DataRoot = None,
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Statistics of a dataset after preprocessing (users, items, interactions, lengths, text coverage)."""
    from engine.config import load_config
    from engine.services.datasets import statistics
    from engine.workspace import Workspace

    with friendly_errors():
        cfg = load_config(
            env=os.environ,
            flags={"data.dataset": name, "data.data_root": data_root, "workspace": workspace},
            keys=("data", "workspace"),
        )
        stats = statistics(
            cfg.data, cwd=Path.cwd(), on_event=_print_warnings, cache_dir=Workspace.of(cfg).dataset_cache
        )
    if as_json:
        typer.echo(json.dumps(stats, default=str))
        return
    table = Table(title=name)
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in stats.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                table.add_row(f"{key}: {sub}", _fmt(v))
        else:
            table.add_row(key, _fmt(value))
    Console().print(table)


@app.command("download")
def download_command(name: str, data_root: DataRoot = None) -> None:
    """Fetch a dataset from its canonical address, verifying checksums."""
    from engine.events import Status
    from engine.services.datasets import download

    root = Path(_data_root(data_root) or "data")
    with friendly_errors():
        path = download(name, root, on_event=lambda e: isinstance(e, Status) and err_console.print(e.message))
    typer.echo(str(path))


def _print_warnings(event) -> None:
    if getattr(event, "level", "") == "warning":
        print_status(event)


def _fmt(value) -> str:
    return (
        f"{value:,.4f}".rstrip("0").rstrip(".")
        if isinstance(value, float)
        else f"{value:,}"
        if isinstance(value, int)
        else str(value)
    )
