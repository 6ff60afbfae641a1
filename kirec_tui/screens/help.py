"""The help screen: a line on each workflow, then every key binding of the app, its screens and their dialogs,
read from their BINDINGS and shown as people write keys (`?`, `/`, `Ctrl+P`, `Space`, `Enter`)."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from kirec_tui.widgets.table import Table

# Keys that Textual's format_key shows as a symbol or in lower case, written as on a keyboard instead.
NAMED_KEYS = {
    "enter": "Enter",
    "escape": "Esc",
    "tab": "Tab",
    "space": "Space",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "delete": "Del",
}


def key_display(key: str) -> str:
    """One key as people write it: "question_mark" → "?", "slash" → "/", "ctrl+p" → "Ctrl+P", "space" → "Space".
    Textual's format_key names the key; only the case and the modifiers' spelling are ours."""
    modifiers, name = Binding(key, "").parse_key()
    shown = NAMED_KEYS.get(name) or format_key(name)
    if len(shown) > 1:
        shown = shown[:1].upper() + shown[1:]  # "f1" → "F1", "home" → "Home"
    elif modifiers:
        shown = shown.upper()  # "ctrl+p" → "Ctrl+P"; a bare "c" stays "c" (C would read as shift+c)
    return "+".join([*(m.capitalize() for m in modifiers), shown])


def binding_rows(owner: type) -> list[tuple[str, str]]:
    """(keys, description) for each binding a class declares (Binding objects or (key, action, text) tuples)."""
    rows = []
    for item in getattr(owner, "BINDINGS", []):
        binding = item if isinstance(item, Binding) else Binding(*item)
        keys = ", ".join(key_display(k.strip()) for k in binding.key.split(","))
        rows.append((keys, binding.description or binding.action))
    return rows


def binding_sections() -> Iterable[tuple[str, type]]:
    # Imported here: the screens import this module for their own help key.
    from kirec_tui.app import SCREENS, KirecApp
    from kirec_tui.screens.compare import CompareScreen
    from kirec_tui.screens.modals import ConfirmModal, TextPromptModal

    yield "Everywhere", KirecApp
    for _mode, title, _key, screen in SCREENS:
        yield title, screen
    yield "Compare runs", CompareScreen
    yield "Confirmation dialog", ConfirmModal
    yield "Text prompt dialog", TextPromptModal
    yield "Help", HelpScreen


# One line per workflow. {mode} is the key that switches to the screen; {action} the key bound to that action on
# the screen: the lines follow the bindings; an action that no longer exists shows as "(unbound)" (a test checks).
WORKFLOWS: tuple[tuple[str, str], ...] = (
    (
        "runs",
        "{mode} Runs: ↑↓ move, {toggle_select} selects runs, {compare} compares them, {details} opens one, "
        "{focus_filter} filters, {resume} resumes an INTERRUPTED run",
    ),
    (
        "train",
        "{mode} Train: fill the form (Tab to a field, {leave_field} leaves it), {start} starts, {cancel} cancels; "
        "the run goes on while you use the other screens",
    ),
    (
        "items",
        "{mode} Items: the dataset loads by itself ({focus_dataset} picks another), {focus_search} searches items, "
        "{neighbours} shows an item's neighbours (in a run's item table too), {user_view} a user's history, "
        "recommendations and held-out rank per run, {rank_changes} the rank changes between two runs",
    ),
    (
        "prompts",
        "{mode} Prompts: open a file and edit it (checked as you type), {save_version} saves a new version, "
        "{extract} extracts the sample items, {mark_base} marks a version and {diff} diffs another with it",
    ),
    (
        "bench",
        "{mode} Bench: a kirec bench results table (gains, p-values); {choose_bench} another bench, "
        "{focus_folder} another folder, Enter opens a row's runs in Compare",
    ),
)


UNBOUND = "(unbound)"


class _KeysOf(dict):
    def __missing__(self, action: str) -> str:
        return UNBOUND


def keys_by_action(owner: type) -> dict[str, str]:
    """action name (without arguments) → the keys bound to it on `owner`, as people write them."""
    keys: dict[str, str] = _KeysOf()
    for item in getattr(owner, "BINDINGS", []):
        binding = item if isinstance(item, Binding) else Binding(*item)
        keys.setdefault(
            binding.action.partition("(")[0], "/".join(key_display(k.strip()) for k in binding.key.split(","))
        )
    return keys


def workflow_lines() -> list[str]:
    from kirec_tui.app import SCREENS

    screen_of = {mode: (key, screen) for mode, _title, key, screen in SCREENS}
    lines = []
    for mode, template in WORKFLOWS:
        if mode not in screen_of:
            continue
        switch_key, screen = screen_of[mode]
        keys = keys_by_action(screen)
        keys["mode"] = switch_key
        lines.append(template.format_map(keys))
    from kirec_tui.app import KirecApp

    keys = keys_by_action(KirecApp)
    keys["palette"] = key_display(KirecApp.COMMAND_PALETTE_BINDING)
    lines.append(
        "Everywhere: {palette} finds any action by name, {help} this help, {quit} quits (asks first while a run "
        "trains)".format_map(keys)
    )
    return lines


class HelpScreen(ModalScreen[None]):
    AUTO_FOCUS = "#help-body"  # the document scrolls, not the table (its focus would scroll the workflows away)
    BINDINGS = [Binding("escape,q,f1,question_mark", "close", "Close help")]

    def compose(self) -> ComposeResult:
        # One document that scrolls as a whole (the arrows, PgUp/PgDn): the workflows, then every binding.
        with VerticalScroll(id="help-body", classes="dialog wide"):
            yield Label("the workflows", classes="section")
            yield Static("\n".join(f"• {line}" for line in workflow_lines()), id="workflows", markup=False)
            yield Label("every key binding   (Ctrl+P finds any action by name)", classes="section")
            table: DataTable = Table(id="bindings", zebra_stripes=True, show_cursor=False)
            table.can_focus = False
            yield table

    def on_mount(self) -> None:
        table = self.query_one("#bindings", DataTable)
        table.add_columns("screen", "keys", "does")
        for section, owner in binding_sections():
            for keys, description in binding_rows(owner):
                table.add_row(section, keys, description)

    def action_close(self) -> None:
        self.dismiss(None)
