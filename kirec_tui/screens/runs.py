"""The Runs screen (home): every run in the store, filtered, sorted, kept fresh while other processes write.

Reads happen in thread workers; a timer polls the store's cheap `last_change()` token and reloads only
when it moved, so a `kirec run` in another terminal appears here within one poll period. While a listed run
is RUNNING, the poll also asks the store whether its writer died (it then reads INTERRUPTED, and the token
moves). `r` resumes an INTERRUPTED run in a thread worker, as the Train screen runs one.
"""

from __future__ import annotations

import threading
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.worker import Worker, WorkerState
from textual.widgets import DataTable, Footer, Header, Input, Label, Select

from kirec_tui.screens.compare import CompareScreen
from kirec_tui.screens.modals import ConfirmModal, TextPromptModal
from kirec_tui.widgets.runs_table import COLUMN_BY_KEY, SORTABLE, RunsTable, sort_locally

STATUSES = (
    "RUNNING",
    "FINISHED",
    "FAILED",
    "INTERRUPTED",
)  # engine.store.RunStatus, without importing the store (start-up)
PAGE_ROWS = 500  # rows shown per window of the listing (see RunsTable.show)
FILTER_DEBOUNCE_SECONDS = 0.25


class RunsScreen(Screen):
    BINDINGS = [
        Binding("space", "toggle_select", "Select"),
        Binding("c", "compare", "Compare"),
        Binding("enter", "details", "Run details", show=False),
        Binding("s", "next_sort", "Sort col"),
        Binding("o", "reverse_sort", "Asc/desc"),
        Binding("slash", "focus_filter", "Filter"),
        Binding("escape", "focus_table", "Table", show=False),
        Binding("d", "delete", "Delete"),
        Binding("e", "export", "Export CSV"),
        Binding("r", "resume", "Resume"),
        Binding("f5", "reload", "Reload", show=False),  # the screen reloads on its own when the store changes
        Binding("x", "clear_selection", "Unselect all", show=False),
        Binding("m", "more_rows", f"{PAGE_ROWS} more rows", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.selected: set[int] = set()
        self.sort_key = "started"
        self.descending = True
        self.runs: list = []
        self._token: int | None = None
        self._known: dict[str, set[str]] = {"dataset": set(), "method": set()}
        self._debounce = None
        self.shown_rows = PAGE_ROWS
        self._stop_resume = threading.Event()
        self.resume_worker: Worker | None = None
        self.resume_state = ""  # shown in the info line while a resume runs

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="runs-filters"):
            yield Input(placeholder="/ filter: name, dataset, method, backbone, tag", id="filter-text")
            yield Select([(s, s) for s in STATUSES], prompt="any status", id="filter-status")
            yield Select([], prompt="any dataset", id="filter-dataset")
            yield Select([], prompt="any method", id="filter-method")
        yield RunsTable(id="runs-table")
        yield Label("", id="runs-info")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Runs"
        self.query_one(RunsTable).focus()
        self.load_runs()
        self.set_interval(self.app.poll_seconds, self.poll_changes)

    def on_unmount(self) -> None:
        self._stop_resume.set()  # a resume in progress ends INTERRUPTED at its next step, resumable again

    # -- loading -------------------------------------------------------------------------------------------

    def _filters(self) -> dict:
        def value(selector: str) -> str | None:
            chosen = self.query_one(selector, Select).value
            return None if chosen is Select.BLANK or chosen is Select.NULL else str(chosen)

        text = self.query_one("#filter-text", Input).value.strip() or None
        return {
            "status": value("#filter-status"),
            "dataset": value("#filter-dataset"),
            "method": value("#filter-method"),
            "text": text,
        }

    def load_runs(self, cursor_to_top: bool = False) -> None:
        """Reload in a worker; the cursor stays on its run unless the user re-sorted (then it goes to the top)."""
        column = COLUMN_BY_KEY[self.sort_key]
        self._load(self._filters(), column.store_order, column.key, self.descending, cursor_to_top)

    @work(thread=True, exclusive=True, group="runs-load", exit_on_error=False)
    def _load(
        self, filters: dict, store_order: str | None, column_key: str, descending: bool, cursor_to_top: bool
    ) -> None:
        store = self.app.store
        store.mark_orphans()  # runs whose writer died show as INTERRUPTED, not forever RUNNING
        token = store.last_change()
        runs = store.list_runs(order_by=store_order or "id", descending=descending, **filters)
        if store_order is None:
            runs = sort_locally(runs, column_key, descending)
        self.app.call_from_thread(self._show, runs, token, not any(filters.values()), cursor_to_top)

    def _show(self, runs: list, token: int, unfiltered: bool, cursor_to_top: bool) -> None:
        self._token = token
        self.runs = runs
        listed = {r.id for r in runs}
        table = self.query_one(RunsTable)
        table.mark_sorted(self.sort_key, self.descending)  # before the rows, so the widths allow for the arrow
        if cursor_to_top:
            self.shown_rows = PAGE_ROWS
        table.show(runs, self.selected & listed, keep_cursor=not cursor_to_top, limit=self.shown_rows)
        if unfiltered:
            self._update_filter_choices(runs)
        self._update_info()

    def _update_filter_choices(self, runs: list) -> None:
        for field in ("dataset", "method"):
            values = {getattr(r, field) for r in runs}
            if values != self._known[field]:
                self._known[field] = values
                select = self.query_one(f"#filter-{field}", Select)
                select.set_options([(v, v) for v in sorted(values)])

    def _update_info(self) -> None:
        arrow = "↓" if self.descending else "↑"
        label = COLUMN_BY_KEY[self.sort_key].label
        chosen = f"   {len(self.selected)} selected" if self.selected else ""
        shown = self.query_one(RunsTable).row_count
        window = f"   showing the first {shown:,} (m: {PAGE_ROWS} more)" if shown < len(self.runs) else ""
        resuming = f"   {self.resume_state}" if self.resume_state else ""
        self.query_one("#runs-info", Label).update(
            f"{len(self.runs):,} runs   sorted by {label} {arrow}{chosen}{window}{resuming}"
        )

    def action_more_rows(self) -> None:
        table = self.query_one(RunsTable)
        start = table.row_count
        if start < len(self.runs):
            self.shown_rows = start + PAGE_ROWS
            table.extend(self.runs[start : self.shown_rows], self.selected)
            self._update_info()

    def poll_changes(self) -> None:
        self._poll()

    @work(thread=True, exclusive=True, group="runs-poll", exit_on_error=False)
    def _poll(self) -> None:
        if any(r.status == "RUNNING" for r in self.runs):
            self.app.store.mark_orphans()  # a writer that died writes nothing: ask, and the token moves if it did
        token = self.app.store.last_change()
        if token != self._token:
            self.app.call_from_thread(self._reload_unless_loading)

    def _reload_unless_loading(self) -> None:
        # A load already in flight reads the store after this change; restarting it (the group is exclusive)
        # would cancel it, and on a store slower to read than one poll period no load would ever finish.
        loading = any(w.group == "runs-load" and w.node is self and not w.is_finished for w in self.app.workers)
        if not loading:
            self.load_runs()

    # -- filters and sorting -------------------------------------------------------------------------------

    @on(Input.Changed, "#filter-text")
    def _text_changed(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(FILTER_DEBOUNCE_SECONDS, self.load_runs)

    @on(Input.Submitted, "#filter-text")
    def _text_submitted(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()  # Enter loads now; the pending debounced load would only repeat it
        self.load_runs()
        self.query_one(RunsTable).focus()

    @on(Select.Changed)
    def _select_changed(self) -> None:
        self.load_runs()

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key == "mark":
            return
        self.sort_by(key, not self.descending if key == self.sort_key else key in ("started", "hr10", "ndcg10", "id"))

    def sort_by(self, column_key: str, descending: bool) -> None:
        self.sort_key, self.descending = column_key, descending
        self.load_runs(cursor_to_top=True)

    def action_next_sort(self) -> None:
        keys = [c.key for c in SORTABLE]
        self.sort_by(keys[(keys.index(self.sort_key) + 1) % len(keys)], self.descending)

    def action_reverse_sort(self) -> None:
        self.sort_by(self.sort_key, not self.descending)

    def action_focus_filter(self) -> None:
        self.query_one("#filter-text", Input).focus()

    def action_focus_table(self) -> None:
        self.query_one(RunsTable).focus()

    def action_reload(self) -> None:
        self.load_runs()

    # -- selection and actions -----------------------------------------------------------------------------

    def action_toggle_select(self) -> None:
        table = self.query_one(RunsTable)
        run_id = table.current_run_id()
        if run_id is None:
            return
        self.selected ^= {run_id}
        table.set_mark(run_id, run_id in self.selected)
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)
        self._update_info()

    def action_clear_selection(self) -> None:
        table = self.query_one(RunsTable)
        for run_id in self.selected:
            table.set_mark(run_id, False)
        self.selected.clear()
        self._update_info()

    def _target_ids(self) -> list[int]:
        """The selected runs, or else the one under the cursor."""
        if self.selected:
            return sorted(self.selected)
        current = self.query_one(RunsTable).current_run_id()
        return [] if current is None else [current]

    def action_compare(self) -> None:
        if len(self.selected) < 2:
            self.notify("Select two or more runs with space, then press c", severity="warning")
            return
        self.app.push_screen(CompareScreen(sorted(self.selected)))

    def action_details(self) -> None:
        current = self.query_one(RunsTable).current_run_id()
        if current is not None:
            self.app.push_screen(CompareScreen([current]))

    @on(DataTable.RowSelected)
    def _row_chosen(self, event: DataTable.RowSelected) -> None:
        self.app.push_screen(CompareScreen([int(event.row_key.value)]))

    def action_delete(self) -> None:
        ids = self._target_ids()
        if not ids:
            return
        listed = ", ".join(str(i) for i in ids[:8]) + (" …" if len(ids) > 8 else "")
        question = f"Soft-delete {len(ids)} run(s) ({listed})? They disappear from listings; their rows stay."

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(ids)

        self.app.push_screen(ConfirmModal(question), answered)

    @work(thread=True, group="runs-write", exit_on_error=False)
    def _delete(self, ids: list[int]) -> None:
        for run_id in ids:
            self.app.store.soft_delete(run_id)
        self.app.call_from_thread(self._after_delete, ids)

    def _after_delete(self, ids: list[int]) -> None:
        self.selected -= set(ids)
        self.notify(f"deleted {len(ids)} run(s)")
        self.load_runs()

    def action_export(self) -> None:
        ids = sorted(self.selected) if self.selected else None
        what = f"{len(ids)} selected runs" if ids else "all runs"

        def answered(path: str | None) -> None:
            if path:
                self._export(ids, path)

        self.app.push_screen(TextPromptModal(f"Export {what} as CSV to:", "kirec-runs.csv"), answered)

    @work(thread=True, group="runs-write", exit_on_error=False)
    def _export(self, ids: list[int] | None, path: str, force: bool = False) -> None:
        from engine.services.errors import ExportTargetExistsError, StoreError
        from engine.services.runs import export_runs

        target = Path(path).expanduser()
        target = target if target.is_absolute() else self.app.cwd / target
        try:
            export_runs(self.app.store, ids, "csv", target, force=force)
        except ExportTargetExistsError:
            self.app.call_from_thread(self._confirm_overwrite, ids, target)
            return
        except StoreError as exc:  # e.g. the runs database itself: never overwritten
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        except OSError as exc:
            self.app.call_from_thread(self.notify, f"{target}: {exc.strerror}", severity="error")
            return
        self.app.call_from_thread(self.notify, f"exported to {target}")

    def _confirm_overwrite(self, ids: list[int] | None, target: Path) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._export(ids, str(target), force=True)

        self.app.push_screen(ConfirmModal(f"{target} exists. Replace it?"), answered)

    # -- resuming ------------------------------------------------------------------------------------------

    @property
    def resuming(self) -> bool:
        return self.resume_worker is not None and self.resume_worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    def action_resume(self) -> None:
        run_id = self.query_one(RunsTable).current_run_id()
        run = next((r for r in self.runs if r.id == run_id), None)
        if run is None:
            return
        if self.resuming:
            self.notify("a resume is already in progress", severity="warning")
            return
        if run.status != "INTERRUPTED":
            self.notify(f"run {run.id} is {run.status}; only INTERRUPTED runs can be resumed", severity="warning")
            return
        self._stop_resume = threading.Event()
        self.resume_state = f"resuming run {run.id}…"
        self._update_info()
        self.resume_worker = self._resume(run.id)

    @work(thread=True, exclusive=True, group="runs-resume", exit_on_error=False)
    def _resume(self, run_id: int):
        from engine.events import EpochEnd
        from engine.services import experiments

        def on_event(event) -> None:
            if isinstance(event, EpochEnd):
                self.app.call_from_thread(self._resume_progress, f"resuming run {run_id}: epoch {event.epoch} done")

        return experiments.resume(
            self.app.db_path,
            run_id,
            on_event=on_event,
            should_stop=self._stop_resume.is_set,
            cwd=self.app.cwd,
            workspace=self.app.workspace.root,
        )

    def _resume_progress(self, state: str) -> None:
        self.resume_state = state
        self._update_info()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is self.resume_worker and event.state == WorkerState.SUCCESS:
            result = event.worker.result
            self.resume_state = ""
            self.notify(
                f"run {result.run_id} {result.status}",
                severity="information" if result.status == "FINISHED" else "warning",
            )
            self.load_runs()
        elif event.state == WorkerState.ERROR:
            if event.worker is self.resume_worker:
                self.resume_state = ""
                self._update_info()
            self.notify(f"{type(event.worker.error).__name__}: {event.worker.error}", severity="error", timeout=8)

    def palette_commands(self):
        from textual.app import SystemCommand

        yield SystemCommand("Runs: compare selected", "Compare the runs selected with space", self.action_compare)
        yield SystemCommand("Runs: export CSV", "Write the selected (or all) runs to a CSV file", self.action_export)
        yield SystemCommand("Runs: delete", "Soft-delete the selected runs (asks first)", self.action_delete)
        yield SystemCommand("Runs: resume", "Continue the INTERRUPTED run under the cursor", self.action_resume)
        yield SystemCommand("Runs: reload", "Read the runs database again", self.action_reload)
