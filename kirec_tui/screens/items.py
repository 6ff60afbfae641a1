"""The Items screen: find an item (id or fuzzy title), see its text, popularity, the attributes each prompt
version extracted for it and its nearest neighbours in the text-embedding space and in a run's own item table;
and a user view: history with titles, the held-out item's full rank in each run, one run's top-k with the
held-out item marked, or two runs' lists with the ranks gained/lost. `r` opens the rank changes between two runs
over every user (screens/ranking.py).

Everything heavy (loading a dataset, a trained run, embeddings) runs in thread workers, which report progress
as they go; a view being recomputed is cleared at once, so nothing stale stays on screen.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.fuzzy import Matcher
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from kirec_tui.values import duration_text
from kirec_tui.widgets.table import Table

MAX_RESULTS = 50
NEIGHBOURS = 10
TOP_K = 10


@dataclass(repr=False)  # the default repr would print every item's popularity each time a worker is named
class LoadedDataset:
    dataset: Any  # engine.data.dataset.SequenceDataset
    popularity: Any  # numpy array, per item index
    index_of: dict[str, int]  # raw item id -> item index

    def __repr__(self) -> str:
        return f"LoadedDataset({self.dataset!r})"


def progress_text(progress) -> str:
    """One line for an engine.services.progress.Progress: stage, done / total, time per unit, ETA."""
    line = f"{progress.stage}: {progress.done:,} / {progress.total:,} {progress.unit}"
    if progress.per_unit is not None:
        unit = progress.unit.removesuffix("s")
        line += f" · {duration_text(progress.per_unit)} per {unit} · ETA {duration_text(progress.eta)}"
    return line + ("" if progress.done == progress.total else "…")


def search_items(loaded: LoadedDataset, query: str, limit: int = MAX_RESULTS) -> list[int]:
    """An exact raw id first, then titles ranked by Textual's fuzzy matcher (ties: more popular first); with no
    query, the most popular items, so the screen has something to open on arrival."""
    query = query.strip()
    if not query:
        order = sorted(range(1, loaded.dataset.num_items + 1), key=lambda i: (-int(loaded.popularity[i]), i))
        return order[:limit]
    found: list[int] = []
    exact = loaded.index_of.get(query)
    if exact is not None:
        found.append(exact)
    matcher = Matcher(query)
    ds = loaded.dataset
    scored = [(matcher.match(ds.title(i)), int(loaded.popularity[i]), i) for i in range(1, ds.num_items + 1)]
    scored = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], -s[1], s[2]))
    found.extend(i for _, _, i in scored if i != exact)
    return found[:limit]


def rank_changes(first: list, second: list) -> list[tuple[int, str, int | None, int | None]]:
    """(item, title, rank in first, rank in second) for every item in either list, biggest gain first."""
    ranks_a = {r.item: r.rank for r in first}
    ranks_b = {r.item: r.rank for r in second}
    titles = {r.item: r.title for r in (*first, *second)}
    # An item outside a top-k list ranks at least k + 1 there: gains and losses are counted from that bound.
    missing = max(len(first), len(second)) + 1

    def gain(item: int) -> int:
        return ranks_a.get(item, missing) - ranks_b.get(item, missing)

    return [(i, titles[i], ranks_a.get(i), ranks_b.get(i)) for i in sorted(titles, key=lambda i: (-gain(i), i))]


def parse_run_ids(text: str) -> list[int]:
    """Run ids typed as "3", "3 5" or "3,5"; ValueError for anything else."""
    return [int(part) for part in text.replace(",", " ").split()]


def message_of(exc: BaseException) -> str:
    """One line for an error a view shows in place: the engine's own message for the errors a user causes."""
    if isinstance(exc, (LookupError, ValueError, RuntimeError)):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


class ItemsScreen(Screen):
    # Focus starts on the results table, never in a text field that would swallow the screen's keys.
    AUTO_FOCUS = "#items-results"
    BINDINGS = [
        Binding("slash", "focus_search", "Search"),
        Binding("n", "neighbours", "Neighbours"),
        Binding("u", "user_view", "User"),
        Binding("i", "item_view", "Item"),
        Binding("r", "rank_changes", "Rank changes"),
        Binding("d", "focus_dataset", "Dataset", show=False),
        Binding("escape", "leave_field", "Leave field", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.loaded: LoadedDataset | None = None
        self.current_item: int | None = None
        self.results: list[int] = []
        self.neighbours: list[tuple[int, float]] = []  # in the text encoder's space
        self.run_neighbours: list[tuple[str, float]] = []  # (raw item id, cosine) in a run's item table
        self.neighbour_seconds: float | None = None  # how long the last text-space lookup took
        self.recommendations: dict[int, list] = {}
        self.held_out: list = []  # engine.services.ranking.HeldOutRank per run of the user view
        self._neighbour_space = None  # engine.services.items.TextNeighbours of the loaded dataset
        self._dataset_request: str | None = None  # the dataset asked for last: an older load arriving late is dropped
        # Trained runs reloaded once and shared by the user view, the run neighbours and the rank changes screen.
        self.trained: dict[int, Any] = {}
        self.trained_lock = threading.Lock()

    def compose(self) -> ComposeResult:
        default_dataset = self.app.data_settings().dataset
        yield Header()
        with Horizontal(id="items-top"):
            yield Label("dataset", classes="field-label")
            yield Input(default_dataset, id="items-dataset", compact=True)
            yield Label("run", classes="field-label", id="items-run-label")
            yield Input(
                placeholder="id", id="items-run", compact=True, tooltip="the run whose item table n also searches"
            )
            yield Label("", id="items-status")
        with TabbedContent(id="items-tabs"):
            with TabPane("Item", id="tab-item"):
                with Horizontal():
                    with Vertical(id="items-left"):
                        yield Input(placeholder="/ item id or title (fuzzy)", id="items-search")
                        yield Table(id="items-results", cursor_type="row", zebra_stripes=True)
                    with VerticalScroll(id="items-right"):
                        yield Static("", id="item-detail")
                        yield Label("neighbours, text encoder space (n)", classes="section")
                        yield Label("", id="neighbours-status", classes="progress-line")
                        yield Table(id="items-neighbours", cursor_type="row", zebra_stripes=True)
                        yield Label(
                            "neighbours, a run's item table (run field, then n)",
                            classes="section",
                            id="run-neighbours-title",
                        )
                        yield Label("", id="run-neighbours-status", classes="progress-line")
                        yield Table(id="items-run-neighbours", cursor_type="row", zebra_stripes=True)
            with TabPane("User", id="tab-user"):
                with Horizontal(id="user-inputs"):
                    yield Label("user", classes="field-label")
                    yield Input(placeholder="raw user id", id="user-id", compact=True)
                    yield Label("run(s)", classes="field-label")
                    yield Input(placeholder="run ids, e.g. 3 or 3 5", id="user-runs", compact=True)
                yield Label("", id="user-message", classes="progress-line")
                yield Static("", id="user-ranks")
                with Horizontal(id="user-body"):
                    with Vertical(id="user-left"):
                        yield Label("history (oldest first; ◆ valid, ★ test item)", classes="section")
                        yield Table(id="user-history", cursor_type="row", zebra_stripes=True)
                    with Vertical(id="user-right"):
                        yield Label("", id="recs-title", classes="section")
                        yield Table(id="user-recs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Items"
        self.query_one("#items-results", DataTable).add_columns("index", "id", "title", "popularity")
        self.query_one("#items-neighbours", DataTable).add_columns("item", "title", "cosine")
        self.query_one("#items-run-neighbours", DataTable).add_columns("item", "title", "cosine")
        self.query_one("#user-history", DataTable).add_columns("#", "item", "title")
        # Like Prompts: the dataset in the field is loaded at once, not after an Enter nobody knew to press.
        self.load_dataset(self.query_one("#items-dataset", Input).value.strip())

    def palette_commands(self):
        from textual.app import SystemCommand

        yield SystemCommand("Items: search", "Find an item by id or fuzzy title (/)", self.action_focus_search)
        yield SystemCommand(
            "Items: neighbours",
            "The item's nearest neighbours, text space and a run's item table (n)",
            self.action_neighbours,
        )
        yield SystemCommand(
            "Items: user view",
            "A user's history and the held-out item's full rank in each run (u)",
            self.action_user_view,
        )
        yield SystemCommand(
            "Items: rank changes between two runs",
            "How every user's held-out rank changes, by head/tail item and history length (r)",
            self.action_rank_changes,
        )

    # -- dataset ------------------------------------------------------------------------------------------

    @on(Input.Submitted, "#items-dataset")
    def _dataset_submitted(self, event: Input.Submitted) -> None:
        self.load_dataset(event.value.strip())
        self.query_one("#items-results", DataTable).focus()

    def load_dataset(self, name: str) -> None:
        if not name:
            return
        self._dataset_request = name
        self.query_one("#items-status", Label).update(f"loading {name}…")
        self._load_dataset(name)

    @work(thread=True, exclusive=True, group="items-dataset", exit_on_error=False)
    def _load_dataset(self, name: str) -> None:
        from engine.services import datasets

        try:
            ds = datasets.load(
                self.app.data_settings(name), cwd=self.app.cwd, cache_dir=self.app.workspace.dataset_cache
            )
        except Exception as exc:  # a missing dataset or a bad name: one line in place
            self.app.call_from_thread(self._dataset_failed, name, message_of(exc))
            return
        if get_current_worker().is_cancelled:
            return
        loaded = LoadedDataset(ds, ds.item_popularity(), {raw: i for i, raw in enumerate(ds.item_ids) if i})
        self.app.call_from_thread(self._dataset_ready, name, loaded)

    def _dataset_failed(self, name: str, message: str) -> None:
        if name == self._dataset_request:
            self.query_one("#items-status", Label).update(Text(message, style="red"))

    def _dataset_ready(self, name: str, loaded: LoadedDataset) -> None:
        from engine.services.items import TextNeighbours

        if name != self._dataset_request:
            return
        self.loaded = loaded
        self._neighbour_space = TextNeighbours(loaded.dataset, self.app.workspace.embedding_cache)
        self.current_item = None
        self._clear_neighbours()
        self.query_one("#item-detail", Static).update("")
        ds = loaded.dataset
        self.query_one("#items-status", Label).update(
            f"{ds.name}: {ds.num_users:,} users, {ds.num_items:,} items, {ds.num_interactions:,} interactions"
        )
        self.search(self.query_one("#items-search", Input).value)

    # -- search and item detail ---------------------------------------------------------------------------

    @on(Input.Changed, "#items-search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.search(event.value)

    def search(self, query: str) -> None:
        if self.loaded is not None:
            self._search(self.loaded, query)

    @work(thread=True, exclusive=True, group="items-search", exit_on_error=False)
    def _search(self, loaded: LoadedDataset, query: str) -> None:
        found = search_items(loaded, query)
        self.app.call_from_thread(self._show_results, loaded, found)

    def _show_results(self, loaded: LoadedDataset, found: list[int]) -> None:
        if loaded is not self.loaded:
            return
        self.results = found
        table = self.query_one("#items-results", DataTable)
        table.clear()
        ds, popularity = self.loaded.dataset, self.loaded.popularity
        for i in found:
            table.add_row(
                Text(str(i), justify="right"),
                ds.item_ids[i],
                ds.title(i),
                Text(str(int(popularity[i])), justify="right"),
                key=str(i),
            )
        if found:
            self.show_item(found[0])

    @on(DataTable.RowHighlighted, "#items-results")
    def _result_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.show_item(int(event.row_key.value))

    @on(DataTable.RowSelected, "#items-neighbours")
    def _neighbour_chosen(self, event: DataTable.RowSelected) -> None:
        self.show_item(int(event.row_key.value))
        self.action_neighbours()

    def show_item(self, item: int) -> None:
        if item == self.current_item:
            return
        self.current_item = item
        self._clear_neighbours()
        self._item_detail(self.loaded, item)

    @work(thread=True, exclusive=True, group="items-detail", exit_on_error=False)
    def _item_detail(self, loaded: LoadedDataset, item: int) -> None:
        from engine.services.items import item_view

        view = item_view(loaded.dataset, item, self.app.workspace.extraction_cache, loaded.popularity)
        self.app.call_from_thread(self._show_detail, view)

    def _show_detail(self, view) -> None:
        if view.index != self.current_item:
            return
        text = Text()
        text.append(f"{view.title}\n", style="bold")
        text.append(
            f"id {view.item_id}   index {view.index}   popularity {view.popularity} "
            f"training interactions (#{view.popularity_rank} of {view.num_items})\n\n",
            style="dim",
        )
        history = view.attributes
        for key, value in view.fields.items():
            shown = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            text.append(f"{key}: ", style="bold")
            text.append(f"{shown}\n")
        text.append("\nextracted attributes per prompt version\n", style="bold underline")
        if not history:
            text.append("none cached for this item (run an extraction, or use the Prompts screen)\n", style="dim")
        for entry in history:
            text.append(f"{entry.prompt_name} [{entry.prompt_hash[:8]}] {entry.model[:24]}: ", style="cyan")
            if entry.ok:
                text.append(json.dumps(entry.attributes, ensure_ascii=False) + "\n")
            else:
                text.append(f"failed ({entry.error})\n", style="red")
        self.query_one("#item-detail", Static).update(text)

    # -- neighbours ---------------------------------------------------------------------------------------

    def _clear_neighbours(self) -> None:
        self.neighbours, self.run_neighbours = [], []
        for table in ("#items-neighbours", "#items-run-neighbours"):
            self.query_one(table, DataTable).clear()
        for status in ("#neighbours-status", "#run-neighbours-status"):
            self.query_one(status, Label).update("")

    def action_neighbours(self) -> None:
        if self.loaded is None or self.current_item is None:
            self.notify("load a dataset and pick an item first", severity="warning")
            return
        item = self.current_item
        self._clear_neighbours()  # nothing stale while the new ones are computed
        self.neighbour_seconds = None
        space_ready = self._neighbour_space.ready
        self.query_one("#neighbours-status", Label).update(
            "looking up…" if space_ready else "reading the embedding cache (the first time, every item is embedded)…"
        )
        self._neighbours(item)
        run_status = self.query_one("#run-neighbours-status", Label)
        run_text = self.query_one("#items-run", Input).value.strip()
        if not run_text:
            run_status.update(
                Text("type a run id in the run field at the top (d, then tab) to see its item space", style="dim")
            )
            return
        try:
            (run_id,) = parse_run_ids(run_text)
        except ValueError:
            run_status.update(Text(f"run: one run id, got {run_text!r}", style="red"))
            return
        self.query_one("#run-neighbours-title", Label).update(f"neighbours, run {run_id}'s item table")
        run_status.update(f"loading run {run_id}'s model…" if run_id not in self.trained else "looking up…")
        self._run_neighbours(self.loaded, item, run_id)

    @work(thread=True, exclusive=True, group="items-neighbours", exit_on_error=False)
    def _neighbours(self, item: int) -> None:
        space = self._neighbour_space
        start = time.perf_counter()

        def report(progress) -> None:
            self.app.call_from_thread(self._neighbour_progress, space, item, progress_text(progress))

        try:
            found = space.of(item, NEIGHBOURS, on_progress=report)
        except Exception as exc:
            self.app.call_from_thread(self._neighbour_progress, space, item, Text(message_of(exc), style="red"))
            return
        self.app.call_from_thread(self._show_neighbours, space, item, found, time.perf_counter() - start)

    def _neighbour_progress(self, space, item: int, line) -> None:
        if space is self._neighbour_space and item == self.current_item:
            self.query_one("#neighbours-status", Label).update(line)

    def _show_neighbours(self, space, item: int, found: list[tuple[int, float]], seconds: float) -> None:
        if space is not self._neighbour_space or item != self.current_item:
            return
        self.neighbours, self.neighbour_seconds = found, seconds
        ds = self.loaded.dataset
        table = self.query_one("#items-neighbours", DataTable)
        table.clear()
        for other, score in found:
            table.add_row(ds.item_ids[other], ds.title(other), Text(f"{score:.3f}", justify="right"), key=str(other))
        self.query_one("#neighbours-status", Label).update(
            Text(f"{len(found)} nearest of {ds.item_ids[item]} by cosine, in {duration_text(seconds)}", style="dim")
        )

    @work(thread=True, exclusive=True, group="items-run-neighbours", exit_on_error=False)
    def _run_neighbours(self, loaded: LoadedDataset, item: int, run_id: int) -> None:
        from engine.services import runs

        def report(progress) -> None:
            self.app.call_from_thread(self._run_neighbour_status, item, progress_text(progress))

        try:
            (trained,) = self.load_runs([run_id], report)
            self.app.call_from_thread(self._run_neighbour_status, item, "looking up…")
            # By raw id: the run's data may be another preprocessing of the items than the loaded dataset.
            raw = loaded.dataset.item_ids[item]
            ids = trained.dataset.item_ids
            if raw not in ids[1:]:
                raise LookupError(f"item {raw} is not in run {run_id}'s data ({trained.dataset.name})")
            found = runs.run_item_neighbours(trained, ids.index(raw), NEIGHBOURS)
            rows = [(ids[i], trained.dataset.title(i), score) for i, score in found]
        except Exception as exc:
            self.app.call_from_thread(self._run_neighbour_status, item, Text(message_of(exc), style="red"))
            return
        self.app.call_from_thread(self._show_run_neighbours, item, run_id, rows)

    def _run_neighbour_status(self, item: int, line) -> None:
        if item == self.current_item:
            self.query_one("#run-neighbours-status", Label).update(line)

    def _show_run_neighbours(self, item: int, run_id: int, rows: list[tuple[str, str, float]]) -> None:
        if item != self.current_item:
            return
        self.run_neighbours = [(raw, score) for raw, _title, score in rows]
        table = self.query_one("#items-run-neighbours", DataTable)
        table.clear()
        for raw, title, score in rows:
            table.add_row(raw, title, Text(f"{score:.3f}", justify="right"))
        self.query_one("#run-neighbours-status", Label).update(
            Text(f"{len(rows)} nearest by cosine in run {run_id}'s fused item table", style="dim")
        )

    def load_runs(self, run_ids: list[int], on_progress) -> list:
        """The trained runs, each reloaded once per screen (a worker's call; one load at a time)."""
        from engine.services import ranking

        with self.trained_lock:
            return ranking.load_runs(
                self.app.store,
                run_ids,
                cwd=self.app.cwd,
                workspace=self.app.workspace.root,
                on_progress=on_progress,
                loaded=self.trained,
            )

    # -- user view ----------------------------------------------------------------------------------------

    @on(Input.Submitted, "#user-id")
    @on(Input.Submitted, "#user-runs")
    def _user_submitted(self) -> None:
        user = self.query_one("#user-id", Input).value.strip()
        runs_text = self.query_one("#user-runs", Input).value
        message = self.query_one("#user-message", Label)
        self._clear_user()
        try:
            run_ids = list(dict.fromkeys(parse_run_ids(runs_text)))
        except ValueError:
            message.update(Text("run(s): run ids separated by spaces, e.g. 3 or 3 5", style="red"))
            return
        if not user or not run_ids:
            message.update(Text("type a user id and one or more run ids, then Enter", style="yellow"))
            return
        message.update(f"looking up user {user}…")
        self._user_view(user, run_ids)

    def _clear_user(self) -> None:
        self.recommendations, self.held_out = {}, []
        self.query_one("#user-history", DataTable).clear()
        self.query_one("#user-recs", DataTable).clear(columns=True)
        self.query_one("#user-ranks", Static).update("")
        self.query_one("#recs-title", Label).update("")

    @work(thread=True, exclusive=True, group="items-user", exit_on_error=False)
    def _user_view(self, raw_user: str, run_ids: list[int]) -> None:
        from engine.services import ranking, runs

        def report(progress) -> None:
            self.app.call_from_thread(self._user_message, progress_text(progress))

        try:
            loaded = self.loaded
            if loaded is not None:  # answered from the loaded dataset, before any model loads, when it is the runs'
                problem = ranking.unknown_user(self.app.store, run_ids, loaded.dataset, raw_user)
                if problem:
                    self.app.call_from_thread(self._user_message, Text(problem, style="red"))
                    return
            trained = self.load_runs(run_ids, report)
            self.app.call_from_thread(self._user_message, "ranking the held-out item among all items…")
            found = [runs.recommend_for(t, raw_user, k=TOP_K, history="test") for t in trained[:2]]
            held = [ranking.held_out_rank(t, raw_user) for t in trained]
        except Exception as exc:
            self.app.call_from_thread(self._user_message, Text(message_of(exc), style="red"))
            return
        lists = {f.run_id: f.recommendations for f in found}
        self.app.call_from_thread(self._show_user, trained[0].dataset, found[0].user, lists, held)

    def _user_message(self, line) -> None:
        self.query_one("#user-message", Label).update(line)

    def _show_user(self, dataset, user: int, lists: dict[int, list], held: list) -> None:
        self.recommendations, self.held_out = lists, held
        self.query_one("#user-message", Label).update("")
        self.query_one("#user-ranks", Static).update(held_out_text(held))
        sequence = dataset.sequences[user]
        held_out = dataset.test_target(user)
        history = self.query_one("#user-history", DataTable)
        history.clear()
        for position, item in enumerate(sequence, start=1):
            mark = " ★" if position == len(sequence) else " ◆" if position == len(sequence) - 1 else ""
            history.add_row(str(position), dataset.item_ids[item], dataset.title(int(item)) + mark)
        table = self.query_one("#user-recs", DataTable)
        table.clear(columns=True)
        run_ids = list(lists)
        if len(run_ids) == 1:
            table.add_columns("rank", "item", "title", "score")
            for rec in lists[run_ids[0]]:
                style = "bold green" if rec.item == held_out else ""
                table.add_row(
                    str(rec.rank),
                    rec.item_id,
                    Text(rec.title + (" ★ held out" if rec.item == held_out else ""), style=style),
                    Text(f"{rec.score:.3f}", justify="right"),
                )
            title = f"run {run_ids[0]}: top {TOP_K} after the test history"
        else:
            first, second = (lists[r] for r in run_ids)
            table.add_columns("item", "title", f"#{run_ids[0]}", f"#{run_ids[1]}", "change")
            for item, item_title, rank_a, rank_b in rank_changes(first, second):
                if rank_a is None or rank_b is None:
                    change = Text("new" if rank_a is None else "dropped", style="green" if rank_a is None else "red")
                else:
                    delta = rank_a - rank_b
                    change = Text(
                        f"{delta:+d}" if delta else "=", style="green" if delta > 0 else "red" if delta < 0 else ""
                    )
                mark = " ★" if item == held_out else ""
                table.add_row(dataset.item_ids[item], item_title + mark, str(rank_a or "—"), str(rank_b or "—"), change)
            title = f"top {TOP_K}, run {run_ids[0]} → run {run_ids[1]}: ranks gained (+) and lost (−)"
        self.query_one("#recs-title", Label).update(title)

    # -- keys ---------------------------------------------------------------------------------------------

    def action_focus_search(self) -> None:
        self.query_one(TabbedContent).active = "tab-item"
        self.query_one("#items-search", Input).focus()

    def action_focus_dataset(self) -> None:
        self.query_one("#items-dataset", Input).focus()

    def action_user_view(self) -> None:
        self.query_one(TabbedContent).active = "tab-user"
        self.query_one("#user-id", Input).focus()

    def action_item_view(self) -> None:
        self.query_one(TabbedContent).active = "tab-item"
        self.query_one("#items-results", DataTable).focus()

    def action_leave_field(self) -> None:
        active = self.query_one(TabbedContent).active
        self.query_one("#items-results" if active == "tab-item" else "#user-recs", DataTable).focus()

    def action_rank_changes(self) -> None:
        from kirec_tui.screens.ranking import RankingScreen

        try:
            run_ids = parse_run_ids(self.query_one("#user-runs", Input).value)
        except ValueError:
            run_ids = []
        self.app.push_screen(RankingScreen(run_ids[:2], self))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            message = f"{type(event.worker.error).__name__}: {event.worker.error}"
            self.query_one("#items-status", Label).update(Text(message, style="red"))
            self.notify(message, severity="error", timeout=8)


def held_out_text(held: list) -> Text:
    """The held-out item's full rank in each run, the change from the first run after each later one."""
    text = Text()
    if not held:
        return text
    first = held[0]
    kind = "head" if first.is_head else "tail"
    text.append("held-out item ", style="bold")
    text.append(f"{first.item_id} {first.title}", style="bold cyan")
    text.append(f"  ({kind} item; {first.history_length} items of history)\n", style="dim")
    for position, entry in enumerate(held):
        if position:
            text.append("   ")
        text.append(f"run {entry.run_id}: ")
        text.append(f"rank {entry.rank:,}", style="bold green" if entry.rank <= TOP_K else "bold")
        text.append(f" of {entry.num_items:,}")
        if position:
            delta = first.rank - entry.rank
            text.append(
                f" ({delta:+,d})" if delta else " (=)", style="green" if delta > 0 else "red" if delta < 0 else ""
            )
    for entry in held:
        if entry.note:
            text.append(f"\nnote: {entry.note}", style="yellow")
    return text
