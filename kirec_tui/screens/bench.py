"""The Bench screen: a `kirec bench` results table (mean ± std, gain over the baseline, Wilcoxon p-value) read
from the JSON files of a results folder (docs/results by default); Enter on a row opens that cell's runs in
Compare. Every number comes from the file, as engine.bench.table computed it; this screen only shows them."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, Select
from textual.worker import Worker, WorkerState

from kirec_tui.screens.compare import CompareScreen
from kirec_tui.widgets.table import Table

DEFAULT_FOLDER = "docs/results"  # where `kirec bench` writes, relative to where it ran
SIGNIFICANT = 0.05


def mean_std_text(value) -> str:
    return "—" if value is None else f"{value.mean:.4f} ± {value.std:.4f}"


def gain_text(cell, metric: str) -> Text:
    if cell.is_baseline:
        return Text("baseline", style="dim")
    gain = cell.gain.get(metric)
    if gain is None:
        return Text("—", style="dim")
    return Text(f"{gain * 100:+.1f}%", style="green" if gain > 0 else "red" if gain < 0 else "")


def p_text(p: float | None) -> Text:
    if p is None:
        return Text("—", style="dim")
    shown = f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"  # as the Markdown table prints it
    return Text(shown, style="bold green" if p < SIGNIFICANT else "")


class BenchTable(Table):
    """The results table; its Enter (select the row) is shown in the footer, since here it opens the row's runs."""

    BINDINGS = [Binding("enter", "select_cursor", "Open runs")]


class BenchScreen(Screen):
    DEFAULT_CSS = """
    #bench-source { height: 1; margin: 1 1 0 1; }
    #bench-source .field-label { width: 8; color: $text-muted; }
    #bench-folder { width: 1fr; margin-right: 2; }
    #bench-file { width: 1fr; }
    #bench-title { height: auto; padding: 0 1; }
    #bench-table { height: 1fr; }
    #bench-info { width: 100%; height: auto; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("enter", "open_cell", "Open runs", show=False),
        Binding("f", "focus_folder", "Folder"),
        Binding("b", "choose_bench", "Bench"),
        Binding("escape", "focus_table", "Table", show=False),
        Binding("f5", "reload", "Reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.table = None  # engine.services.bench.BenchTable shown now
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="bench-source"):
            yield Label("folder", classes="field-label")
            yield Input(id="bench-folder", placeholder="folder of kirec bench results (*.json)", compact=True)
            yield Select([], prompt="choose a bench", id="bench-file", compact=True)
        yield Label("", id="bench-title")
        yield BenchTable(id="bench-table", zebra_stripes=True, cursor_type="row")
        yield Label("", id="bench-info")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Bench"
        self.query_one("#bench-folder", Input).value = DEFAULT_FOLDER
        self.query_one(DataTable).focus()
        self.load_folder()

    # -- loading -------------------------------------------------------------------------------------------------

    def load_folder(self) -> None:
        self.query_one("#bench-info", Label).update("reading the folder…")
        folder = Path(self.query_one("#bench-folder", Input).value.strip() or ".").expanduser()
        self._list(folder if folder.is_absolute() else self.app.cwd / folder)

    @work(thread=True, exclusive=True, group="bench-load", exit_on_error=False)
    def _list(self, folder: Path) -> None:
        from engine.services.bench import BenchResultsError, benches_in_store, find_bench_results

        try:
            files, error = find_bench_results(folder), None
        except BenchResultsError as exc:
            files, error = [], str(exc)
        if not files:  # say what the store could make a table of instead
            known = benches_in_store(self.app.store)
            if known:
                listed = ", ".join(f"{name} ({runs} runs)" for name, runs in known.items())
                error = (error or f"no kirec bench results (*.json) in {folder}") + (
                    f"; this database holds runs of the benches {listed}: "
                    "`kirec bench FILE.toml --table-only` writes their table"
                )
        self.app.call_from_thread(self._show_files, folder, files, error)

    def _show_files(self, folder: Path, files: list[Path], error: str | None) -> None:
        select = self.query_one("#bench-file", Select)
        with self.prevent(Select.Changed):
            select.set_options([(p.stem, str(p)) for p in files])
        if not files:
            self._show_table(None, error or f"no kirec bench results (*.json) in {folder}: run `kirec bench`")
            return
        newest = max(files, key=lambda p: p.stat().st_mtime)
        with self.prevent(Select.Changed):
            select.value = str(newest)
        self._read(newest)

    @work(thread=True, exclusive=True, group="bench-load", exit_on_error=False)
    def _read(self, path: Path) -> None:
        from engine.services.bench import BenchResultsError, read_bench_results

        try:
            table = read_bench_results(path, store=self.app.store)
        except BenchResultsError as exc:
            self.app.call_from_thread(self._show_table, None, str(exc))
            return
        self.app.call_from_thread(self._show_table, table, None)

    # -- showing -------------------------------------------------------------------------------------------------

    def _show_table(self, table, error: str | None) -> None:
        self.table, self.error = table, error
        grid = self.query_one(DataTable)
        grid.clear(columns=True)
        title = self.query_one("#bench-title", Label)
        info = self.query_one("#bench-info", Label)
        if table is None:
            title.update(Text(error or "", style="red"))
            info.update("f: choose another folder")
            return
        sampled = any(c.protocol != "full" for c in table.cells)
        tuned = any(c.setting for c in table.cells)
        grid.add_columns(
            "dataset",
            "backbone",
            "method",
            *(["protocol"] if sampled else []),
            "seeds",
            "NDCG@10",
            "gain NDCG@10",
            "p",
            "HR@10",
            "gain HR@10",
            "NDCG@20",
            "HR@20",
            *(["setting"] if tuned else []),
            "runs",
        )
        for index, cell in enumerate(table.cells):
            method = Text(cell.method, style="bold" if cell.is_baseline else "")
            runs = ", ".join(map(str, cell.run_ids))
            grid.add_row(
                cell.dataset,
                cell.backbone,
                method,
                *([cell.protocol] if sampled else []),
                str(len(cell.seeds)),
                mean_std_text(cell.metrics["NDCG@10"]),
                gain_text(cell, "NDCG@10"),
                p_text(cell.p_value),
                mean_std_text(cell.metrics["HR@10"]),
                gain_text(cell, "HR@10"),
                mean_std_text(cell.metrics["NDCG@20"]),
                mean_std_text(cell.metrics["HR@20"]),
                *([", ".join(f"{k}={v}" for k, v in cell.setting.items()) or "—"] if tuned else []),
                Text(runs, style="" if cell.runs_in_store is not False else "dim strike"),
                key=str(index),
            )
        state = "" if table.complete else "  [yellow](incomplete)[/yellow]"
        title.update(
            f"[b]{escape(table.name)}[/b]{state}  {table.generated_at}  baseline [b]{table.baseline or '—'}[/b]\n"
            f"[dim]{escape(table.command)}[/dim]"
        )
        absent = sum(c.runs_in_store is False for c in table.cells)
        where = f"  {absent} rows' runs are not in {self.app.db_path} (made from {table.database})" if absent else ""
        where = escape(where)
        info.update(
            f"{len(table.cells)} rows: test split, mean ± std over seeds; gain and p (Wilcoxon over users of "
            f"NDCG@10) against the baseline of the same backbone.  Enter: the row's runs{where}"
        )

    # -- actions -------------------------------------------------------------------------------------------------

    def current_cell(self):
        grid = self.query_one(DataTable)
        if self.table is None or not grid.row_count:
            return None
        return self.table.cells[grid.cursor_row]

    def action_open_cell(self) -> None:
        cell = self.current_cell()
        if cell is None:
            return
        if cell.runs_in_store is False:
            self.notify(
                f"these runs are not in {self.app.db_path}: the table was made from {self.table.database}",
                severity="warning",
            )
            return
        self.app.push_screen(CompareScreen(list(cell.run_ids)))

    @on(DataTable.RowSelected, "#bench-table")
    def _row_chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_cell()

    @on(Select.Changed, "#bench-file")
    def _bench_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self._read(Path(event.value))
            self.query_one(DataTable).focus()

    @on(Input.Submitted, "#bench-folder")
    def _folder_entered(self) -> None:
        self.load_folder()
        self.query_one(DataTable).focus()

    def action_focus_folder(self) -> None:
        self.query_one("#bench-folder", Input).focus()

    def action_choose_bench(self) -> None:
        select = self.query_one("#bench-file", Select)
        select.focus()
        select.action_show_overlay()

    def action_focus_table(self) -> None:
        self.query_one(DataTable).focus()

    def action_reload(self) -> None:
        self.load_folder()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self._show_table(None, f"{type(event.worker.error).__name__}: {event.worker.error}")

    def palette_commands(self):
        from textual.app import SystemCommand

        yield SystemCommand(
            "Bench: open the row's runs", "Compare the runs of the row under the cursor", self.action_open_cell
        )
        yield SystemCommand("Bench: choose a bench", "Another results file of this folder", self.action_choose_bench)
        yield SystemCommand(
            "Bench: choose a folder", "Read results files from another folder", self.action_focus_folder
        )
        yield SystemCommand("Bench: reload", "Read the folder and the table again", self.action_reload)
