"""The Runs screen's dialogs: which columns show, which column sorts, and where and how an export is written."""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, RadioButton, RadioSet, SelectionList
from textual.widgets.option_list import Option
from textual.widgets.selection_list import Selection

EXPORT_FORMATS = (("csv", "CSV: one row per run, final metrics"), ("json", "JSON: full runs and per-epoch curves"))


class ColumnChooser(ModalScreen[list[str]]):
    """Shows each optional column with a check box; Escape (or `v` again) closes it with the chosen keys, so that
    toggling and leaving is all it takes."""

    BINDINGS = [Binding("escape,v", "done", "Done")]

    def __init__(self, choices: Sequence[tuple[str, str]], chosen: Sequence[str]) -> None:
        """`choices`: (key, label) of every column that can be shown or hidden; `chosen`: those shown now."""
        super().__init__()
        self.choices = list(choices)
        self.chosen = set(chosen)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="column-chooser"):
            yield Label("Columns shown on Runs")
            yield SelectionList[str](
                *(Selection(label, key, key in self.chosen) for key, label in self.choices), id="columns"
            )
            yield Label("space/enter: show or hide   escape: done", classes="hint")

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    def action_done(self) -> None:
        self.dismiss(list(self.query_one(SelectionList).selected))


class SortPicker(ModalScreen[str | None]):
    """Lists the shown columns; Enter sorts by the highlighted one (the screen flips the order of the column it
    already sorts by), Escape leaves the sort as it is."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, columns: Sequence[tuple[str, str]], current: str, descending: bool) -> None:
        super().__init__()
        self.columns = list(columns)
        self.current = current
        self.descending = descending

    def compose(self) -> ComposeResult:
        arrow = " ▼" if self.descending else " ▲"
        with Vertical(classes="dialog", id="sort-picker"):
            yield Label("Sort runs by")
            yield OptionList(
                *(Option(label + (arrow if key == self.current else ""), id=key) for key, label in self.columns),
                id="sort-columns",
            )
            yield Label("enter: sort by it (again: reverse)   escape: cancel", classes="hint")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        keys = [key for key, _label in self.columns]
        if self.current in keys:
            options.highlighted = keys.index(self.current)
        options.focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ExportDialog(ModalScreen[tuple[str, str] | None]):
    """A file name and a format; dismisses with (path, "csv" | "json") on Enter in the path, None on Escape.
    Choosing a format changes the file's extension to match."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, path: str = "kirec-runs.csv") -> None:
        super().__init__()
        self.question = question
        self.path = path

    def compose(self) -> ComposeResult:
        json_first = self.path.endswith(".json")
        with Vertical(classes="dialog", id="export-dialog"):
            yield Label(self.question)
            with RadioSet(id="export-format"):
                for fmt, label in EXPORT_FORMATS:
                    yield RadioButton(label, value=(fmt == "json") == json_first, name=fmt)
            yield Input(self.path, id="answer")
            yield Label("tab: format / file   enter: export   escape: cancel", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#answer", Input).focus()

    @property
    def fmt(self) -> str:
        pressed = self.query_one(RadioSet).pressed_button
        return pressed.name if pressed is not None and pressed.name else "csv"

    @on(RadioSet.Changed)
    def _format_changed(self) -> None:
        answer = self.query_one("#answer", Input)
        stem, dot, extension = answer.value.rpartition(".")
        if dot and extension.lower() in ("csv", "json"):
            answer.value = f"{stem}.{self.fmt}"

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        path = event.value.strip()
        self.dismiss((path, self.fmt) if path else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
