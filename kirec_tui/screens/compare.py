"""Runs side by side: their configuration (the params that differ, or all), what they recorded apart from it (led by
the researcher's tags and note), final metrics against a baseline run, and any logged curve overlaid. With one run
it is that run's detail view.

The screen follows the store as the Runs screen does: a timer polls the store's cheap `last_change()` token and
reloads when it moved, so a run opened while RUNNING shows its epochs as they come and FINISHED when it ends.
On a narrower terminal (see wide_from) the two halves (metrics and curves; configuration and outputs) take the screen in turn (`v`).
"""

from __future__ import annotations

import math

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Label, Select, Static
from textual.worker import Worker, WorkerState

from kirec_tui.widgets.chart import LineChart
from kirec_tui.values import is_count, value_text
from kirec_tui.widgets.table import Table

# The curves offered first, in this order (the m key cycles through them, then every other logged series).
PREFERRED_CURVES = ("valid/NDCG@10", "valid/HR@10", "train/loss", "time/epoch_seconds")
CURVE_KEYS = PREFERRED_CURVES[:3]  # the curves every run logs per epoch
LOWER_IS_BETTER = ("loss", "seconds")
# From this width on both halves show side by side: a run's detail needs 100 columns, each compared run 20 more
# (its value, Δ and × columns).
DETAIL_WIDE_COLUMNS, COLUMNS_PER_RUN = 100, 20
CELL_CHARS = 28  # longer values are cut with "…"; Enter shows them whole


def shortened(text: str, limit: int = CELL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def best_index(values: tuple[float | None, ...], key: str) -> int | None:
    """Which run has the best value of `key` (None when fewer than two runs have it or all are equal)."""
    present = [(v, i) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(present) < 2 or len({v for v, _ in present}) == 1:
        return None
    lower = any(word in key for word in LOWER_IS_BETTER)
    return (min(present) if lower else max(present))[1]


def delta_texts(key: str, value: float | None, base: float | None) -> tuple[Text, Text]:
    """The Δ and × cells of `value` against the baseline's `base`: green when better, red when worse."""
    if value is None or base is None or not (math.isfinite(value) and math.isfinite(base)):
        return Text("—", justify="right"), Text("—", justify="right")
    delta = value - base
    lower = any(word in key for word in LOWER_IS_BETTER)
    style = "" if delta == 0 else "green" if (delta < 0) == lower else "red"
    shown = f"{int(delta):+d}" if is_count(key, value) and is_count(key, base) else f"{delta:+.4f}"
    ratio = f"×{value / base:.3f}" if base != 0 else "—"
    return Text(shown, style=style, justify="right"), Text(ratio, style=style, justify="right")


def curve_order(keys) -> list[str]:
    """The preferred curves first (those logged), then every other series by name."""
    present = set(keys)
    return [k for k in PREFERRED_CURVES if k in present] + sorted(present - set(PREFERRED_CURVES))


class FullValueModal(ModalScreen[None]):
    """One row of a table with every run's value whole (the tables cut long values)."""

    DEFAULT_CSS = """
    FullValueModal .dialog { width: 90%; }
    FullValueModal VerticalScroll { height: auto; max-height: 20; }
    """

    BINDINGS = [Binding("escape,enter,q", "dismiss", "Close")]

    def __init__(self, key: str, values: list[tuple[str, str]]) -> None:
        super().__init__()
        self.key = key
        self.values = values

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="full-value"):
            yield Label(f"[b]{self.key}[/b]")
            with VerticalScroll():
                for run, text in self.values:
                    yield Static(Text.assemble((f"{run}: ", "bold"), text), classes="full-value-line")
            yield Label("Escape: close", classes="hint")


class ValueTable(Table):
    """A table whose Enter (shown in the footer) opens the highlighted row's full values."""

    BINDINGS = [Binding("enter", "select_cursor", "Full value")]


class CompareScreen(Screen):
    # CSS, not DEFAULT_CSS: these rules must outrank kirec.tcss's plain #compare-* ones (default CSS never does)
    CSS = """
    CompareScreen #compare-curve { width: 100%; }
    CompareScreen #compare-title { width: 100%; }
    CompareScreen #compare-left { width: 2fr; }
    CompareScreen #compare-right { width: 3fr; }
    CompareScreen.-narrow #compare-body { layout: vertical; }
    CompareScreen.-narrow #compare-left, CompareScreen.-narrow #compare-right { width: 100%; height: 1fr; }
    CompareScreen.-narrow #compare-left { display: none; }
    CompareScreen.-narrow.-setup #compare-left { display: block; }
    CompareScreen.-narrow.-setup #compare-right { display: none; }
    CompareScreen.-narrow #compare-chart { height: 10; }
    CompareScreen #compare-outputs { height: 1fr; }
    """
    BINDINGS = [
        Binding("escape,q", "close", "Back"),
        Binding("v", "switch_half", "Config/metrics"),
        Binding("m", "next_curve", "Next curve"),
        Binding("b", "next_baseline", "Baseline"),
        Binding("a", "toggle_all_params", "All params"),
    ]

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = list(run_ids)
        self.show_all_params = len(self.run_ids) == 1
        self.curve_key = CURVE_KEYS[0]
        self.baseline = self.run_ids[0]  # the run the Δ and × columns measure against
        self.view = None  # engine.services.runs.RunsSideBySide, once loaded
        self._curve_options: list[str] = []

    @property
    def comparison(self):
        """The loaded runs (None until the first load ends)."""
        return self.view

    @property
    def histories(self) -> dict[str, dict[int, list[float]]]:
        return self.view.curves if self.view is not None else {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label("loading…", id="compare-title")
        with Horizontal(id="compare-body"):
            with Vertical(id="compare-left"):
                yield Label("", id="params-title", classes="section")
                yield ValueTable(id="compare-params", zebra_stripes=True, cursor_type="row")
                yield Label("outputs", id="outputs-title", classes="section")
                yield ValueTable(id="compare-outputs", zebra_stripes=True, cursor_type="row")
            with Vertical(id="compare-right"):
                yield Label("final metrics", id="metrics-title", classes="section")
                yield ValueTable(id="compare-metrics", zebra_stripes=True, cursor_type="row")
                yield Select([(key, key) for key in CURVE_KEYS], allow_blank=False, id="compare-curve", compact=True)
                yield LineChart(id="compare-chart")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Compare runs" if len(self.run_ids) > 1 else f"Run {self.run_ids[0]}"
        self._fit(self.size.width)
        self._load()
        self.set_interval(self.app.poll_seconds, self._poll)

    def on_resize(self, event) -> None:
        self._fit(event.size.width)

    @property
    def wide_from(self) -> int:
        return DETAIL_WIDE_COLUMNS + COLUMNS_PER_RUN * (len(self.run_ids) - 1)

    def _fit(self, width: int) -> None:
        self.set_class(width < self.wide_from, "-narrow")
        self.refresh_bindings()

    # -- loading and following the store -------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="compare-load", exit_on_error=False)
    def _load(self) -> None:
        from engine.services.runs import runs_side_by_side

        view = runs_side_by_side(self.app.store, self.run_ids)
        self.app.call_from_thread(self._show, view)

    @work(thread=True, exclusive=True, group="compare-poll", exit_on_error=False)
    def _poll(self) -> None:
        view = self.view
        if view is None:
            return
        store = self.app.store
        if any(run.summary.status == "RUNNING" for run in view.runs):
            store.mark_orphans()  # a writer that died writes nothing: ask, and the token moves if it did
        if store.last_change() != view.token:
            self.app.call_from_thread(self._reload_unless_loading)

    def _reload_unless_loading(self) -> None:
        # A load in flight reads the store after this change; restarting it would cancel it (see RunsScreen).
        if self.is_attached and not any(
            w.group == "compare-load" and w.node is self and not w.is_finished for w in self.app.workers
        ):
            self._load()

    def _show(self, view) -> None:
        if not self.is_attached:  # closed while the worker read the store
            return
        first = self.view is None
        self.view = view
        self._fill_title()
        self._fill_params()
        self._fill_outputs()
        self._fill_metrics()
        self._fill_curve_choices()
        self._draw_curves()
        if first:
            self.query_one("#compare-metrics", DataTable).focus()

    def _fill_title(self) -> None:
        parts = []
        for run in self.view.runs:
            status = run.summary.status
            colour = {"FINISHED": "green", "RUNNING": "yellow", "FAILED": "red"}.get(status, "magenta")
            parts.append(f"[b]#{run.id}[/b] {run.summary.name} ([{colour}]{status}[/{colour}])")
        errors = [f"#{run.id}: {run.error.splitlines()[0]}" for run in self.view.runs if run.error]
        line = "   ".join(parts) + ("\n[red]" + "; ".join(errors) + "[/red]" if errors else "")
        self.query_one("#compare-title", Label).update(Text.from_markup(line))

    def _headers(self) -> list[str]:
        return [f"#{rid}" for rid in self.run_ids]

    @staticmethod
    def _refill(table: DataTable, columns: list[str], rows: list[tuple[str, list]]) -> None:
        """Replace the table's rows, the cursor staying on the row with the same key (a reload keeps the place)."""
        current = None
        if table.row_count and table.cursor_row < table.row_count:
            current = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        table.clear(columns=True)
        table.add_columns(*columns)
        for key, cells in rows:
            table.add_row(*cells, key=key)
        keys = [key for key, _ in rows]
        if current in keys:
            table.move_cursor(row=keys.index(current), animate=False)

    def _fill_params(self) -> None:
        view = self.view
        params = view.settings if self.show_all_params else view.differing_settings
        rows = []
        for key, values in params.items():
            differs = key in view.differing_settings and len(self.run_ids) > 1
            style = "bold yellow" if differs else ""
            cells = [Text(key, style=style), *(Text(shortened(value_text(key, v)), style=style) for v in values)]
            rows.append((key, cells))
        self._refill(self.query_one("#compare-params", DataTable), ["param", *self._headers()], rows)
        which = f"{len(params)} params   a: differing" if self.show_all_params else f"{len(params)} differ   a: all"
        if len(self.run_ids) == 1:
            which = f"{len(params)} params"
        self.query_one("#params-title", Label).update(f"configuration ({which})")

    def _fill_outputs(self) -> None:
        rows = []
        for key, values in self.view.annotations.items():  # the researcher's tags and note lead
            cells = [Text(key, style="bold cyan"), *(Text(shortened(v), style="cyan") for v in values)]
            rows.append((key, cells))
        for key, values in self.view.outputs.items():
            differs = len(self.run_ids) > 1 and len(set(values)) > 1
            style = "bold" if differs else ""
            cells = [Text(key, style=style)]
            cells += [Text(shortened(value_text(key, v)), style=style, justify="right") for v in values]
            rows.append((key, cells))
        self._refill(self.query_one("#compare-outputs", DataTable), ["output", *self._headers()], rows)
        notes = len(self.view.annotations)
        count = f"{len(rows) - notes}" + (" and the tags/note" if notes else "")
        self.query_one("#outputs-title", Label).update(f"outputs, recorded by the run ({count})")

    def _fill_metrics(self) -> None:
        ids = self.run_ids
        base = ids.index(self.baseline)
        compared = len(ids) > 1
        columns = ["metric"]
        for rid in ids:
            columns.append(f"#{rid} base" if compared and rid == self.baseline else f"#{rid}")
            if compared and rid != self.baseline:
                columns += [f"Δ#{rid}", f"×#{rid}"]
        rows = []
        for key, values in self.view.metrics.items():
            best = best_index(values, key)
            cells = [Text(key, style="bold" if best is not None else "dim")]
            for i, value in enumerate(values):
                text = value_text(key, value) + (" ★" if i == best else "")
                cells.append(Text(text, style="bold green" if i == best else "", justify="right"))
                if compared and i != base:
                    cells += delta_texts(key, value, values[base])
            rows.append((key, cells))
        self._refill(self.query_one("#compare-metrics", DataTable), columns, rows)
        title = "final metrics, best ★"
        if compared:
            title += f", Δ and × against baseline #{self.baseline} (b: next)"
        self.query_one("#metrics-title", Label).update(title)

    # -- curves --------------------------------------------------------------------------------------------

    def curve_keys(self) -> list[str]:
        return curve_order(self.histories)

    def _fill_curve_choices(self) -> None:
        keys = self.curve_keys()
        if self.curve_key not in keys and keys:
            self.curve_key = keys[0]
        select = self.query_one("#compare-curve", Select)
        if keys and keys != self._curve_options:
            self._curve_options = keys
            with select.prevent(Select.Changed):
                select.set_options([(key, key) for key in keys])
        if keys and select.value != self.curve_key:
            with select.prevent(Select.Changed):
                select.value = self.curve_key

    def _draw_curves(self) -> None:
        chart = self.query_one(LineChart)
        count = len(self.curve_keys())
        chart.title = f"{self.curve_key} per epoch   m: next ({count} curves)"
        per_run = self.histories.get(self.curve_key, {})
        chart.set_series([(f"#{rid}", per_run.get(rid, [])) for rid in self.run_ids])

    def show_curve(self, key: str) -> None:
        self.curve_key = key
        if self.view is not None:
            self._fill_curve_choices()
            self._draw_curves()

    @on(Select.Changed, "#compare-curve")
    def _curve_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.curve_key:
            self.show_curve(event.value)

    def action_next_curve(self) -> None:
        keys = self.curve_keys() or list(CURVE_KEYS)
        position = keys.index(self.curve_key) if self.curve_key in keys else -1
        self.show_curve(keys[(position + 1) % len(keys)])

    # -- other actions -------------------------------------------------------------------------------------

    def action_toggle_all_params(self) -> None:
        self.show_all_params = not self.show_all_params
        if self.view is not None:
            self._fill_params()

    def action_next_baseline(self) -> None:
        if len(self.run_ids) > 1:
            self.baseline = self.run_ids[(self.run_ids.index(self.baseline) + 1) % len(self.run_ids)]
            if self.view is not None:
                self._fill_metrics()

    def action_switch_half(self) -> None:
        self.toggle_class("-setup")
        target = "#compare-params" if self.has_class("-setup") else "#compare-metrics"
        self.query_one(target, DataTable).focus()

    def action_show_full(self) -> None:
        table = self.focused if isinstance(self.focused, DataTable) else None
        if self.view is None or table is None or not table.row_count:
            return
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        outputs = {**self.view.annotations, **self.view.outputs}
        source = {"compare-params": self.view.settings, "compare-outputs": outputs}.get(table.id, self.view.metrics)
        values = source.get(key, ())
        self.app.push_screen(
            FullValueModal(key, [(f"#{rid}", value_text(key, v)) for rid, v in zip(self.run_ids, values)])
        )

    @on(DataTable.RowSelected)
    def _row_chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_show_full()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "switch_half":
            return self.has_class("-narrow")
        if action in ("next_baseline", "toggle_all_params"):  # one run: no baseline, every param differs from none
            return len(self.run_ids) > 1
        return True

    def action_close(self) -> None:
        self.app.pop_screen()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # A failed poll (the store busy for a moment) is retried by the next one; a failed load is said.
        if event.state == WorkerState.ERROR and event.worker.group == "compare-load":
            self.query_one("#compare-title", Label).update(Text(str(event.worker.error), style="red"))

    def palette_commands(self):
        from textual.app import SystemCommand

        yield SystemCommand("Compare: next curve", "Show the next logged curve (m)", self.action_next_curve)
        yield SystemCommand("Compare: choose a curve", "Pick any logged curve", self._focus_curve_choice)
        if len(self.run_ids) > 1:
            yield SystemCommand(
                "Compare: next baseline", "Measure Δ and × against the next run (b)", self.action_next_baseline
            )
            yield SystemCommand(
                "Compare: all or differing params", "Toggle the configuration rows (a)", self.action_toggle_all_params
            )
        yield SystemCommand("Compare: full value", "The highlighted row's values whole (Enter)", self.action_show_full)
        if self.has_class("-narrow"):
            yield SystemCommand(
                "Compare: configuration or metrics", "Switch the half shown (v)", self.action_switch_half
            )

    def _focus_curve_choice(self) -> None:
        select = self.query_one("#compare-curve", Select)
        if self.has_class("-setup"):  # the curves are in the other half
            self.action_switch_half()
        select.focus()
        select.action_show_overlay()
