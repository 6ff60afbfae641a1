"""The Prompts screen: edit a prompt file with TOML highlighting and validation as you type, preview it on a
sample item, run the real extraction on a handful of chosen items (attributes appear as they arrive, with the
items done, the time per item and the ETA), diff two prompt versions (their text and their attributes), and save
the edit as a new version (never overwriting). An unsaved edit is never dropped without asking.

Prompts are parsed, validated, rendered, extracted and saved by the engine (engine.services.prompts /
extraction); this screen only shows them.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    OptionList,
    Static,
    TabbedContent,
    TabPane,
    TextArea,
)
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from kirec_tui.screens.modals import ConfirmModal
from kirec_tui.widgets.table import Table
from kirec_tui.widgets.toml_editor import TomlTextArea

VALIDATE_DEBOUNCE_SECONDS = 0.2
TABS = ("tab-preview", "tab-extract", "tab-diff")
NARROW = "-narrow"  # the screen's class below 120 columns: the editor above the tabs, a narrower file list


class QualityMeasured(Message):
    """The answers' quality report (lines and warnings) after an extraction of the sample items."""

    def __init__(self, lines: list[str], warnings: list[str]) -> None:
        super().__init__()
        self.lines, self.warnings = lines, warnings


class AttributesArrived(Message):
    """Extraction answers for some items, posted from the extraction worker as each answer is cached, with the
    status line to show (items done, time per item, ETA)."""

    def __init__(self, answers: dict[int, dict[str, Any] | None], status: str) -> None:
        super().__init__()
        self.answers, self.status = answers, status


class ExtractionStage(Message):
    """What the extraction worker is doing before answers arrive (loading the model, asking it)."""

    def __init__(self, status: str) -> None:
        super().__init__()
        self.status = status


def latest_answer(history: list, prompt_hash: str) -> dict[str, Any] | None:
    """The newest valid attributes an item got from the prompt version `prompt_hash` (any model)."""
    for entry in history:  # item_history is newest first
        if entry.prompt_hash == prompt_hash and entry.ok:
            return entry.attributes
    return None


def attribute_text(attributes: dict[str, Any] | None) -> str:
    return "—" if attributes is None else json.dumps(attributes, ensure_ascii=False)


def diff_text(lines: list[str]) -> Text:
    """A unified diff coloured as people read one: removed lines red, added green, hunk headers cyan."""
    out = Text()
    for line in lines:
        if line.startswith(("---", "+++")):
            style = "bold"
        elif line.startswith("@@"):
            style = "cyan"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("+"):
            style = "green"
        else:
            style = "dim"
        out.append(line + "\n", style=style)
    return out


class PromptsScreen(Screen):
    DEFAULT_CSS = """
    PromptsScreen #prompts-body { height: 1fr; }
    PromptsScreen #prompts-left { width: 28; border-right: solid $primary; }
    PromptsScreen #prompt-files { height: 1fr; }
    PromptsScreen #prompts-work { layout: horizontal; width: 1fr; }
    PromptsScreen #prompts-center { width: 1fr; }
    PromptsScreen #prompt-editor { height: 1fr; }
    PromptsScreen #prompt-validation { height: auto; padding: 0 1; }
    PromptsScreen #prompts-right { width: 1fr; }
    PromptsScreen #prompt-preview { padding: 0 1; }
    PromptsScreen #extract-status, PromptsScreen #diff-title { width: 100%; padding: 0 1; }
    PromptsScreen #extract-table { height: 1fr; }
    PromptsScreen #diff-table { height: auto; max-height: 50%; }
    PromptsScreen #diff-text-scroll { height: 1fr; }
    PromptsScreen #diff-text { padding: 0 1; }
    PromptsScreen.-narrow #prompts-left { width: 22; }
    PromptsScreen.-narrow #prompts-work { layout: vertical; }
    PromptsScreen.-narrow #prompts-center { width: 100%; height: 1fr; }
    PromptsScreen.-narrow #prompts-right { width: 100%; height: 1fr; }
    """
    HORIZONTAL_BREAKPOINTS = [(0, NARROW), (120, "-wide")]
    BINDINGS = [
        # Keys the editor (TextArea) leaves free: ctrl+e/ctrl+d/ctrl+x/ctrl+k are its line-end, delete, cut and
        # delete-to-end; ctrl+b is tmux's prefix.
        Binding("ctrl+s", "save_version", "Save version"),
        Binding("ctrl+r", "extract", "Extract samples"),
        Binding("ctrl+g", "stop_extraction", "Stop"),
        Binding("ctrl+l", "mark_base", "Mark for diff"),
        Binding("ctrl+o", "diff", "Diff marked"),
        Binding("ctrl+t", "next_tab", "Next tab"),
        Binding("escape", "leave_editor", "Leave editor", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.path: Path | None = None  # the open file
        self.loaded_text = ""  # its text as read: the editor differs from it when there is an unsaved edit
        self.prompt = None  # the engine Prompt of the open file, as saved
        self.edited = None  # the engine Prompt parsed from the editor text, when valid
        self.validation_error: str | None = None
        self.dataset = None
        self._dataset_request: str | None = None  # the dataset last asked for: a slower, older load must not replace it
        self.samples: list[int] = []
        self.answers: dict[int, dict[str, Any] | None] = {}
        self.base = None  # the prompt marked for a diff
        self.base_label = ""
        self.diff_rows: list[tuple[str, str, str, bool]] = []
        self.text_diff: list[str] = []
        self._stop = threading.Event()
        self._debounce = None
        self._asking = False  # a discard question is open
        self._extract_worker: Worker | None = None

    @property
    def prompts_dir(self) -> Path:
        from engine.services.prompts import prompts_dir

        return prompts_dir(self.app.prompts_dir)

    @property
    def extracting(self) -> bool:
        worker = self._extract_worker
        return worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop_extraction":
            return self.extracting  # shown in the footer only while there is something to stop
        return True

    @property
    def unsaved(self) -> bool:
        """True when the editor holds text that is not the open file's."""
        return self.path is not None and self.query_one(TomlTextArea).text != self.loaded_text

    def busy_work(self) -> str | None:
        """The app asks before quitting over an unsaved edit (kirec_tui.app.HoldsWork)."""
        if not self.unsaved:
            return None
        from engine.services.prompts import version_label

        return f"{version_label(self.path, edited=True)} has an unsaved edit"

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="prompts-body"):
            with Vertical(id="prompts-left"):
                yield Label("prompt files", classes="section")
                yield OptionList(id="prompt-files")
                yield Label("sample dataset", classes="section")
                yield Input(self.app.data_settings().dataset, id="prompt-dataset", compact=True)
                yield Label("sample item ids", classes="section")
                yield Input(placeholder="blank: 5 most popular", id="prompt-samples", compact=True)
                yield Label("", id="prompt-dataset-status", classes="hint")
            with Container(id="prompts-work"):
                with Vertical(id="prompts-center"):
                    yield Label("", id="prompt-title", classes="section")
                    yield TomlTextArea(id="prompt-editor")
                    yield Label("", id="prompt-validation")
                with TabbedContent(id="prompts-right"):
                    with TabPane("Preview", id="tab-preview"):
                        with VerticalScroll():
                            yield Static("", id="prompt-preview")
                    with TabPane("Extraction", id="tab-extract"):
                        yield Label("ctrl+r: extract the sample items", id="extract-status")
                        yield Table(id="extract-table", cursor_type="row", zebra_stripes=True)
                        yield Static("", id="extract-quality")
                    with TabPane("Diff", id="tab-diff"):
                        yield Label("ctrl+l marks the open version, ctrl+o compares it with another", id="diff-title")
                        yield Table(id="diff-table", cursor_type="row", zebra_stripes=True)
                        with VerticalScroll(id="diff-text-scroll"):
                            yield Static("", id="diff-text")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Prompts"
        table = self.query_one("#extract-table", DataTable)
        table.add_column("item", key="item")
        table.add_column("title", key="title")
        table.add_column("attributes", key="attributes")
        self.refresh_files()
        self.load_sample_dataset(self.query_one("#prompt-dataset", Input).value)

    # -- files --------------------------------------------------------------------------------------------

    def refresh_files(self, select: Path | None = None) -> None:
        from engine.services.prompts import prompt_files

        files = prompt_files(self.prompts_dir)
        paths = [f.path for f in files]
        options = self.query_one("#prompt-files", OptionList)
        options.clear_options()
        options.add_options([Option(self._file_label(f), id=str(f.path)) for f in files])
        if files:
            target = select if select in paths else (self.path if self.path in paths else paths[0])
            options.highlighted = paths.index(target)
            self.open_prompt(target)

    @staticmethod
    def _file_label(file) -> Text:
        """ "tiny.toml v1" for the first version of a file, an indented "  v2" for each later one."""
        if file.version == 1:
            return Text.assemble((f"{file.family}.toml", "bold"), " ", ("v1", "cyan"))
        return Text.assemble("  ", (f"v{file.version}", "cyan"), (f"  {file.path.name}", "dim"))

    @on(OptionList.OptionSelected, "#prompt-files")
    @on(OptionList.OptionHighlighted, "#prompt-files")
    def _file_chosen(self, event) -> None:
        path = Path(event.option.id)
        if path == self.path or self._asking:
            return
        if not self.unsaved:
            self.open_prompt(path)
            return
        from engine.services.prompts import version_label

        def answered(discard: bool | None) -> None:
            self._asking = False
            if discard:
                self.open_prompt(path)
            else:  # keep the edit: the list goes back to the file it belongs to
                self._highlight(self.path)
                self.query_one(TomlTextArea).focus()

        self._asking = True
        self.app.push_screen(
            ConfirmModal(f"Discard the unsaved edit of {version_label(self.path)} and open {path.name}?"), answered
        )

    def _highlight(self, path: Path | None) -> None:
        options = self.query_one("#prompt-files", OptionList)
        for index in range(options.option_count):
            if options.get_option_at_index(index).id == str(path):
                options.highlighted = index
                return

    def open_prompt(self, path: Path) -> None:
        from engine.services.errors import PromptError
        from engine.services.prompts import load, version_label

        self.path = path
        try:
            self.prompt = load(path)
        except PromptError as exc:
            self.prompt = None
            self.query_one("#prompt-validation", Label).update(Text(str(exc), style="red"))
        title = Text(version_label(path), style="bold")
        title.append(f"   {path.name}" + (f" · {self.prompt.content_hash[:8]}" if self.prompt else ""), style="dim")
        self.query_one("#prompt-title", Label).update(title)
        self.loaded_text = path.read_text(encoding="utf-8")
        self.query_one(TomlTextArea).load_text(self.loaded_text)
        self.validate_now()

    # -- validation and preview ---------------------------------------------------------------------------

    @on(TextArea.Changed, "#prompt-editor")
    def _edited(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(VALIDATE_DEBOUNCE_SECONDS, self.validate_now)

    def validate_now(self) -> None:
        """Parse and validate the editor text (fast, pure Python: no worker needed) and refresh the preview."""
        from engine.services.prompts import check

        text = self.query_one(TomlTextArea).text
        label = self.query_one("#prompt-validation", Label)
        checked = check(text, self.path, self.dataset)
        if checked.prompt is None:
            self.edited, self.validation_error = None, checked.error
            label.update(Text(f"✗ {checked.error}", style="bold red"))
            return
        edited = checked.prompt
        self.edited, self.validation_error = edited, None
        label.update(
            Text(
                f"✓ valid: {len(edited.schema.attributes)} attributes, placeholders "
                f"{', '.join(edited.placeholders) or 'none'}"
                + ("   (edited: ctrl+s saves a new version)" if self.unsaved else ""),
                style="green",
            )
        )
        self._render_preview()

    def _render_preview(self) -> None:
        preview = self.query_one("#prompt-preview", Static)
        if self.edited is None:
            return
        if self.dataset is None or not self.samples:
            preview.update(Text("load a sample dataset to preview the prompt on an item", style="dim"))
            return
        from engine.services.prompts import preview as render_preview

        item = self.samples[0]
        shown = render_preview(self.edited, self.dataset, item)
        out = Text()
        out.append(f"sample item {self.dataset.item_ids[item]}: {self.dataset.title(item)}\n\n", style="bold")
        if shown.system:
            out.append("system: ", style="bold cyan")
            out.append(shown.system + "\n\n")
        out.append("user:\n", style="bold cyan")
        out.append(shown.user)
        preview.update(out)

    # -- sample dataset and items -------------------------------------------------------------------------

    @on(Input.Submitted, "#prompt-dataset")
    def _dataset_submitted(self, event: Input.Submitted) -> None:
        self.load_sample_dataset(event.value.strip())

    def load_sample_dataset(self, name: str) -> None:
        self._dataset_request = name
        self.query_one("#prompt-dataset-status", Label).update(f"loading {name}…")
        self._load_dataset(name)

    @work(thread=True, exclusive=True, group="prompts-dataset", exit_on_error=False)
    def _load_dataset(self, name: str) -> None:
        from engine.services import datasets

        dataset = datasets.load(
            self.app.data_settings(name), cwd=self.app.cwd, cache_dir=self.app.workspace.dataset_cache
        )
        self.app.call_from_thread(self._dataset_ready, name, dataset)

    def _dataset_ready(self, name: str, dataset) -> None:
        # A superseded load (the mount's default, then the one the user typed) is cancelled, but a thread worker
        # runs to its end: when the older, larger dataset finished last it replaced the one asked for.
        if name != self._dataset_request:
            return
        self.dataset, self.samples = dataset, []  # the old samples are another dataset's indices
        self.choose_samples(self.query_one("#prompt-samples", Input).value)

    @on(Input.Submitted, "#prompt-samples")
    def _samples_submitted(self, event: Input.Submitted) -> None:
        if self.dataset is None:
            self.query_one("#prompt-dataset-status", Label).update("load a sample dataset first")
            return
        self.choose_samples(event.value)

    def choose_samples(self, ids: str) -> None:
        """The sample items the preview and the extraction use: the typed item ids, blank the most popular."""
        from engine.services.errors import NotFoundError
        from engine.services.prompts import choose_samples, popular_items

        status = self.query_one("#prompt-dataset-status", Label)
        try:
            samples = choose_samples(self.dataset, ids)
        except NotFoundError as exc:
            status.update(Text(str(exc), style="red"))
            if self.samples:
                return  # the previous choice stays
            samples = popular_items(self.dataset)
        else:
            chosen = "chosen" if ids.strip() else "most popular"
            status.update(f"{self.dataset.name}: {self.dataset.num_items:,} items; {len(samples)} {chosen} samples")
        if samples != self.samples:
            self.samples = samples
            self._clear_extraction("ctrl+r: extract the sample items")
        self.validate_now()

    # -- extraction -----------------------------------------------------------------------------------------

    def _clear_extraction(self, status: str) -> None:
        """Old answers go at once: a table of another prompt's or another sample's answers misleads."""
        self.answers = {}
        table = self.query_one("#extract-table", DataTable)
        table.clear()
        if self.dataset is not None:
            for item in self.samples:
                table.add_row(
                    self.dataset.item_ids[item], self.dataset.title(item), Text("…", style="dim"), key=str(item)
                )
        self.query_one("#extract-quality", Static).update("")
        self.query_one("#extract-status", Label).update(status)

    def action_extract(self) -> None:
        if self.edited is None or self.dataset is None:
            self.notify(self.validation_error or "load a sample dataset first", severity="warning")
            return
        self._stop = threading.Event()
        self._clear_extraction(f"starting the extraction of {len(self.samples)} items with {self.edited.name}…")
        self.query_one("#prompts-right", TabbedContent).active = "tab-extract"
        self._extract_worker = self._extract(self.edited, self.dataset, list(self.samples))
        self.refresh_bindings()

    @work(thread=True, exclusive=True, group="prompts-extract", exit_on_error=False)
    def _extract(self, prompt, dataset, items: list[int]) -> None:
        from engine.services import extraction

        self.post_message(ExtractionStage("loading the extraction model…"))
        started = time.monotonic()
        backend = self.app.make_extraction_backend()
        try:
            loaded = time.monotonic() - started
            self.post_message(
                ExtractionStage(
                    f"model ready ({extraction.duration_text(loaded)}); extracting 0/{len(items)} items "
                    f"(answers already cached come at once)…"
                )
            )
            # the same sequence as a run's extraction: the project's shipped answers are imported first
            with extraction.session(prompt, backend, self.app.workspace.extraction_cache) as session:

                def arrived(progress) -> None:
                    answers = session.answers(dataset, items)
                    self.post_message(AttributesArrived(answers, extraction.progress_text(progress)))

                report = session.extract(
                    dataset, item_indices=items, batch_size=1, should_stop=self._stop.is_set, on_progress=arrived
                )
                answers = session.answers(dataset, items)
                self.post_message(AttributesArrived(answers, extraction.finished_text(report)))
                quality = session.quality(dataset, items)  # as after every extraction: are the answers any good?
                self.post_message(QualityMeasured(quality.lines(), quality.warnings))
        finally:
            backend.close()
        return report

    def on_extraction_stage(self, message: ExtractionStage) -> None:
        self.query_one("#extract-status", Label).update(Text(message.status, style="yellow"))

    def on_attributes_arrived(self, message: AttributesArrived) -> None:
        table = self.query_one("#extract-table", DataTable)
        for item, attributes in message.answers.items():
            self.answers[item] = attributes
            if str(item) in table.rows:
                table.update_cell(str(item), "attributes", attribute_text(attributes), update_width=True)
        self.query_one("#extract-status", Label).update(message.status)

    def on_quality_measured(self, message: QualityMeasured) -> None:
        text = Text("\n".join(message.lines), style="dim")
        for warning in message.warnings:
            text.append(f"\nwarning: {warning}", style="bold yellow")
        self.query_one("#extract-quality", Static).update(text)

    def action_stop_extraction(self) -> None:
        self._stop.set()

    # -- versions -----------------------------------------------------------------------------------------

    def action_save_version(self) -> None:
        from engine.services.errors import PromptError
        from engine.services.prompts import save_version, version_label

        if self.prompt is None:
            return
        text = self.query_one(TomlTextArea).text
        if text == self.prompt.text:
            self.notify("no changes to save", severity="warning")
            return
        try:
            path = save_version(self.prompt, text, self.prompts_dir)
        except (PromptError, OSError) as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.notify(f"saved {version_label(path)} ({path.name})")
        self.refresh_files(select=path)

    def _open_label(self) -> str:
        from engine.services.prompts import version_label

        return version_label(self.path, edited=self.unsaved)

    def action_mark_base(self) -> None:
        if self.edited is None:
            self.notify("the editor text is not a valid prompt", severity="warning")
            return
        self.base, self.base_label = self.edited, self._open_label()
        self.query_one("#diff-title", Label).update(
            Text.assemble(
                "marked ",
                (self.base_label, "bold"),
                (f" · {self.base.content_hash[:8]}", "dim"),
                "; open another version, ctrl+o",
            )
        )

    def action_diff(self) -> None:
        if self.base is None or self.edited is None or self.dataset is None:
            self.notify("mark a version with ctrl+l, open another, load a sample dataset", severity="warning")
            return
        self._diff(self.base, self.base_label, self.edited, self._open_label(), self.dataset, list(self.samples))

    @work(thread=True, exclusive=True, group="prompts-diff", exit_on_error=False)
    def _diff(self, base, base_label: str, other, other_label: str, dataset, items: list[int]) -> None:
        from engine.services.extraction import item_histories
        from engine.services.prompts import text_diff

        histories = item_histories(self.app.workspace.extraction_cache, [dataset.item_ids[i] for i in items])
        rows = []
        for item in items:
            history = histories[dataset.item_ids[item]]
            a, b = latest_answer(history, base.content_hash), latest_answer(history, other.content_hash)
            rows.append((dataset.title(item), attribute_text(a), attribute_text(b), a != b))
        lines = text_diff(base, other, base_label, other_label)
        self.app.call_from_thread(self._show_diff, (base, base_label), (other, other_label), rows, lines)

    def _show_diff(self, base, other, rows, lines: list[str]) -> None:
        (base_prompt, base_label), (other_prompt, other_label) = base, other
        self.diff_rows, self.text_diff = rows, lines
        table = self.query_one("#diff-table", DataTable)
        table.clear(columns=True)
        table.add_columns("item", base_label, other_label)
        for title, a, b, differs in rows:
            style = "bold yellow" if differs else "dim"
            table.add_row(title, Text(a, style=style), Text(b, style=style))
        differing = sum(1 for r in rows if r[3])
        self.query_one("#diff-title", Label).update(
            Text.assemble(
                (base_label, "bold"),
                (f" {base_prompt.content_hash[:8]}", "dim"),
                " → ",
                (other_label, "bold"),
                (f" {other_prompt.content_hash[:8]}", "dim"),
                f": {differing} of {len(rows)} sample items differ (— = not extracted yet)",
            )
        )
        self.query_one("#diff-text", Static).update(
            diff_text(lines) if lines else Text("the two prompt files are identical", style="dim")
        )
        self.query_one("#prompts-right", TabbedContent).active = "tab-diff"

    # -- keys ---------------------------------------------------------------------------------------------

    def action_next_tab(self) -> None:
        tabs = self.query_one("#prompts-right", TabbedContent)
        tabs.active = TABS[(TABS.index(tabs.active) + 1) % len(TABS)] if tabs.active in TABS else TABS[0]

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#prompts-right", TabbedContent).active = tab

    def action_leave_editor(self) -> None:
        self.query_one("#prompt-files", OptionList).focus()

    def palette_commands(self):
        from textual.app import SystemCommand

        yield SystemCommand(
            "Prompts: extract samples", "Run the extraction on the sample items (ctrl+r)", self.action_extract
        )
        yield SystemCommand(
            "Prompts: stop extraction", "Stop the extraction in progress (ctrl+g)", self.action_stop_extraction
        )
        yield SystemCommand(
            "Prompts: save as new version",
            "Save the edit as the next version of the file (ctrl+s)",
            self.action_save_version,
        )
        yield SystemCommand(
            "Prompts: mark for diff", "Mark the open version as the diff's left side (ctrl+l)", self.action_mark_base
        )
        yield SystemCommand(
            "Prompts: diff with marked",
            "Diff the open version's text and answers with the marked one (ctrl+o)",
            self.action_diff,
        )
        for tab, title in zip(TABS, ("Preview", "Extraction", "Diff")):
            yield SystemCommand(
                f"Prompts: show {title} tab",
                f"The {title} tab (ctrl+t cycles the tabs)",
                lambda t=tab: self.action_show_tab(t),
            )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is self._extract_worker:
            self.refresh_bindings()
        if event.state == WorkerState.ERROR:
            message = f"{type(event.worker.error).__name__}: {event.worker.error}"
            self.notify(message, severity="error", timeout=8)
            if event.worker.group == "prompts-extract":
                self.query_one("#extract-status", Label).update(Text(message, style="red"))
            elif event.worker.group == "prompts-dataset":
                self.query_one("#prompt-dataset-status", Label).update(Text(message, style="red"))
