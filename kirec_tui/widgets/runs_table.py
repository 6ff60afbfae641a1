"""The Runs table: one row per `RunSummary`, a selection mark, and the columns the researcher chose (any final test
metric the runs logged, and the descriptive columns); every column maps onto a sort the store (or, for fusion,
prompt, tags and note, this module) can do.

Column order puts the metrics right after a run's name and status, so that they stay on screen in a narrow
terminal; the descriptive columns follow and scroll off to the right first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.binding import Binding

from kirec_tui.widgets.table import Table

STATUS_STYLE = {"RUNNING": "bold #4fc1ff", "FINISHED": "green", "FAILED": "bold red", "INTERRUPTED": "yellow"}
SELECTED_MARK = "●"
DELETED_MARK = "×"
TEST_PREFIX = "test/"
NAME_WIDTH = 28  # longer names end in "…": a long name must not push the metrics off a 100-column terminal
NOTE_WIDTH = 30


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    store_order: str | None  # RunStore.list_runs order_by; None: sorted here (the store has no index for it)
    descending_first: bool = False  # sorting by it starts with the largest (metrics: best first; newest first)
    optional: bool = True  # the column chooser may hide it


MARK = Column("mark", " ", None, optional=False)
LEADING: tuple[Column, ...] = (
    Column("id", "id", "id", descending_first=True, optional=False),
    Column("name", "name", "name", optional=False),
    Column("status", "status", "status", optional=False),
)
# After the metrics, in this order.
TRAILING: tuple[Column, ...] = (
    Column("dataset", "dataset", "dataset"),
    Column("method", "method", "method"),
    Column("backbone", "backbone", "backbone"),
    Column("fusion", "fusion", None),
    Column("prompt", "prompt", None),
    Column("labels", "tags", None),
    Column("note", "note", None),
    Column("started", "started (UTC)", "started_at", descending_first=True),
    Column("duration", "duration", "duration"),
)
DEFAULT_METRICS = ("test/HR@10", "test/NDCG@10")
DEFAULT_COLUMNS = (
    *DEFAULT_METRICS,
    *(c.key for c in TRAILING if c.key not in ("prompt", "note")),
)
LOCAL_SORT_KEYS = {"fusion", "prompt", "labels", "note"}
_BY_KEY = {c.key: c for c in (MARK, *LEADING, *TRAILING)}
_METRIC_NAMES = ("HR", "NDCG", "MRR")
_GROUPS = ("", "head", "tail")


def is_metric(key: str) -> bool:
    return key.startswith(TEST_PREFIX)


def metric_label(key: str) -> str:
    return key.removeprefix(TEST_PREFIX)


def column(key: str) -> Column:
    """The column of `key`: a descriptive one, or a final test metric ("test/MRR@20/tail")."""
    if key in _BY_KEY:
        return _BY_KEY[key]
    if is_metric(key):
        return Column(key, metric_label(key), key, descending_first=True)
    raise KeyError(f"no runs column {key!r}")


def metric_order(key: str) -> tuple:
    """Overall before head before tail, then HR, NDCG, MRR, then by cut-off; other keys (user counts) last."""
    found = re.fullmatch(r"([A-Za-z]+)@(\d+)(?:/(\w+))?", metric_label(key))
    if found and found[1] in _METRIC_NAMES and (found[3] or "") in _GROUPS:
        return (0, _GROUPS.index(found[3] or ""), _METRIC_NAMES.index(found[1]), int(found[2]), "")
    return (1, 0, 0, 0, key)


def logged_metrics(runs: Iterable) -> list[str]:
    """Every final test metric key any of `runs` logged, in metric_order."""
    return sorted({k for run in runs for k in run.test_metrics if is_metric(k)}, key=metric_order)


def columns_for(visible: Iterable[str]) -> tuple[Column, ...]:
    """The table's columns for the chosen keys: mark, id, name, status, the metrics, then the descriptive ones."""
    chosen = set(visible)
    metrics = sorted((k for k in chosen if is_metric(k)), key=metric_order)
    return (
        MARK,
        *LEADING,
        *(column(k) for k in metrics),
        *(c for c in TRAILING if c.key in chosen),
    )


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def format_started(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M")  # the store gives UTC datetimes


def format_metric(value: float | None, key: str = "") -> str:
    if value is None or value != value:  # missing, or NaN
        return "—"
    if metric_label(key).startswith("users"):
        return f"{value:,.0f}"  # a count of users, not a rate
    return f"{value:.4f}"


def test_metric(run, key: str) -> float | None:
    return run.test_metrics.get(key, run.test_metrics.get(f"{TEST_PREFIX}{key}"))


def _shortened(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def mark_cell(selected: bool, deleted: bool) -> Text:
    if selected:
        return Text(SELECTED_MARK, style="bold magenta")
    return Text(DELETED_MARK, style="bold red") if deleted else Text(" ")


def cell(run, key: str, selected: bool) -> object:
    if key == "mark":
        return mark_cell(selected, run.deleted)
    if key == "id":
        return Text(str(run.id), justify="right")
    if key == "name":
        return Text(_shortened(run.name, NAME_WIDTH), style="strike dim" if run.deleted else "")
    if key == "status":
        return Text(str(run.status), style=STATUS_STYLE.get(str(run.status), ""))
    if is_metric(key):
        return Text(format_metric(test_metric(run, key), key), justify="right")
    if key == "fusion":
        return run.fusion or "—"  # None also where the run's method fuses nothing (services.runs.list_runs)
    if key == "prompt":
        return (run.prompt or "—")[:10]
    if key == "labels":
        return " ".join(run.labels)
    if key == "note":
        return _shortened(run.note or "", NOTE_WIDTH)
    if key == "started":
        return format_started(run.started_at)
    if key == "duration":
        return Text(format_duration(run.duration_seconds), justify="right")
    return str(getattr(run, key))


def _local_value(run, key: str):
    if key == "labels":
        return " ".join(run.labels) or None
    return getattr(run, key)


def sort_locally(runs: Sequence, column_key: str, descending: bool) -> list:
    """Order by fusion, prompt, tags or note, which the store cannot order by; missing values last, id breaks ties."""
    present = [r for r in runs if _local_value(r, column_key) is not None]
    missing = [r for r in runs if _local_value(r, column_key) is None]
    present.sort(key=lambda r: (_local_value(r, column_key), r.id), reverse=descending)
    return present + missing


class RunsTable(Table):
    """Row key = run id (as text); column keys = the Column keys (a metric column's key is its metric key)."""

    # DataTable's own Enter binding is hidden; shown here, so the footer says that Enter opens the run.
    BINDINGS = [Binding("enter", "select_cursor", "Open run", show=True)]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.shown_columns: tuple[Column, ...] = ()
        self._sorted: tuple[str, bool] | None = None

    def show(
        self,
        runs: Sequence,
        selected: set[int],
        columns: Sequence[Column],
        keep_cursor: bool = True,
        limit: int | None = None,
    ) -> None:
        """Replace the rows with the first `limit` runs under `columns`; with `keep_cursor`, the cursor stays on
        the same run when it is still shown.

        DataTable measures every cell of every row it is given (about 0.3 ms a row here), so a listing of
        10,000 runs is shown a window at a time (`extend` adds the next rows) to keep every reload fast.
        """
        current = self.current_run_id() if keep_cursor else None
        if tuple(columns) != self.shown_columns:
            self.clear(columns=True)
            self.shown_columns = tuple(columns)
            for col in self.shown_columns:
                self.add_column(col.label, key=col.key)
            if self._sorted is not None:
                self.mark_sorted(*self._sorted)
        else:
            self.clear()
        self.extend(runs[:limit] if limit is not None else runs, selected)
        if current is not None and str(current) in self.rows:
            self.move_cursor(row=self.get_row_index(str(current)), animate=False)

    def extend(self, runs: Iterable, selected: set[int]) -> None:
        keys = [c.key for c in self.shown_columns]
        for run in runs:
            chosen = run.id in selected
            self.add_row(*(cell(run, key, chosen) for key in keys), key=str(run.id))

    def mark_sorted(self, column_key: str, descending: bool) -> None:
        """Put ▼/▲ after the sorted column's label (and remove it from the others)."""
        self._sorted = (column_key, descending)
        for col in self.shown_columns:
            label = col.label + ((" ▼" if descending else " ▲") if col.key == column_key else "")
            self.columns[col.key].label = Text(label)
        self.refresh()

    def current_run_id(self) -> int | None:
        if not self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except Exception:  # cursor outside the rows while the table is being replaced
            return None
        return int(row_key.value) if row_key.value is not None else None

    def set_mark(self, run_id: int, selected: bool, deleted: bool = False) -> None:
        if str(run_id) in self.rows:
            self.update_cell(str(run_id), "mark", mark_cell(selected, deleted))
