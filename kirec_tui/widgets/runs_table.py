"""The Runs table: one row per `RunSummary`, columns that map onto the store's sort keys, a selection mark."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.widgets import DataTable

STATUS_STYLE = {"RUNNING": "bold #4fc1ff", "FINISHED": "green", "FAILED": "bold red", "INTERRUPTED": "yellow"}
SELECTED_MARK = "●"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    store_order: str | None  # RunStore.list_runs order_by; None: sorted here (the store has no index for it)


COLUMNS: tuple[Column, ...] = (
    Column("mark", " ", None),
    Column("id", "id", "id"),
    Column("name", "name", "name"),
    Column("status", "status", "status"),
    Column("dataset", "dataset", "dataset"),
    Column("method", "method", "method"),
    Column("backbone", "backbone", "backbone"),
    Column("fusion", "fusion", None),
    Column("prompt", "prompt", None),
    Column("hr10", "HR@10", "test/HR@10"),
    Column("ndcg10", "NDCG@10", "test/NDCG@10"),
    Column("started", "started (UTC)", "started_at"),
    Column("duration", "duration", "duration"),
)
SORTABLE = tuple(c for c in COLUMNS if c.key != "mark")
COLUMN_BY_KEY = {c.key: c for c in COLUMNS}


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def format_started(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M")  # the store gives UTC datetimes


def format_metric(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def test_metric(run, key: str) -> float | None:
    return run.test_metrics.get(f"test/{key}", run.test_metrics.get(key))


def cells(run, selected: bool) -> list[object]:
    return [
        Text(SELECTED_MARK if selected else " ", style="bold magenta"),
        Text(str(run.id), justify="right"),
        run.name,
        Text(str(run.status), style=STATUS_STYLE.get(str(run.status), "")),
        run.dataset,
        run.method,
        run.backbone,
        run.fusion or "—",
        (run.prompt or "—")[:10],
        Text(format_metric(test_metric(run, "HR@10")), justify="right"),
        Text(format_metric(test_metric(run, "NDCG@10")), justify="right"),
        format_started(run.started_at),
        Text(format_duration(run.duration_seconds), justify="right"),
    ]


def sort_locally(runs: Sequence, column_key: str, descending: bool) -> list:
    """Order by fusion or prompt, which the store cannot order by; missing values last, id breaks ties."""
    present = [r for r in runs if getattr(r, column_key) is not None]
    missing = [r for r in runs if getattr(r, column_key) is None]
    present.sort(key=lambda r: (getattr(r, column_key), r.id), reverse=descending)
    return present + missing


class RunsTable(DataTable):
    """Row key = run id (as text); column keys = COLUMNS keys."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)

    def on_mount(self) -> None:
        for column in COLUMNS:
            self.add_column(column.label, key=column.key)

    def show(self, runs: Sequence, selected: set[int], keep_cursor: bool = True, limit: int | None = None) -> None:
        """Replace the rows with the first `limit` runs; with `keep_cursor`, the cursor stays on the same run
        when it is still shown.

        DataTable measures every cell of every row it is given (about 0.3 ms a row here), so a listing of
        10,000 runs is shown a window at a time (`extend` adds the next rows) to keep every reload fast.
        """
        current = self.current_run_id() if keep_cursor else None
        self.clear()
        self.extend(runs[:limit] if limit is not None else runs, selected)
        if current is not None and str(current) in self.rows:
            self.move_cursor(row=self.get_row_index(str(current)), animate=False)

    def extend(self, runs: Iterable, selected: set[int]) -> None:
        for run in runs:
            self.add_row(*cells(run, run.id in selected), key=str(run.id))

    def mark_sorted(self, column_key: str, descending: bool) -> None:
        """Put ▼/▲ after the sorted column's label (and remove it from the others)."""
        for column in COLUMNS:
            label = column.label + ((" ▼" if descending else " ▲") if column.key == column_key else "")
            self.columns[column.key].label = Text(label)
        self.refresh()

    def current_run_id(self) -> int | None:
        if not self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except Exception:  # cursor outside the rows while the table is being replaced
            return None
        return int(row_key.value) if row_key.value is not None else None

    def set_mark(self, run_id: int, selected: bool) -> None:
        if str(run_id) in self.rows:
            self.update_cell(str(run_id), "mark", Text(SELECTED_MARK if selected else " ", style="bold magenta"))
