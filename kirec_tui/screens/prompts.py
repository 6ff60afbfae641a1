"""The Prompts screen: edit a prompt file with TOML highlighting and validation as you type, preview it on a
sample item, run the real extraction on a handful of items (attributes appear as they arrive), diff the
attributes of two prompt versions side by side, and save the edit as a new version (never overwriting).

Prompts are parsed, validated, rendered, extracted and saved by engine.extraction; this screen only shows them.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
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

from kirec_tui.widgets.toml_editor import TomlTextArea

SAMPLE_ITEMS = 5
VALIDATE_DEBOUNCE_SECONDS = 0.2


class QualityMeasured(Message):
    """The answers' quality report (lines and warnings) after an extraction of the sample items."""

    def __init__(self, lines: list[str], warnings: list[str]) -> None:
        super().__init__()
        self.lines, self.warnings = lines, warnings


class AttributesArrived(Message):
    """Extraction answers for some items, posted from the extraction worker as each batch is cached."""

    def __init__(self, answers: dict[int, dict[str, Any] | None], done: int, total: int) -> None:
        super().__init__()
        self.answers, self.done, self.total = answers, done, total


def sample_items(dataset, count: int = SAMPLE_ITEMS) -> list[int]:
    """The most popular items: the ones a person recognises when judging the answers."""
    popularity = dataset.item_popularity()
    order = sorted(range(1, dataset.num_items + 1), key=lambda i: (-int(popularity[i]), i))
    return order[:count]


def latest_answer(history: list, prompt_hash: str) -> dict[str, Any] | None:
    """The newest valid attributes an item got from the prompt version `prompt_hash` (any model)."""
    for entry in history:  # item_history is newest first
        if entry.prompt_hash == prompt_hash and entry.ok:
            return entry.attributes
    return None


def attribute_text(attributes: dict[str, Any] | None) -> str:
    return "—" if attributes is None else json.dumps(attributes, ensure_ascii=False)


class PromptsScreen(Screen):
    BINDINGS = [
        # Keys the editor (TextArea) leaves free: ctrl+e/ctrl+d/ctrl+x are its line-end, delete and cut.
        Binding("ctrl+s", "save_version", "Save as new version"),
        Binding("ctrl+r", "extract", "Extract samples"),
        Binding("ctrl+g", "stop_extraction", "Stop extraction"),
        Binding("ctrl+b", "mark_base", "Mark for diff"),
        Binding("ctrl+o", "diff", "Diff with marked"),
        Binding("escape", "leave_editor", "Leave editor", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.prompt = None  # the engine Prompt of the open file, as saved
        self.edited = None  # the engine Prompt parsed from the editor text, when valid
        self.validation_error: str | None = None
        self.dataset = None
        self.samples: list[int] = []
        self.answers: dict[int, dict[str, Any] | None] = {}
        self.base = None  # the prompt marked for a diff
        self.diff_rows: list[tuple[str, str, str, bool]] = []
        self._stop = threading.Event()
        self._debounce = None

    @property
    def prompts_dir(self) -> Path:
        from engine.services.prompts import prompts_dir

        return prompts_dir(self.app.prompts_dir)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="prompts-body"):
            with Vertical(id="prompts-left"):
                yield Label("prompt files", classes="section")
                yield OptionList(id="prompt-files")
                yield Label("sample dataset", classes="section")
                yield Input(self.app.data_settings().dataset, id="prompt-dataset", compact=True)
                yield Label("", id="prompt-dataset-status", classes="hint")
            with Vertical(id="prompts-center"):
                yield Label("", id="prompt-title", classes="section")
                yield TomlTextArea(id="prompt-editor")
                yield Label("", id="prompt-validation")
            with TabbedContent(id="prompts-right"):
                with TabPane("Preview", id="tab-preview"):
                    yield Static("", id="prompt-preview")
                with TabPane("Extraction", id="tab-extract"):
                    yield Label("ctrl+r: extract the sample items", id="extract-status")
                    yield DataTable(id="extract-table", cursor_type="row", zebra_stripes=True)
                    yield Static("", id="extract-quality")
                with TabPane("Diff", id="tab-diff"):
                    yield Label("ctrl+b marks the open version, ctrl+o compares it with another", id="diff-title")
                    yield DataTable(id="diff-table", cursor_type="row", zebra_stripes=True)
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
        options = self.query_one("#prompt-files", OptionList)
        options.clear_options()
        options.add_options([Option(p.name, id=str(p)) for p in files])
        if files:
            target = (
                select
                if select in files
                else (self.prompt.path if self.prompt and self.prompt.path in files else files[0])
            )
            options.highlighted = files.index(target)
            self.open_prompt(target)

    @on(OptionList.OptionSelected, "#prompt-files")
    @on(OptionList.OptionHighlighted, "#prompt-files")
    def _file_chosen(self, event) -> None:
        path = Path(event.option.id)
        if self.prompt is None or self.prompt.path != path:
            self.open_prompt(path)

    def open_prompt(self, path: Path) -> None:
        from engine.services.errors import PromptError
        from engine.services.prompts import load

        try:
            self.prompt = load(path)
        except PromptError as exc:
            self.prompt = None
            self.query_one("#prompt-validation", Label).update(Text(str(exc), style="red"))
        self.query_one("#prompt-title", Label).update(
            f"{path.name}" + (f"   version {self.prompt.version}" if self.prompt else "")
        )
        self.query_one(TomlTextArea).load_text(path.read_text(encoding="utf-8"))
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
        source = self.prompt.path if self.prompt is not None else None
        label = self.query_one("#prompt-validation", Label)
        checked = check(text, source, self.dataset)
        if checked.prompt is None:
            self.edited, self.validation_error = None, checked.error
            label.update(Text(f"✗ {checked.error}", style="bold red"))
            return
        edited = checked.prompt
        self.edited, self.validation_error = edited, None
        changed = self.prompt is None or text != self.prompt.text
        label.update(
            Text(
                f"✓ valid: {len(edited.schema.attributes)} attributes, placeholders "
                f"{', '.join(edited.placeholders) or 'none'}"
                + ("   (edited: ctrl+s saves a new version)" if changed else ""),
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

    # -- sample dataset -----------------------------------------------------------------------------------

    @on(Input.Submitted, "#prompt-dataset")
    def _dataset_submitted(self, event: Input.Submitted) -> None:
        self.load_sample_dataset(event.value.strip())

    def load_sample_dataset(self, name: str) -> None:
        self.query_one("#prompt-dataset-status", Label).update(f"loading {name}…")
        self._load_dataset(name)

    @work(thread=True, exclusive=True, group="prompts-dataset", exit_on_error=False)
    def _load_dataset(self, name: str) -> None:
        from engine.services import datasets

        dataset = datasets.load(
            self.app.data_settings(name), cwd=self.app.cwd, cache_dir=self.app.workspace.dataset_cache
        )
        self.app.call_from_thread(self._dataset_ready, dataset, sample_items(dataset))

    def _dataset_ready(self, dataset, samples: list[int]) -> None:
        self.dataset, self.samples = dataset, samples
        self.query_one("#prompt-dataset-status", Label).update(
            f"{dataset.name}: {dataset.num_items:,} items; {len(samples)} sample items"
        )
        self.validate_now()

    # -- extraction -----------------------------------------------------------------------------------------

    def action_extract(self) -> None:
        if self.edited is None or self.dataset is None:
            self.notify(self.validation_error or "load a sample dataset first", severity="warning")
            return
        self._stop = threading.Event()
        self.answers = {}
        table = self.query_one("#extract-table", DataTable)
        table.clear()
        self.query_one("#extract-quality", Static).update("")
        for item in self.samples:
            table.add_row(self.dataset.item_ids[item], self.dataset.title(item), Text("…", style="dim"), key=str(item))
        self.query_one("#prompts-right", TabbedContent).active = "tab-extract"
        self.query_one("#extract-status", Label).update(
            f"extracting {len(self.samples)} items with {self.edited.name}…"
        )
        self._extract(self.edited, self.dataset, list(self.samples))

    @work(thread=True, exclusive=True, group="prompts-extract", exit_on_error=False)
    def _extract(self, prompt, dataset, items: list[int]) -> None:
        from engine.services import extraction

        backend = self.app.make_extraction_backend()
        try:
            # the same sequence as a run's extraction: the project's shipped answers are imported first
            with extraction.session(prompt, backend, self.app.workspace.extraction_cache) as session:

                def arrived(progress) -> None:
                    self.post_message(AttributesArrived(session.answers(dataset, items), progress.done, progress.total))

                report = session.extract(
                    dataset, item_indices=items, batch_size=1, should_stop=self._stop.is_set, on_progress=arrived
                )
                self.post_message(AttributesArrived(session.answers(dataset, items), len(items), len(items)))
                quality = session.quality(dataset, items)  # as after every extraction: are the answers any good?
                self.post_message(QualityMeasured(quality.lines(), quality.warnings))
        finally:
            backend.close()
        return report

    def on_attributes_arrived(self, message: AttributesArrived) -> None:
        table = self.query_one("#extract-table", DataTable)
        for item, attributes in message.answers.items():
            self.answers[item] = attributes
            if str(item) in table.rows:
                table.update_cell(str(item), "attributes", attribute_text(attributes))
        self.query_one("#extract-status", Label).update(f"{message.done}/{message.total} items answered")

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
        from engine.services.prompts import save_version

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
        self.notify(f"saved {path.name}")
        self.prompt = None
        self.refresh_files(select=path)

    def action_mark_base(self) -> None:
        if self.edited is None:
            self.notify("the editor text is not a valid prompt", severity="warning")
            return
        self.base = self.edited
        name = self.prompt.path.name if self.prompt and self.prompt.path else self.edited.name
        self.query_one("#diff-title", Label).update(
            f"marked {name} [{self.base.content_hash[:8]}]; open another version, ctrl+o"
        )

    def action_diff(self) -> None:
        if self.base is None or self.edited is None or self.dataset is None:
            self.notify("mark a version with ctrl+b, open another, load a sample dataset", severity="warning")
            return
        self._diff(self.base, self.edited, self.dataset, list(self.samples))

    @work(thread=True, exclusive=True, group="prompts-diff", exit_on_error=False)
    def _diff(self, base, other, dataset, items: list[int]) -> None:
        from engine.services.extraction import item_histories

        histories = item_histories(self.app.workspace.extraction_cache, [dataset.item_ids[i] for i in items])
        rows = []
        for item in items:
            history = histories[dataset.item_ids[item]]
            a, b = latest_answer(history, base.content_hash), latest_answer(history, other.content_hash)
            rows.append((dataset.title(item), attribute_text(a), attribute_text(b), a != b))
        self.app.call_from_thread(self._show_diff, base, other, rows)

    def _show_diff(self, base, other, rows) -> None:
        self.diff_rows = rows
        table = self.query_one("#diff-table", DataTable)
        table.clear(columns=True)
        table.add_columns("item", f"{base.name} [{base.content_hash[:8]}]", f"{other.name} [{other.content_hash[:8]}]")
        for title, a, b, differs in rows:
            style = "bold yellow" if differs else "dim"
            table.add_row(title, Text(a, style=style), Text(b, style=style))
        differing = sum(1 for r in rows if r[3])
        self.query_one("#diff-title", Label).update(
            f"{differing} of {len(rows)} sample items differ (— = not extracted yet)"
        )
        self.query_one("#prompts-right", TabbedContent).active = "tab-diff"

    def action_leave_editor(self) -> None:
        self.query_one("#prompt-files", OptionList).focus()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            message = f"{type(event.worker.error).__name__}: {event.worker.error}"
            self.notify(message, severity="error", timeout=8)
            if event.worker.group == "prompts-extract":
                self.query_one("#extract-status", Label).update(Text(message, style="red"))
            elif event.worker.group == "prompts-dataset":
                self.query_one("#prompt-dataset-status", Label).update(Text(message, style="red"))
