"""The Items screen: find an item (id or fuzzy title), see its text, popularity, the attributes each prompt
version extracted for it and its nearest neighbours in the text-embedding space; and a user view: history
with titles, one run's top-k with the held-out item marked, or two runs' lists with the ranks gained/lost.

Everything heavy (loading a dataset, a trained run, embeddings) runs in thread workers.
"""

from __future__ import annotations

import json
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
from textual.worker import Worker, WorkerState

MAX_RESULTS = 50
NEIGHBOURS = 10
TOP_K = 10


@dataclass
class LoadedDataset:
    dataset: Any  # engine.data.dataset.SequenceDataset
    popularity: Any  # numpy array, per item index
    index_of: dict[str, int]  # raw item id -> item index


def search_items(loaded: LoadedDataset, query: str, limit: int = MAX_RESULTS) -> list[int]:
    """An exact raw id first, then titles ranked by Textual's fuzzy matcher (ties: more popular first)."""
    query = query.strip()
    if not query:
        return []
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


class ItemsScreen(Screen):
    BINDINGS = [
        Binding("slash", "focus_search", "Search"),
        Binding("n", "neighbours", "Neighbours"),
        Binding("u", "user_view", "User view"),
        Binding("i", "item_view", "Item view"),
        Binding("escape", "leave_field", "Leave field"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.loaded: LoadedDataset | None = None
        self.current_item: int | None = None
        self.results: list[int] = []
        self.neighbours: list[tuple[int, float]] = []
        self.recommendations: dict[int, list] = {}
        self._neighbour_space = None  # engine.services.items.TextNeighbours of the loaded dataset

    def compose(self) -> ComposeResult:
        default_dataset = self.app.data_settings().dataset
        yield Header()
        with Horizontal(id="items-top"):
            yield Label("dataset", classes="field-label")
            yield Input(default_dataset, id="items-dataset", compact=True)
            yield Label("Enter: load", id="items-status")
        with TabbedContent(id="items-tabs"):
            with TabPane("Item", id="tab-item"):
                with Horizontal():
                    with Vertical(id="items-left"):
                        yield Input(placeholder="/ item id or title (fuzzy)", id="items-search")
                        yield DataTable(id="items-results", cursor_type="row", zebra_stripes=True)
                    with VerticalScroll(id="items-right"):
                        yield Static("", id="item-detail")
                        yield Label("nearest neighbours (n: compute)", classes="section")
                        yield DataTable(id="items-neighbours", cursor_type="row", zebra_stripes=True)
            with TabPane("User", id="tab-user"):
                with Horizontal(id="user-inputs"):
                    yield Label("user", classes="field-label")
                    yield Input(placeholder="raw user id", id="user-id", compact=True)
                    yield Label("run(s)", classes="field-label")
                    yield Input(placeholder="run id, or two ids to compare", id="user-runs", compact=True)
                with Horizontal():
                    with Vertical(id="user-left"):
                        yield Label("history (oldest first; ◆ validation, ★ held-out test item)", classes="section")
                        yield DataTable(id="user-history", cursor_type="row", zebra_stripes=True)
                    with Vertical(id="user-right"):
                        yield Label("", id="recs-title", classes="section")
                        yield DataTable(id="user-recs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Items"
        self.query_one("#items-results", DataTable).add_columns("index", "id", "title", "popularity")
        self.query_one("#items-neighbours", DataTable).add_columns("item", "title", "cosine")
        self.query_one("#user-history", DataTable).add_columns("#", "item", "title")

    # -- dataset ------------------------------------------------------------------------------------------

    @on(Input.Submitted, "#items-dataset")
    def _dataset_submitted(self, event: Input.Submitted) -> None:
        self.load_dataset(event.value.strip())

    def load_dataset(self, name: str) -> None:
        self.query_one("#items-status", Label).update(f"loading {name}…")
        self._load_dataset(name)

    @work(thread=True, exclusive=True, group="items-dataset", exit_on_error=False)
    def _load_dataset(self, name: str) -> None:
        from engine.services import datasets

        ds = datasets.load(self.app.data_settings(name), cwd=self.app.cwd, cache_dir=self.app.workspace.dataset_cache)
        loaded = LoadedDataset(ds, ds.item_popularity(), {raw: i for i, raw in enumerate(ds.item_ids) if i})
        self.app.call_from_thread(self._dataset_ready, loaded)

    def _dataset_ready(self, loaded: LoadedDataset) -> None:
        from engine.services.items import TextNeighbours

        self.loaded = loaded
        self._neighbour_space = TextNeighbours(loaded.dataset, self.app.workspace.embedding_cache)
        ds = loaded.dataset
        self.query_one("#items-status", Label).update(
            f"{ds.name}: {ds.num_users:,} users, {ds.num_items:,} items, {ds.num_interactions:,} interactions"
        )
        query = self.query_one("#items-search", Input).value
        if query:
            self.search(query)

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
        self.app.call_from_thread(self._show_results, found)

    def _show_results(self, found: list[int]) -> None:
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
        self.neighbours = []
        self.query_one("#items-neighbours", DataTable).clear()
        self._item_detail(item)

    @work(thread=True, exclusive=True, group="items-detail", exit_on_error=False)
    def _item_detail(self, item: int) -> None:
        from engine.services.items import item_view

        view = item_view(self.loaded.dataset, item, self.app.workspace.extraction_cache, self.loaded.popularity)
        self.app.call_from_thread(self._show_detail, view)

    def _show_detail(self, view) -> None:
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

    def action_neighbours(self) -> None:
        if self.loaded is None or self.current_item is None:
            self.notify("load a dataset and pick an item first", severity="warning")
            return
        self.query_one("#items-status", Label).update("embedding item texts (cached after the first time)…")
        self._neighbours(self.loaded, self.current_item)

    @work(thread=True, exclusive=True, group="items-neighbours", exit_on_error=False)
    def _neighbours(self, loaded: LoadedDataset, item: int) -> None:
        found = self._neighbour_space.of(item, NEIGHBOURS)
        self.app.call_from_thread(self._show_neighbours, item, found)

    def _show_neighbours(self, item: int, found: list[tuple[int, float]]) -> None:
        if item != self.current_item:
            return
        self.neighbours = found
        ds = self.loaded.dataset
        table = self.query_one("#items-neighbours", DataTable)
        table.clear()
        for other, score in found:
            table.add_row(ds.item_ids[other], ds.title(other), Text(f"{score:.3f}", justify="right"), key=str(other))
        self.query_one("#items-status", Label).update(f"{NEIGHBOURS} nearest neighbours of {ds.item_ids[item]}")

    # -- user view ----------------------------------------------------------------------------------------

    @on(Input.Submitted, "#user-id")
    @on(Input.Submitted, "#user-runs")
    def _user_submitted(self) -> None:
        user = self.query_one("#user-id", Input).value.strip()
        runs_text = self.query_one("#user-runs", Input).value.replace(",", " ").split()
        try:
            run_ids = [int(r) for r in runs_text][:2]
        except ValueError:
            self.notify("runs: one or two run ids, e.g. 3 or 3 5", severity="error")
            return
        if not user or not run_ids:
            return
        self.query_one("#recs-title", Label).update("loading the run(s)…")
        self._user_view(user, run_ids)

    @work(thread=True, exclusive=True, group="items-user", exit_on_error=False)
    def _user_view(self, raw_user: str, run_ids: list[int]) -> None:
        from engine.services import runs

        trained = [
            runs.load_trained(self.app.store, rid, cwd=self.app.cwd, workspace=self.app.workspace.root)
            for rid in run_ids
        ]
        found = [runs.recommend_for(t, raw_user, k=TOP_K, history="test") for t in trained]
        lists = {f.run_id: f.recommendations for f in found}
        self.app.call_from_thread(self._show_user, trained[0].dataset, found[0].user, lists)

    def _show_user(self, dataset, user: int, lists: dict[int, list]) -> None:
        self.recommendations = lists
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
            table.add_columns("item", "title", f"rank #{run_ids[0]}", f"rank #{run_ids[1]}", "change")
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
            title = f"run {run_ids[0]} → run {run_ids[1]}: ranks gained (+) and lost (−)"
        hit = any(r.item == held_out for recs in lists.values() for r in recs)
        self.query_one("#recs-title", Label).update(
            title + ("   ★ held-out item found" if hit else "   held-out item not in the list")
        )

    # -- keys ---------------------------------------------------------------------------------------------

    def action_focus_search(self) -> None:
        self.query_one(TabbedContent).active = "tab-item"
        self.query_one("#items-search", Input).focus()

    def action_user_view(self) -> None:
        self.query_one(TabbedContent).active = "tab-user"
        self.query_one("#user-id", Input).focus()

    def action_item_view(self) -> None:
        self.query_one(TabbedContent).active = "tab-item"
        self.query_one("#items-results", DataTable).focus()

    def action_leave_field(self) -> None:
        active = self.query_one(TabbedContent).active
        self.query_one("#items-results" if active == "tab-item" else "#user-recs", DataTable).focus()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            message = f"{type(event.worker.error).__name__}: {event.worker.error}"
            self.query_one("#items-status", Label).update(Text(message, style="red"))
            self.notify(message, severity="error", timeout=8)
