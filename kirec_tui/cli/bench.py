"""`kirec bench`: train a matrix of methods × backbones × datasets × seeds (reusing finished runs) and write its
results table, Markdown and JSON, with the exact command that made it."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from kirec_tui.cli.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    err_console,
    fail,
    friendly_errors,
    print_status,
)
from kirec_tui.cli.run import parse_set_options, stop_on_first_ctrl_c
from kirec_tui.cli.workspace import WorkspaceOption, workspace_of


def bench_command(
    config: Annotated[
        Optional[Path], typer.Argument(help="Bench TOML file: the matrix, its config and tune tables.")
    ] = None,
    db: Annotated[
        str, typer.Option(envvar="KIREC_DB", help="Runs database: finished cells are read from it, new ones recorded.")
    ] = "runs.db",
    workspace: WorkspaceOption = None,
    out: Annotated[
        Optional[Path], typer.Option(help="Results path without suffix (default docs/results/NAME).")
    ] = None,
    jobs: Annotated[int, typer.Option(help="Cells trained at once, one process each.")] = 1,
    methods: Annotated[Optional[str], typer.Option(help="Comma-separated; replaces bench.methods.")] = None,
    backbones: Annotated[Optional[str], typer.Option(help="Comma-separated; replaces bench.backbones.")] = None,
    datasets: Annotated[Optional[str], typer.Option(help="Comma-separated; replaces bench.datasets.")] = None,
    seeds: Annotated[Optional[str], typer.Option(help="Comma-separated; replaces bench.seeds.")] = None,
    baseline: Annotated[
        Optional[str],
        typer.Option(help="The method gains and p-values are against (one of the methods); replaces bench.baseline."),
    ] = None,
    set_: Annotated[
        list[str], typer.Option("--set", help="Any config field for every cell: SECTION.FIELD=VALUE.")
    ] = [],
    table_only: Annotated[
        bool,
        typer.Option(
            "--table-only",
            help="Train nothing: the table of the runs already in --db, whatever code version made them.",
        ),
    ] = False,
) -> None:
    """Run a bench (resumable: cells already in --db are not trained again) and write its results table."""
    from engine.services.bench import run_bench

    if jobs < 1:
        raise fail(f"--jobs: expected at least 1, got {jobs}", EXIT_USAGE)
    overrides = {"methods": methods, "backbones": backbones, "datasets": datasets, "seeds": seeds, "baseline": baseline}
    command = _command_line(config, db, workspace, out, jobs, overrides, set_, table_only)
    flags = parse_set_options(set_)
    with friendly_errors(), stop_on_first_ctrl_c() as stop:
        paths = workspace_of(workspace, db)  # the database and every cell's checkpoints and caches
        result = run_bench(
            config,
            paths.db,
            command,
            out,
            jobs,
            overrides,
            flags,
            table_only,
            on_event=print_status,
            should_stop=stop.is_set,
            workspace=paths.root,
            db_label=db,
        )
    if result.markdown is None:
        raise fail(
            f"{result.missing} of {result.cells + result.missing} cells have no finished run in {db}; "
            f"--table-only wrote nothing, {result.target}.md and .json are as they were",
            EXIT_FAILED,
        )
    err_console.print(
        f"bench {result.name}: {result.cells} cells, {result.trained} trained now, "
        f"{result.cells - result.trained} reused; wrote {result.markdown} and {result.json}"
    )
    typer.echo(result.markdown.read_text())
    if result.missing:
        raise fail(f"{result.missing} cells have no finished run in {db} (the table lists them)", EXIT_FAILED)
    if not result.complete:
        raise typer.Exit(EXIT_INTERRUPTED)


def _command_line(config, db, workspace, out, jobs, overrides, set_, table_only) -> str:
    """The command, rebuilt from what was parsed (the same however it was invoked), for the table's header."""
    words = ["kirec", "bench"]
    if config is not None:
        words.append(str(config))
    if db != "runs.db":
        words += ["--db", db]
    if workspace is not None:
        words += ["--workspace", workspace]
    if out is not None:
        words += ["--out", str(out)]
    if jobs != 1:
        words += ["--jobs", str(jobs)]
    for key, value in overrides.items():
        if value is not None:
            words += [f"--{key}", value]
    for pair in set_:
        words += ["--set", pair]
    if table_only:
        words.append("--table-only")
    return shlex.join(words)
