"""Runs side by side: the params that differ (or all), final metrics with the differences marked, and the
validation curves overlaid. With one run it is that run's detail view."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label
from textual.worker import Worker, WorkerState

from kirec_tui.widgets.chart import LineChart

CURVE_KEYS = ("valid/NDCG@10", "valid/HR@10", "train/loss")
LOWER_IS_BETTER = ("loss",)


def _value_text(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def best_index(values: tuple[float | None, ...], key: str) -> int | None:
    """Which run has the best value of `key` (None when fewer than two runs have it or all are equal)."""
    present = [(v, i) for i, v in enumerate(values) if v is not None]
    if len(present) < 2 or len({v for v, _ in present}) == 1:
        return None
    lower = any(word in key for word in LOWER_IS_BETTER)
    return (min(present) if lower else max(present))[1]


class CompareScreen(Screen):
    BINDINGS = [
        Binding("escape,q", "close", "Back"),
        Binding("a", "toggle_all_params", "All/differing params"),
        Binding("m", "next_curve", "Next curve"),
    ]

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = list(run_ids)
        self.show_all_params = len(self.run_ids) == 1
        self.curve_key = CURVE_KEYS[0]
        self.comparison = None
        self.histories: dict[str, dict[int, list[float]]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label("loading…", id="compare-title")
        with Horizontal(id="compare-body"):
            with Vertical(id="compare-left"):
                yield Label("", id="params-title", classes="section")
                yield DataTable(id="compare-params", zebra_stripes=True, cursor_type="row")
            with Vertical(id="compare-right"):
                yield Label("final metrics (best marked ★)", classes="section")
                yield DataTable(id="compare-metrics", zebra_stripes=True, cursor_type="row")
                yield LineChart(id="compare-chart")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Compare runs" if len(self.run_ids) > 1 else f"Run {self.run_ids[0]}"
        self._load()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _load(self) -> None:
        store = self.app.store
        comparison = store.compare_runs(self.run_ids)
        histories = {
            key: {rid: [p.value for p in store.metric_history(rid, key)] for rid in self.run_ids} for key in CURVE_KEYS
        }
        self.app.call_from_thread(self._show, comparison, histories)

    def _show(self, comparison, histories) -> None:
        self.comparison, self.histories = comparison, histories
        names = "   ".join(f"[b]#{r.id}[/b] {r.summary.name} ({r.summary.status})" for r in comparison.runs)
        self.query_one("#compare-title", Label).update(names)
        self._fill_params()
        self._fill_metrics()
        self._draw_curves()
        self.query_one("#compare-params", DataTable).focus()

    def _headers(self) -> list[str]:
        return [f"#{rid}" for rid in self.run_ids]

    def _fill_params(self) -> None:
        table = self.query_one("#compare-params", DataTable)
        table.clear(columns=True)
        table.add_columns("param", *self._headers())
        params = self.comparison.params if self.show_all_params else self.comparison.differing_params
        for key, values in params.items():
            differs = key in self.comparison.differing_params and len(self.run_ids) > 1
            style = "bold yellow" if differs else ""
            table.add_row(Text(key, style=style), *(Text(_value_text(v), style=style) for v in values), key=key)
        which = "all params" if self.show_all_params else "params that differ"
        self.query_one("#params-title", Label).update(f"{which} ({len(params)})   a: toggle")

    def _fill_metrics(self) -> None:
        table = self.query_one("#compare-metrics", DataTable)
        table.clear(columns=True)
        table.add_columns("metric", *self._headers())
        for key, values in self.comparison.metrics.items():
            best = best_index(values, key)
            row = [Text(key, style="bold" if best is not None else "dim")]
            for i, value in enumerate(values):
                text = _value_text(value) + (" ★" if i == best else "")
                row.append(Text(text, style="bold green" if i == best else "", justify="right"))
            table.add_row(*row, key=key)

    def _draw_curves(self) -> None:
        chart = self.query_one(LineChart)
        chart.title = f"{self.curve_key} per epoch   m: next"
        per_run = self.histories.get(self.curve_key, {})
        chart.set_series([(f"#{rid}", per_run.get(rid, [])) for rid in self.run_ids])

    def action_toggle_all_params(self) -> None:
        if self.comparison is not None:
            self.show_all_params = not self.show_all_params
            self._fill_params()

    def action_next_curve(self) -> None:
        self.curve_key = CURVE_KEYS[(CURVE_KEYS.index(self.curve_key) + 1) % len(CURVE_KEYS)]
        if self.comparison is not None:
            self._draw_curves()

    def action_close(self) -> None:
        self.app.pop_screen()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.query_one("#compare-title", Label).update(f"[red]{event.worker.error}[/red]")
