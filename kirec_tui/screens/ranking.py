"""Rank changes between two runs: for every user, the held-out item's full rank in run A and in run B, and how
many users gained or lost (by how much), over all users, head and tail items, and history-length buckets
(engine.services.ranking). Pushed from the Items screen (`r`), which shares its reloaded runs."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label

from kirec_tui.screens.items import message_of, parse_run_ids, progress_text
from kirec_tui.values import duration_text
from kirec_tui.widgets.table import Table


def _count(n: int, total: int, style: str = "") -> Text:
    share = f" {100 * n / total:.0f}%" if total else ""
    return Text(f"{n:,}{share}", style=style, justify="right")


class RankingScreen(Screen):
    AUTO_FOCUS = "#ranking-table"
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("a", "focus_runs", "Runs"),
    ]

    def __init__(self, run_ids: list[int], items_screen) -> None:
        """`items_screen`: the ItemsScreen whose reloaded runs this screen shares (`load_runs`)."""
        super().__init__()
        self.run_ids = list(run_ids)
        self.items_screen = items_screen
        self.comparison = None  # engine.evaluation.rank_changes.RankComparison, once computed
        self.seconds: float | None = None

    def compose(self) -> ComposeResult:
        first, second = (self.run_ids + [None, None])[:2]
        yield Header()
        with Horizontal(id="ranking-inputs"):
            yield Label("run A", classes="field-label")
            yield Input(
                "" if first is None else str(first), placeholder="e.g. the ID baseline", id="ranking-a", compact=True
            )
            yield Label("run B", classes="field-label")
            yield Input("" if second is None else str(second), placeholder="e.g. KIRec", id="ranking-b", compact=True)
        yield Label("", id="ranking-status", classes="progress-line")
        yield Label(
            "rank of each user's held-out test item among all items; + : run B ranks it higher", id="ranking-legend"
        )
        yield Table(id="ranking-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Rank changes"
        if len(self.run_ids) == 2:
            self.compute(*self.run_ids)
        else:
            self.query_one("#ranking-status", Label).update(
                Text("type two run ids (a), then Enter: run A → run B", style="yellow")
            )

    @on(Input.Submitted)
    def _submitted(self) -> None:
        try:
            (a,) = parse_run_ids(self.query_one("#ranking-a", Input).value)
            (b,) = parse_run_ids(self.query_one("#ranking-b", Input).value)
        except ValueError:
            self.query_one("#ranking-status", Label).update(Text("run A and run B: one run id each", style="red"))
            return
        self.query_one("#ranking-table", DataTable).focus()
        self.compute(a, b)

    def compute(self, run_a: int, run_b: int) -> None:
        self.comparison = None
        self.query_one("#ranking-table", DataTable).clear(columns=True)  # nothing stale while it computes
        self.query_one("#ranking-status", Label).update(f"comparing run {run_a} → run {run_b}…")
        self._compute(run_a, run_b)

    @work(thread=True, exclusive=True, group="ranking", exit_on_error=False)
    def _compute(self, run_a: int, run_b: int) -> None:
        import time

        from engine.services import ranking

        def report(progress) -> None:
            self.app.call_from_thread(self._status, progress_text(progress))

        start = time.perf_counter()
        try:
            trained = self.items_screen.load_runs([run_a, run_b], report)
            self.app.call_from_thread(self._status, "ranking every user's held-out item in both runs…")
            comparison = ranking.compare_runs(*trained)
        except Exception as exc:
            self.app.call_from_thread(self._status, Text(message_of(exc), style="red"))
            return
        self.app.call_from_thread(self._show, comparison, time.perf_counter() - start)

    def _status(self, line) -> None:
        self.query_one("#ranking-status", Label).update(line)

    def _show(self, comparison, seconds: float) -> None:
        self.comparison, self.seconds = comparison, seconds
        table = self.query_one("#ranking-table", DataTable)
        table.clear(columns=True)
        table.add_columns("users", "n", "gained", "same", "lost", *comparison.labels, "med Δ", "NDCG A", "NDCG B")
        for group in comparison.groups:
            n = group.users
            table.add_row(
                Text(group.name, style="bold" if group.kind == "all" else ""),
                Text(f"{n:,}", justify="right"),
                _count(group.gained, n, "green"),
                _count(group.same, n),
                _count(group.lost, n, "red"),
                *(Text(f"{group.buckets[label]:,}", justify="right") for label in comparison.labels),
                Text(f"{group.median_change:+g}", justify="right"),
                Text(f"{group.ndcg_a:.4f}", justify="right"),
                Text(f"{group.ndcg_b:.4f}", style="green" if group.ndcg_b > group.ndcg_a else "", justify="right"),
                key=group.name,
            )
        self._status(
            Text(
                f"run {comparison.run_a} → run {comparison.run_b}: {comparison.users:,} users, "
                f"{comparison.num_items:,} items, in {duration_text(seconds)}",
                style="dim",
            )
        )

    def action_close(self) -> None:
        self.app.pop_screen()

    def action_focus_runs(self) -> None:
        self.query_one("#ranking-a", Input).focus()
