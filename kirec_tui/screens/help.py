"""The help screen: every key binding of the app, its screens and their dialogs, read from their BINDINGS."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label


def binding_rows(owner: type) -> list[tuple[str, str]]:
    """(keys, description) for each binding a class declares (Binding objects or (key, action, text) tuples)."""
    rows = []
    for item in getattr(owner, "BINDINGS", []):
        binding = item if isinstance(item, Binding) else Binding(*item)
        keys = ", ".join(k.strip() for k in binding.key.split(","))
        rows.append((keys, binding.description or binding.action))
    return rows


def binding_sections() -> Iterable[tuple[str, type]]:
    # Imported here: the screens import this module for their own help key.
    from kirec_tui.app import KirecApp
    from kirec_tui.screens.compare import CompareScreen
    from kirec_tui.screens.modals import ConfirmModal, TextPromptModal

    yield "Everywhere", KirecApp
    for name, screen in KirecApp.MODES.items():
        yield name.capitalize(), screen  # type: ignore[misc]
    yield "Compare runs", CompareScreen
    yield "Confirmation dialog", ConfirmModal
    yield "Text prompt dialog", TextPromptModal
    yield "Help", HelpScreen


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1,question_mark", "close", "Close help")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide"):
            yield Label("[b]kirec key bindings[/b]   (Ctrl+P opens the command palette)")
            table: DataTable = DataTable(id="bindings", cursor_type="row", zebra_stripes=True)
            yield table

    def on_mount(self) -> None:
        table = self.query_one("#bindings", DataTable)
        table.add_columns("screen", "keys", "does")
        for section, owner in binding_sections():
            for keys, description in binding_rows(owner):
                table.add_row(section, keys, description)
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)
