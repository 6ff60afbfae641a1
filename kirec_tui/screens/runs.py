"""The Runs screen (home): every run in the store, filtered, sorted, kept fresh while other processes write.

The researcher chooses the columns (`v`: any final test metric the runs logged, and the descriptive columns),
sorts by any of them (a header click, or `s` and a pick), tags and annotates runs (`t`, `n`), exports what the
filters show (`e`: CSV, or JSON with the per-epoch curves), and can show deleted runs to restore them (`D`, `u`).
Those choices last as long as the app runs (the screen is created once, with its mode).

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
from kirec_tui.screens.runs_dialogs import ColumnChooser, ExportDialog, SortPicker
from kirec_tui.widgets.runs_table import (
    DEFAULT_COLUMNS,
    DEFAULT_METRICS,
    LOCAL_SORT_KEYS,
    TRAILING,
    RunsTable,
    column,
    columns_for,
    logged_metrics,
    metric_order,
    sort_locally,
)

STATUSES = (
    "RUNNING",
    "FINISHED",
    "FAILED",
    "INTERRUPTED",
)  # engine.store.RunStatus, without importing the store (start-up)
PAGE_ROWS = 500  # rows shown per window of the listing (see RunsTable.show)
FILTER_DEBOUNCE_SECONDS = 0.25


class NoteOrTagsPrompt(TextPromptModal):
    """A TextPromptModal where Enter on an empty line answers "" (remove them), and only Escape answers None."""

    def on_input_submitted(self, event) -> None:
        event.prevent_default()  # Textual would call TextPromptModal's handler too
        self.dismiss(event.value.strip())


class RunsScreen(Screen):
    # The footer shows those with show=True (Enter first: RunsTable shows it) and then the screen keys, in up to 140
    # columns; F1 lists every binding, the palette every action.
    BINDINGS = [
        Binding("enter", "details", "Open run", show=False),  # when the table is focused, its own Enter shows
        Binding("space", "toggle_select", "Select"),
        Binding("c", "compare", "Compare"),
        Binding("s", "pick_sort", "Sort"),
        Binding("o", "reverse_sort", "Asc/desc", show=False),
        Binding("slash", "focus_filter", "Filter"),
        Binding("v", "choose_columns", "Columns"),
        Binding("t", "tags", "Tags"),
        Binding("n", "note", "Note", show=False),
        Binding("e", "export", "Export"),
        Binding("d", "delete", "Delete"),
        Binding("D", "toggle_deleted", "Show deleted", show=False),  # the delete notice names it
        Binding("u", "restore", "Restore", show=False),  # named on the info line while deleted runs show
        Binding("r", "resume", "Resume"),
        Binding("escape", "focus_table", "Table", show=False),
        Binding("f5", "reload", "Reload", show=False),  # the screen reloads on its own when the store changes
        Binding("x", "clear_selection", "Unselect all", show=False),
        Binding("m", "more_rows", f"{PAGE_ROWS} more rows", show=False),
    ]
    # Below 110 columns the filter selectors narrow (kirec.tcss), so that the text filter keeps room to type.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]

    def __init__(self) -> None:
        super().__init__()
        self.selected: set[int] = set()
        self.sort_key = "started"
        self.descending = True
        self.column_keys: list[str] = list(DEFAULT_COLUMNS)  # column keys shown, chosen with `v`
        self.show_deleted = False
        self.metric_keys: list[str] = list(DEFAULT_METRICS)  # every final test metric seen in a listing
        self.runs: list = []
        self._by_id: dict = {}
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
            yield Input(placeholder="/ filter: name, tag, note, dataset, method, backbone", id="filter-text")
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
        sorted_by = column(self.sort_key)
        self._load(
            self._filters(), self.show_deleted, sorted_by.store_order, sorted_by.key, self.descending, cursor_to_top
        )

    @work(thread=True, exclusive=True, group="runs-load", exit_on_error=False)
    def _load(
        self,
        filters: dict,
        include_deleted: bool,
        store_order: str | None,
        column_key: str,
        descending: bool,
        cursor_to_top: bool,
    ) -> None:
        from engine.services.runs import list_runs

        store = self.app.store
        store.mark_orphans()  # runs whose writer died show as INTERRUPTED, not forever RUNNING
        token = store.last_change()
        runs = list_runs(
            store, order_by=store_order or "id", descending=descending, include_deleted=include_deleted, **filters
        )
        if store_order is None or column_key in LOCAL_SORT_KEYS:
            runs = sort_locally(runs, column_key, descending)
        self.app.call_from_thread(self._show, runs, token, not any(filters.values()), cursor_to_top)

    def _show(self, runs: list, token: int, unfiltered: bool, cursor_to_top: bool) -> None:
        self._token = token
        self.runs = runs
        self._by_id = {r.id: r for r in runs}
        self.metric_keys = sorted({*self.metric_keys, *logged_metrics(runs)}, key=metric_order)
        if cursor_to_top:
            self.shown_rows = PAGE_ROWS
        self._render_rows(keep_cursor=not cursor_to_top)
        if unfiltered:
            self._update_filter_choices(runs)
        self._update_info()

    def _render_rows(self, keep_cursor: bool = True) -> None:
        table = self.query_one(RunsTable)
        listed = {r.id for r in self.runs}
        table.mark_sorted(self.sort_key, self.descending)  # before the rows, so the widths allow for the arrow
        table.show(
            self.runs,
            self.selected & listed,
            columns_for(self.column_keys),
            keep_cursor=keep_cursor,
            limit=self.shown_rows,
        )

    def _update_filter_choices(self, runs: list) -> None:
        for field in ("dataset", "method"):
            values = {getattr(r, field) for r in runs}
            if values != self._known[field]:
                self._known[field] = values
                select = self.query_one(f"#filter-{field}", Select)
                select.set_options([(v, v) for v in sorted(values)])

    def _update_info(self) -> None:
        arrow = "↓" if self.descending else "↑"
        label = column(self.sort_key).label
        chosen = f"   {len(self.selected)} selected" if self.selected else ""
        table = self.query_one(RunsTable)
        shown = table.row_count
        window = f"   showing the first {shown:,} (m: {PAGE_ROWS} more)" if shown < len(self.runs) else ""
        deleted = "   deleted runs shown (×; u restores)" if self.show_deleted else ""
        resuming = f"   {self.resume_state}" if self.resume_state else ""
        current = self._run(table.current_run_id())
        note = f"   note: {current.note}" if current is not None and current.note else ""
        self.query_one("#runs-info", Label).update(
            f"{len(self.runs):,} runs   sorted by {label} {arrow}{chosen}{window}{deleted}{resuming}{note}"
        )

    def _run(self, run_id: int | None):
        return self._by_id.get(run_id) if run_id is not None else None

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self) -> None:
        self._update_info()  # the info line ends with the note of the run under the cursor

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
        if key != "mark":
            self.sort_toggling(key)

    def sort_toggling(self, column_key: str) -> None:
        """Sort by the column: the other way round if it is the sorted one, else in its natural first order."""
        descending = not self.descending if column_key == self.sort_key else column(column_key).descending_first
        self.sort_by(column_key, descending)

    def sort_by(self, column_key: str, descending: bool) -> None:
        self.sort_key, self.descending = column_key, descending
        self.load_runs(cursor_to_top=True)

    def action_pick_sort(self) -> None:
        shown = [(c.key, c.label) for c in columns_for(self.column_keys) if c.key != "mark"]

        def picked(key: str | None) -> None:
            if key:
                self.sort_toggling(key)

        self.app.push_screen(SortPicker(shown, self.sort_key, self.descending), picked)

    def action_choose_columns(self) -> None:
        metrics = sorted({*self.metric_keys, *(k for k in self.column_keys if k.startswith("test/"))}, key=metric_order)
        choices = [(k, column(k).label) for k in metrics] + [(c.key, c.label) for c in TRAILING]

        def chosen(keys: list[str] | None) -> None:
            if keys is not None and keys != self.column_keys:
                self.column_keys = list(keys)
                self._render_rows()
                self._update_info()

        self.app.push_screen(ColumnChooser(choices, self.column_keys), chosen)

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
        run = self._run(run_id)
        table.set_mark(run_id, run_id in self.selected, run is not None and run.deleted)
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)
        self._update_info()

    def action_clear_selection(self) -> None:
        table = self.query_one(RunsTable)
        for run_id in self.selected:
            run = self._run(run_id)
            table.set_mark(run_id, False, run is not None and run.deleted)
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
        from engine.services.runs import delete_runs

        delete_runs(self.app.store, ids)
        self.app.call_from_thread(self._after_write, ids, f"deleted {len(ids)} run(s) (D shows them, u restores)")

    def _after_write(self, ids: list[int], message: str) -> None:
        if not self.show_deleted:
            self.selected -= set(ids)
        self.notify(message)
        self.load_runs()

    def action_toggle_deleted(self) -> None:
        self.show_deleted = not self.show_deleted
        if not self.show_deleted:
            self.selected -= {r.id for r in self.runs if r.deleted}
        self.load_runs()

    def action_restore(self) -> None:
        targets = {r.id for r in self.runs if r.deleted} & set(self._target_ids())
        if not targets:
            hint = "" if self.show_deleted else " (D shows deleted runs)"
            self.notify(f"no deleted run selected or under the cursor{hint}", severity="warning")
            return
        self._restore(sorted(targets))

    @work(thread=True, group="runs-write", exit_on_error=False)
    def _restore(self, ids: list[int]) -> None:
        from engine.services.runs import restore_runs

        restore_runs(self.app.store, ids)
        self.app.call_from_thread(self._after_write, ids, f"restored {len(ids)} run(s)")

    # -- tags and notes ------------------------------------------------------------------------------------

    def action_tags(self) -> None:
        ids = self._target_ids()
        if not ids:
            return
        if len(ids) == 1:
            run = self._run(ids[0])
            current = " ".join(run.labels) if run is not None else ""
            question = f"Tags of run {ids[0]}, separated by spaces (empty: none):"
        else:
            current = ""
            question = f"Tags to add to {len(ids)} runs (-tag removes one):"

        def answered(text: str | None) -> None:
            if text is not None:
                self._write_tags(ids, text)

        self.app.push_screen(NoteOrTagsPrompt(question, current), answered)

    @work(thread=True, group="runs-write", exit_on_error=False)
    def _write_tags(self, ids: list[int], text: str) -> None:
        from engine.services import runs

        try:
            if len(ids) == 1:
                runs.set_run_tags(self.app.store, ids[0], runs.parse_tags(text))
            else:
                add, remove = runs.parse_tag_edits(text)
                runs.tag_runs(self.app.store, ids, add=add, remove=remove)
        except ValueError as exc:  # a tag with a space, say: one line, nothing written
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self.load_runs)

    def action_note(self) -> None:
        run = self._run(self.query_one(RunsTable).current_run_id())
        if run is None:
            return

        def answered(text: str | None) -> None:
            if text is not None:
                self._write_note(run.id, text)

        question = f"Note on run {run.id} (empty: remove it):"
        self.app.push_screen(NoteOrTagsPrompt(question, run.note or ""), answered)

    @work(thread=True, group="runs-write", exit_on_error=False)
    def _write_note(self, run_id: int, text: str) -> None:
        from engine.services.runs import set_run_note

        set_run_note(self.app.store, run_id, text or None)
        self.app.call_from_thread(self.load_runs)

    # -- export --------------------------------------------------------------------------------------------

    def action_export(self, fmt: str = "csv") -> None:
        """The selected runs, or else every run the filters list (not only the rows shown so far)."""
        ids = sorted(self.selected) if self.selected else [r.id for r in self.runs]
        if not ids:
            self.notify("no runs listed to export", severity="warning")
            return
        filtered = any(self._filters().values()) or self.show_deleted
        what = (
            f"{len(ids)} selected runs" if self.selected else f"the {len(ids)} runs listed" if filtered else "all runs"
        )

        def answered(answer: tuple[str, str] | None) -> None:
            if answer:
                self._export(ids, *answer)

        self.app.push_screen(ExportDialog(f"Export {what} to:", f"kirec-runs.{fmt}"), answered)

    @work(thread=True, group="runs-write", exit_on_error=False)
    def _export(self, ids: list[int], path: str, fmt: str = "csv", force: bool = False) -> None:
        from engine.services.errors import ExportTargetExistsError, StoreError
        from engine.services.runs import export_runs

        target = Path(path).expanduser()
        target = target if target.is_absolute() else self.app.cwd / target
        try:
            export_runs(self.app.store, ids, fmt, target, force=force, curves=fmt == "json")
        except ExportTargetExistsError:
            self.app.call_from_thread(self._confirm_overwrite, ids, target, fmt)
            return
        except StoreError as exc:  # e.g. the runs database itself: never overwritten
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        except OSError as exc:
            self.app.call_from_thread(self.notify, f"{target}: {exc.strerror}", severity="error")
            return
        self.app.call_from_thread(self.notify, f"exported to {target}")

    def _confirm_overwrite(self, ids: list[int], target: Path, fmt: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._export(ids, str(target), fmt, force=True)

        self.app.push_screen(ConfirmModal(f"{target} exists. Replace it?"), answered)

    # -- resuming ------------------------------------------------------------------------------------------

    @property
    def resuming(self) -> bool:
        return self.resume_worker is not None and self.resume_worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    def busy_work(self) -> str | None:
        """The app asks before quitting while a resume trains (kirec_tui.app.HoldsWork)."""
        return (self.resume_state or "a resume is running") if self.resuming else None

    def action_resume(self) -> None:
        run = self._run(self.query_one(RunsTable).current_run_id())
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
        yield SystemCommand("Runs: sort by…", "Pick the column the runs are sorted by", self.action_pick_sort)
        yield SystemCommand("Runs: columns…", "Choose the metric and other columns shown", self.action_choose_columns)
        yield SystemCommand(
            "Runs: tags", "Set the tags of the run under the cursor (or add to the selected)", self.action_tags
        )
        yield SystemCommand("Runs: note", "Write a note on the run under the cursor", self.action_note)
        yield SystemCommand("Runs: export CSV", "Write the selected (or listed) runs as CSV", self.action_export)
        yield SystemCommand(
            "Runs: export JSON",
            "Write the selected (or listed) runs as JSON, with their per-epoch curves",
            lambda: self.action_export("json"),
        )
        yield SystemCommand("Runs: delete", "Soft-delete the selected runs (asks first)", self.action_delete)
        yield SystemCommand("Runs: show deleted", "Show or hide deleted runs", self.action_toggle_deleted)
        yield SystemCommand("Runs: restore", "List the selected deleted runs again", self.action_restore)
        yield SystemCommand("Runs: resume", "Continue the INTERRUPTED run under the cursor", self.action_resume)
        yield SystemCommand("Runs: reload", "Read the runs database again", self.action_reload)
