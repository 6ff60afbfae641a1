"""`kirec runs list | show | compare | export | tag | note | delete | restore`: the runs store from the terminal."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kirec_tui.cli.errors import friendly_errors
from kirec_tui.cli.workspace import WorkspaceOption, workspace_of

app = typer.Typer(
    help="Past runs in runs.db: list, inspect, compare, export, tag, note, delete, restore.", no_args_is_help=True
)
DbOption = Annotated[Optional[str], typer.Option("--db", help="Runs database (default runs.db, or KIREC_DB).")]
KEY_METRICS = ("HR@10", "NDCG@10")
# The listing's filters, shared by `list` and `export` (engine.services.runs.FILTER_NAMES).
StatusOption = Annotated[Optional[str], typer.Option(help="RUNNING | FINISHED | FAILED | INTERRUPTED")]
DatasetOption = Annotated[Optional[str], typer.Option()]
MethodOption = Annotated[Optional[str], typer.Option()]
TextOption = Annotated[
    Optional[str], typer.Option("--filter", help="Text to find in the name/dataset/method/backbone, a tag or the note.")
]
TagOption = Annotated[Optional[str], typer.Option("--tag", help="Only the runs tagged so (kirec runs tag).")]
DeletedOption = Annotated[bool, typer.Option("--deleted", help="Include deleted runs (kirec runs restore).")]


def open_db(db: str | None, workspace: str | None = None):
    from engine.services.runs import open_runs

    # Only the path settings: a bad value elsewhere in the environment must not break a read-only command.
    return open_runs(workspace_of(workspace, db).db)


@contextlib.contextmanager
def naming_runs(*run_ids: int) -> Iterator[None]:
    """A missing database means the runs asked for are not found: say which (exit 4)."""
    from engine.services.runs import naming_runs as naming

    with naming(*run_ids):
        yield


def _fmt_metric(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


@app.command("list")
def list_command(
    db: DbOption = None,
    workspace: WorkspaceOption = None,
    status: StatusOption = None,
    dataset: DatasetOption = None,
    method: MethodOption = None,
    text: TextOption = None,
    limit: Annotated[Optional[int], typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    tag: TagOption = None,
    deleted: DeletedOption = False,
) -> None:
    """Runs, newest first."""
    from engine.services.runs import list_runs

    with friendly_errors(), _bad_value_as_usage():
        store = open_db(db, workspace)  # it marks runs whose writer died INTERRUPTED
        runs = list_runs(
            store,
            status=status,
            dataset=dataset,
            method=method,
            text=text,
            tag=tag,
            include_deleted=deleted,
            limit=limit,
        )
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in runs], default=str))
        return
    table = Table()
    for column in (
        "id",
        "status",
        "name",
        "dataset",
        "method",
        "backbone",
        *(f"test {k}" for k in KEY_METRICS),
        "started",
        "duration",
        "tags",
    ):
        table.add_column(column)
    for r in runs:
        table.add_row(
            str(r.id),
            f"{r.status} (deleted)" if r.deleted else r.status,
            r.name,
            r.dataset,
            r.method,
            r.backbone,
            *(_fmt_metric(r.test_metrics.get(f"test/{k}")) for k in KEY_METRICS),
            f"{r.started_at:%Y-%m-%d %H:%M}",
            "" if r.duration_seconds is None else f"{r.duration_seconds:.0f}s",
            " ".join(r.labels),
        )
    Console().print(table)


@app.command("show")
def show_command(
    run_id: int,
    db: DbOption = None,
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A run's parameters, tags, artifacts and final metrics."""
    with friendly_errors(), naming_runs(run_id):
        detail = open_db(db, workspace).get_run(run_id)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(detail), default=str))
        return
    run = detail.summary
    console = Console()
    console.print(
        f"[bold]run {run.id}[/] {run.name}: {run.status} on {run.device} ({run.dataset}, code {detail.code_version})"
    )
    if detail.error:
        console.print(f"[red]{detail.error}[/]")
    if run.deleted:
        console.print(f"deleted (kirec runs restore {run.id} lists it again)")
    if run.labels:
        console.print(f"tags: {' '.join(run.labels)}", highlight=False)
    if run.note:
        console.print(f"note: {run.note}", highlight=False, markup=False)
    metrics = Table(title="metrics")
    metrics.add_column("metric")
    metrics.add_column("valid", justify="right")
    metrics.add_column("test", justify="right")
    valid = {k.removeprefix("valid/"): v for k, v in detail.valid_metrics.items()}
    test = {k.removeprefix("test/"): v for k, v in detail.test_metrics.items()}
    for key in sorted(set(valid) | set(test)):
        metrics.add_row(key, _fmt_metric(valid.get(key)), _fmt_metric(test.get(key)))
    console.print(metrics)
    params = Table(title="parameters")
    params.add_column("key")
    params.add_column("value")
    for key, value in sorted(detail.params.items()):
        params.add_row(key, str(value))
    console.print(params)
    for artifact in detail.artifacts:
        console.print(f"{artifact.kind}: {artifact.path}")


@app.command("compare")
def compare_command(
    run_ids: list[int],
    db: DbOption = None,
    workspace: WorkspaceOption = None,
    all_params: Annotated[
        bool, typer.Option("--all", help="Show every parameter, not only those that differ.")
    ] = False,
) -> None:
    """The settings that differ, what each run recorded, and the metrics, side by side."""
    from engine.services.runs import runs_side_by_side

    from kirec_tui.values import value_text

    with friendly_errors(), naming_runs(*run_ids):
        comparison = runs_side_by_side(open_db(db, workspace), run_ids, curves=False)  # it prints no curve
    run_ids = list(comparison.run_ids)  # a repeated id is one run: one column, aligned with the values
    console = Console()
    console.print(_runs_header(comparison))
    params = Table(title="settings" + ("" if all_params else " that differ"))
    params.add_column("key")
    for rid in run_ids:
        params.add_column(f"run {rid}")
    shown = comparison.settings if all_params else comparison.differing_settings
    for key, values in sorted(shown.items()):
        params.add_row(key, *("" if v is None else v for v in values))
    console.print(params)
    # Recorded by the runs (durations, answer quality, dataset figures): they differ between any two runs, so
    # among the settings they would hide what was changed.
    outputs = Table(title="recorded by the runs")
    outputs.add_column("output")
    for rid in run_ids:
        outputs.add_column(f"run {rid}", justify="right")
    for key, values in comparison.outputs.items():
        outputs.add_row(key, *(value_text(key, v) for v in values))
    console.print(outputs)
    metrics = Table(title="metrics")
    metrics.add_column("metric")
    for rid in run_ids:
        metrics.add_column(f"run {rid}", justify="right")
    if len(run_ids) == 2:
        metrics.add_column("difference", justify="right")
    for key, values in sorted(comparison.metrics.items()):
        row = [_fmt_metric(v) for v in values]
        if len(values) == 2 and None not in values:
            row.append(f"{values[1] - values[0]:+.4f}")
        metrics.add_row(key, *row)
    console.print(metrics)


def _runs_header(comparison) -> Table:  # engine.services.runs.RunsSideBySide
    """Which runs these are: name, status, and the researcher's tags and note where any run has them."""
    table = Table(title="runs")
    table.add_column("")
    for run in comparison.runs:
        table.add_column(f"run {run.summary.id}", overflow="fold")
    table.add_row("name", *(run.summary.name for run in comparison.runs))
    table.add_row("status", *(str(run.summary.status) for run in comparison.runs))
    for key, values in comparison.annotations.items():
        table.add_row(key, *(Text(v) for v in values))  # Text: a note's brackets are not markup
    return table


@app.command("export")
def export_command(
    run_ids: Annotated[Optional[list[int]], typer.Argument(help="Runs to export (default: all).")] = None,
    db: DbOption = None,
    workspace: WorkspaceOption = None,
    fmt: Annotated[str, typer.Option("--format", help="csv | json")] = "csv",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="File to write (default stdout).")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing output file (never the database).")
    ] = False,
    curves: Annotated[bool, typer.Option("--curves", help="Add every run's per-epoch metrics (JSON only).")] = False,
    status: StatusOption = None,
    dataset: DatasetOption = None,
    method: MethodOption = None,
    text: TextOption = None,
    tag: TagOption = None,
    deleted: DeletedOption = False,
    mlflow: Annotated[
        Optional[Path],
        typer.Option(
            "--mlflow",
            help="Write the runs (params, per-epoch metrics, tags, checkpoint) into the MLflow store in this folder "
            "instead (needs kirec[mlflow]; exporting again adds no duplicates).",
        ),
    ] = None,
) -> None:
    """Runs with their parameters and final metrics as CSV or JSON, or into an MLflow store (--mlflow); the
    filters pick runs as `runs list` does."""
    from engine.services.runs import export_runs

    filters = {
        "status": status,
        "dataset": dataset,
        "method": method,
        "text": text,
        "tag": tag,
        "include_deleted": deleted,
    }
    if mlflow is not None:
        return export_mlflow(run_ids, db, workspace, mlflow, output, filters)
    if fmt not in ("csv", "json"):
        raise typer.BadParameter("expected csv or json", param_hint="--format")
    if curves and fmt != "json":
        raise typer.BadParameter("the curves are exported as JSON only: add --format json", param_hint="--curves")
    with friendly_errors(), naming_runs(*(run_ids or ())), _bad_value_as_usage():
        exported = export_runs(
            open_db(db, workspace), run_ids or None, fmt, output, force=force, curves=curves, filters=filters
        )
    if not output:
        typer.echo(exported, nl=False)


@app.command("tag")
def tag_command(
    run_id: int,
    tags: Annotated[list[str], typer.Argument(help="Tags, one word each.")],
    db: DbOption = None,
    workspace: WorkspaceOption = None,
    remove: Annotated[bool, typer.Option("--remove", "-r", help="Remove these tags instead of adding them.")] = False,
) -> None:
    """Tag a run (the Runs screen's filter and `runs list --tag` find it by them)."""
    from engine.services.runs import tag_runs

    with friendly_errors(), naming_runs(run_id), _bad_value_as_usage():
        store = open_db(db, workspace)
        if remove:
            tag_runs(store, [run_id], remove=tags)  # each argument is one tag: "two words" is refused
        else:
            tag_runs(store, [run_id], add=tags)
        now = store.get_run(run_id).summary.labels
    typer.echo(f"run {run_id} tags: {' '.join(now) if now else '(none)'}")


@app.command("note")
def note_command(
    run_id: int,
    text: Annotated[Optional[list[str]], typer.Argument(help="The note (words are joined with spaces).")] = None,
    db: DbOption = None,
    workspace: WorkspaceOption = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the run's note.")] = False,
) -> None:
    """Set a run's note, or print it when no text is given."""
    from engine.services.runs import set_run_note

    if clear and text:
        raise typer.BadParameter("give a note or --clear, not both", param_hint="--clear")
    with friendly_errors(), naming_runs(run_id):
        store = open_db(db, workspace)
        if clear or text:
            set_run_note(store, run_id, None if clear else " ".join(text or ()))
        note = store.get_run(run_id).summary.note
    typer.echo(f"run {run_id} note: {note}" if note else f"run {run_id} has no note")


@contextlib.contextmanager
def _bad_value_as_usage() -> Iterator[None]:
    """A value the engine refuses (a tag with a space, an unknown status): one line and exit 2, no traceback.
    Errors friendly_errors knows (a bad workspace, a missing run) keep their own line and exit code."""
    from kirec_tui.cli.errors import EXIT_USAGE, exit_code_for, fail

    try:
        yield
    except ValueError as exc:
        if exit_code_for(exc) is not None:
            raise
        raise fail(str(exc), EXIT_USAGE) from None


def export_mlflow(
    run_ids: list[int] | None, db, workspace, folder: Path, output: Path | None, filters: dict | None = None
) -> None:
    from engine.services.mlflow_export import MlflowMissingError, export_to_mlflow
    from engine.services.runs import filtered_run_ids
    from kirec_tui.cli.errors import EXIT_USAGE, err_console, fail

    if output is not None:
        raise fail("--mlflow writes into an MLflow store: give it or --output, not both", EXIT_USAGE)
    with friendly_errors(), naming_runs(*(run_ids or ())):
        try:
            store = open_db(db, workspace)
            # the same runs as the CSV/JSON export: the filters pick them as `runs list` does
            result = export_to_mlflow(store, filtered_run_ids(store, run_ids or None, filters), folder)
        except MlflowMissingError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
    err_console.print(
        f"MLflow {result.tracking_uri}: {len(result.written)} runs written, {len(result.replaced)} replaced "
        f"(changed since), {len(result.unchanged)} unchanged, in {result.seconds:.1f} s; "
        f"open with: mlflow ui --backend-store-uri {result.tracking_uri}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("delete")
def delete_command(
    run_id: int,
    db: DbOption = None,
    workspace: WorkspaceOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Hide a run (soft delete: its rows stay in the database)."""
    with friendly_errors(), naming_runs(run_id):
        store = open_db(db, workspace)
        detail = store.get_run(run_id)
        if not yes:
            typer.confirm(f"Delete run {run_id} ({detail.summary.name})?", abort=True)
        store.soft_delete(run_id)
    typer.echo(f"deleted run {run_id} (kirec runs restore {run_id} brings it back)")


@app.command("restore")
def restore_command(
    run_ids: Annotated[list[int], typer.Argument(help="Deleted runs to list again.")],
    db: DbOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """List deleted runs again (`runs list --deleted` shows them)."""
    from engine.services.runs import restore_runs

    with friendly_errors(), naming_runs(*run_ids):
        restore_runs(open_db(db, workspace), run_ids)
    typer.echo(f"restored run{'s' if len(run_ids) > 1 else ''} {', '.join(map(str, run_ids))}")
