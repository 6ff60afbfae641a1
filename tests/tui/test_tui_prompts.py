"""The Prompts screen: open, validate as you type, preview, extract with a (fake) backend, save a new
version, and diff the attributes of two versions."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from tests.tui_support import wait_for_workers, wait_until

from kirec_tui.app import KirecApp
from kirec_tui.screens.prompts import PromptsScreen
from kirec_tui.widgets.toml_editor import TomlTextArea, toml_highlights

pytestmark = pytest.mark.anyio
SIZE = (160, 45)

PROMPT = '''name = "tiny"
description = "test prompt"
datasets = ["tiny"]
system = "You answer with JSON."
template = """Describe the item with:
{schema}
Item: {title}
Genres: {genres}"""

[[attributes]]
name = "mood"
type = "enum"
values = ["calm", "busy"]
description = "tone"
'''


class FakeExtractionBackend:
    """Answers from the prompt text alone: "busy" only when the prompt shows the Drama genre."""

    fingerprint = "fake-backend:v1"

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, prompts: list[str], json_schema: dict, system: str = "") -> list[str]:
        self.calls += len(prompts)
        return ['{"mood": "busy"}' if "Genres: Drama" in p else '{"mood": "calm"}' for p in prompts]

    def close(self) -> None:
        pass


@pytest.fixture
def prompts_dir(tmp_path) -> Path:
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "tiny.toml").write_text(PROMPT)
    return folder


async def wait_shown(pilot, condition, timeout: float = 60.0) -> None:
    """wait_until for a worker that is held mid-way: the app's state alone, no wait for the workers."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.05)


async def open_prompts(pilot, dataset) -> PromptsScreen:
    await pilot.press("4")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, PromptsScreen)
    screen.query_one("#prompt-dataset").value = str(dataset)
    screen.query_one("#prompt-dataset").focus()
    await pilot.press("enter")
    await wait_until(pilot, lambda: screen.dataset is not None and screen.dataset.name == "tiny")
    return screen


def make_app(tmp_path, prompts_dir, backend=None) -> KirecApp:
    return KirecApp(
        db_path=tmp_path / "runs.db",
        cwd=tmp_path,
        env={},
        prompts_dir=prompts_dir,
        extraction_backend=backend or FakeExtractionBackend,
    )


async def test_a_slower_earlier_load_never_replaces_the_dataset_asked_for(
    tmp_path, prompts_dir, tiny_dataset, monkeypatch
):
    """The mount loads the default dataset; the user then asks for another. When the default finished last (a
    larger file, a loaded machine), it used to replace the one asked for, and the screen showed the wrong items."""
    import dataclasses

    from engine.services import datasets

    real_load, asked_for_shown = datasets.load, threading.Event()

    def load(settings, **kwargs):
        if Path(settings.dataset).name == "tiny":
            return real_load(settings, **kwargs)
        assert asked_for_shown.wait(60), "the test never let the default's load finish"
        tiny = real_load(dataclasses.replace(settings, dataset=str(tiny_dataset)), **kwargs)
        return dataclasses.replace(tiny, name="the-default")  # stands in for the default dataset, finishing last

    monkeypatch.setattr(datasets, "load", load)
    app = make_app(tmp_path, prompts_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#prompt-dataset").value = str(tiny_dataset)
        screen.query_one("#prompt-dataset").focus()
        await pilot.press("enter")
        await wait_shown(pilot, lambda: screen.dataset is not None)
        assert screen.dataset.name == "tiny"
        asked_for_shown.set()  # now the default's load ends, after the one asked for
        await wait_for_workers(app)
        await pilot.pause()
        assert screen.dataset.name == "tiny"


async def test_validates_as_you_type_and_previews_on_a_sample_item(tmp_path, prompts_dir, tiny_dataset):
    app = make_app(tmp_path, prompts_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_prompts(pilot, tiny_dataset)
        assert screen.prompt.path == prompts_dir / "tiny.toml"
        assert screen.edited is not None and screen.validation_error is None
        preview = str(screen.query_one("#prompt-preview").render())
        first = screen.samples[0]
        assert f"Item: {screen.dataset.title(first)}" in preview and "You answer with JSON." in preview
        editor = screen.query_one(TomlTextArea)
        editor.text = PROMPT.replace("{genres}", "{colour}")
        await wait_until(pilot, lambda: screen.validation_error is not None)
        assert "colour" in screen.validation_error
        assert "✗" in str(screen.query_one("#prompt-validation").render())
        editor.text = PROMPT
        await wait_until(pilot, lambda: screen.validation_error is None)


async def test_extraction_shows_attributes_for_the_sample_items(tmp_path, prompts_dir, tiny_dataset):
    backend = FakeExtractionBackend()
    app = make_app(tmp_path, prompts_dir, backend=lambda: backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_prompts(pilot, tiny_dataset)
        await pilot.press("escape", "ctrl+r")
        await wait_for_workers(app)
        await pilot.pause()
        assert set(screen.answers) == set(screen.samples) and backend.calls == len(screen.samples)
        for item, attributes in screen.answers.items():
            genres = screen.dataset.item_text[item]["genres"]
            assert attributes == {"mood": "busy" if "Drama" in genres else "calm"}
        table = screen.query_one("#extract-table")
        assert all(str(table.get_row_at(i)[2]).startswith('{"mood"') for i in range(table.row_count))
        # the answers' quality report, as after every extraction: the field, its distinct answers
        await wait_until(pilot, lambda: "answer quality" in str(screen.query_one("#extract-quality").render()))
        report = str(screen.query_one("#extract-quality").render())
        moods = {a["mood"] for a in screen.answers.values()}
        assert f"mood: {len(moods)} distinct" in report
        await pilot.press("ctrl+r")  # again: answered from the cache, the backend is not asked
        await wait_for_workers(app)
        assert backend.calls == len(screen.samples)


async def test_save_as_new_version_and_diff_two_versions(tmp_path, prompts_dir, tiny_dataset):
    app = make_app(tmp_path, prompts_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_prompts(pilot, tiny_dataset)
        await pilot.press("escape", "ctrl+l", "ctrl+r")  # mark v1, extract with it
        await wait_for_workers(app)
        await pilot.pause()
        editor = screen.query_one(TomlTextArea)
        editor.text = PROMPT.replace("Genres: {genres}", "Genres are hidden.")
        await wait_until(pilot, lambda: screen.edited is not None and "Genres are hidden" in screen.edited.template)
        await pilot.press("ctrl+s")
        await pilot.pause()
        saved = prompts_dir / "tiny.v2.toml"
        assert saved.read_text() == editor.text and (prompts_dir / "tiny.toml").read_text() == PROMPT
        assert screen.prompt.path == saved and screen.prompt.version == 2
        await pilot.press("ctrl+r")
        await wait_for_workers(app)
        await pilot.pause()
        await pilot.press("ctrl+o")
        await wait_for_workers(app)
        await pilot.pause()
        rows = screen.diff_rows
        assert len(rows) == len(screen.samples)
        drama = [r for r in rows if '"busy"' in r[1]]
        assert drama and all(r[3] and '"calm"' in r[2] for r in drama)  # v2 cannot see the genre any more
        assert all(not r[3] for r in rows if r not in drama)
        assert f"{len(drama)} of {len(rows)} sample items differ" in str(screen.query_one("#diff-title").render())


async def test_saving_an_unchanged_prompt_writes_nothing(tmp_path, prompts_dir, tiny_dataset):
    app = make_app(tmp_path, prompts_dir)
    async with app.run_test(size=SIZE) as pilot:
        await open_prompts(pilot, tiny_dataset)
        await pilot.press("escape", "ctrl+s")
        await pilot.pause()
    assert sorted(p.name for p in prompts_dir.iterdir()) == ["tiny.toml"]


def test_toml_highlighting_marks_keys_strings_headers_and_comments():
    lines = ['name = "x"  # note', "[[attributes]]", 'template = """a', "b {title}", 'c"""', "max = 2"]
    spans = toml_highlights(lines)
    assert spans[0] == [(0, 4, "yaml.field"), (5, 6, "operator"), (7, 10, "string"), (12, None, "comment")]
    assert spans[1] == [(0, 14, "heading")]
    assert spans[3] == [(0, None, "string")]  # inside the multi-line string
    assert spans[4][0] == (0, 4, "string")
    assert spans[5][-1] == (6, 7, "number")


async def test_the_configured_llama_cpp_backend_answers_through_the_screen(tmp_path, prompts_dir, tiny_dataset):
    """No fake: the app builds the backend the config names (llama.cpp on a tiny random GGUF); every sample item
    gets settled (valid attributes or a stored failure) and the screen reports it."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    from engine.extraction.cache import ExtractionCache, default_cache_path
    from engine.extraction.tiny_gguf import write_tiny_gguf

    model = write_tiny_gguf(tmp_path / "tiny.gguf")
    app = KirecApp(
        db_path=tmp_path / "runs.db",
        cwd=tmp_path,
        env={"KIREC_KNOWLEDGE__LLM_MODEL": str(model)},
        prompts_dir=prompts_dir,
    )
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_prompts(pilot, tiny_dataset)
        await pilot.press("escape", "ctrl+r")
        await wait_for_workers(app)
        await pilot.pause()
        assert f"{len(screen.samples)}/{len(screen.samples)} items answered" in str(
            screen.query_one("#extract-status").render()
        )
    with ExtractionCache(default_cache_path(tmp_path)) as cache:
        counts = cache.counts(prompt_hash=screen.edited.content_hash)
    assert counts["ok"] + counts["failed"] == len(screen.samples)


def palette_hits(app) -> list[str]:
    from textual.command import CommandList

    hits = app.screen.query_one(CommandList)
    return [str(hits.get_option_at_index(i).prompt) for i in range(hits.option_count)]


async def test_versions_are_labelled_and_the_diff_shows_the_two_files_text(tmp_path, prompts_dir, tiny_dataset):
    app = make_app(tmp_path, prompts_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_prompts(pilot, tiny_dataset)
        assert str(screen.query_one("#prompt-title").render()).startswith("tiny.toml v1")
        await pilot.press("escape", "ctrl+l")  # mark v1
        assert "marked tiny.toml v1" in str(screen.query_one("#diff-title").render())
        editor = screen.query_one(TomlTextArea)
        editor.text = PROMPT.replace("Genres: {genres}", "Genres are hidden.")
        await wait_until(pilot, lambda: screen.edited is not None and "hidden" in screen.edited.template)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: screen.path == prompts_dir / "tiny.v2.toml")
        files = screen.query_one("#prompt-files")
        labels = [str(files.get_option_at_index(i).prompt) for i in range(files.option_count)]
        assert labels == ["tiny.toml v1", "  v2  tiny.v2.toml"]  # the file, then its versions in save order
        assert str(screen.query_one("#prompt-title").render()).startswith("tiny.toml v2")
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: bool(screen.text_diff))
        assert screen.text_diff[:2] == ["--- tiny.toml v1", "+++ tiny.toml v2"]
        assert '-Genres: {genres}"""' in screen.text_diff and '+Genres are hidden."""' in screen.text_diff
        shown = screen.query_one("#diff-text").render()
        assert "+Genres are hidden." in str(shown)
        added = next(span for span in shown.spans if shown.plain[span.start : span.end].startswith("+Genres"))
        assert "green" in str(added.style)
        table = screen.query_one("#diff-table")
        assert [str(c.label) for c in table.columns.values()] == ["item", "tiny.toml v1", "tiny.toml v2"]
        title = str(screen.query_one("#diff-title").render())
        assert title.startswith("tiny.toml v1 ") and "→ tiny.toml v2 " in title  # hashes stay, as a detail
        # an unsaved edit is labelled as such
        editor.text = PROMPT
        await wait_until(pilot, lambda: screen.unsaved and screen.edited is not None and "{genres}" in editor.text)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: screen.text_diff[1:2] == ["+++ tiny.toml v2 (edited)"])


async def test_the_editor_wraps_long_lines(tmp_path, prompts_dir, tiny_dataset):
    long_line = "a long description that does not fit in a narrow editor " * 4
    (prompts_dir / "tiny.toml").write_text(PROMPT.replace("test prompt", long_line))
    app = make_app(tmp_path, prompts_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_prompts(pilot, tiny_dataset)
        editor = screen.query_one(TomlTextArea)
        assert editor.soft_wrap
        assert editor.wrapped_document.height > editor.document.line_count  # the long line takes several rows
        assert editor.max_scroll_x == 0  # nothing hides past the right edge


async def test_the_sample_items_can_be_chosen_by_id(tmp_path, prompts_dir, tiny_dataset):
    backend = FakeExtractionBackend()
    app = make_app(tmp_path, prompts_dir, backend=lambda: backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_prompts(pilot, tiny_dataset)
        default = list(screen.samples)
        assert len(default) == 5
        field = screen.query_one("#prompt-samples")
        field.focus()
        await pilot.press(*"i12, i4", "enter")
        await pilot.pause()
        ids = screen.dataset.item_ids
        assert [ids[i] for i in screen.samples] == ["i12", "i4"]
        assert "sample item i12:" in str(screen.query_one("#prompt-preview").render())
        assert "2 chosen samples" in str(screen.query_one("#prompt-dataset-status").render())
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: set(screen.answers) == set(screen.samples) and not screen.extracting)
        table = screen.query_one("#extract-table")
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == ["i12", "i4"]
        assert backend.calls == 2
        # an unknown id: one line in place, the choice stays
        field.value = "i4 nope"
        field.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert "not in tiny: nope" in str(screen.query_one("#prompt-dataset-status").render())
        assert [ids[i] for i in screen.samples] == ["i12", "i4"]
        field.value = ""  # blank: back to the most popular items
        await pilot.press("enter")
        await pilot.pause()
        assert screen.samples == default
        # another dataset without the typed ids: its own most popular items, never the old one's indices
        from engine.services.prompts import popular_items
        from tests.data_support import write_generic_dataset

        small = write_generic_dataset(tmp_path / "small", users=20, items=6)
        field.value = "i12"
        screen.query_one("#prompt-dataset").value = str(small)
        screen.query_one("#prompt-dataset").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.dataset.name == "small")
        assert screen.samples == popular_items(screen.dataset)
        assert "not in small: i12" in str(screen.query_one("#prompt-dataset-status").render())


async def test_leaving_an_unsaved_edit_asks_first_and_no_keeps_it(tmp_path, prompts_dir, tiny_dataset):
    from kirec_tui.screens.modals import ConfirmModal

    (prompts_dir / "other.toml").write_text(PROMPT.replace('name = "tiny"', 'name = "other"'))
    app = make_app(tmp_path, prompts_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_prompts(pilot, tiny_dataset)
        assert screen.path == prompts_dir / "other.toml"  # other.toml is listed first
        editor = screen.query_one(TomlTextArea)
        edit = editor.text.replace("test prompt", "my unsaved edit")
        editor.text = edit
        await pilot.press("escape")  # the file list
        await pilot.press("1", "4")  # another screen and back: the edit is still there
        assert app.screen is screen and editor.text == edit
        await pilot.press("ctrl+q")  # quitting over it asks too; no keeps app and edit
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal) and "other.toml v1 (edited) has an unsaved edit" in str(
            app.screen.question
        )
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is screen and app.return_code is None and editor.text == edit
        await pilot.press("down")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal) and "Discard the unsaved edit of other.toml v1" in str(
            app.screen.query_one("#question").render()
        )
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is screen and screen.path == prompts_dir / "other.toml" and editor.text == edit
        assert screen.query_one("#prompt-files").highlighted == 0  # the list is back on the edited file
        screen.query_one("#prompt-files").focus()
        await pilot.press("down")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await pilot.pause()
        assert screen.path == prompts_dir / "tiny.toml" and editor.text == PROMPT
        await pilot.press("up")  # no edit: no question
        await pilot.pause()
        assert app.screen is screen and screen.path == prompts_dir / "other.toml"


async def test_tabs_by_key_no_ctrl_b_and_the_palette_offers_extract_and_diff(tmp_path, prompts_dir, tiny_dataset):
    backend = FakeExtractionBackend()
    app = make_app(tmp_path, prompts_dir, backend=lambda: backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_prompts(pilot, tiny_dataset)
        tabs = screen.query_one("#prompts-right")
        assert tabs.active == "tab-preview"
        seen = []
        for _ in range(3):
            await pilot.press("ctrl+t")
            seen.append(tabs.active)
        assert seen == ["tab-extract", "tab-diff", "tab-preview"]
        assert "ctrl+b" not in app.active_bindings  # tmux's prefix
        await pilot.press("ctrl+p", *"extract")
        await wait_until(pilot, lambda: any("extract" in hit.lower() for hit in palette_hits(app)))
        await pilot.press("enter")
        await wait_until(pilot, lambda: set(screen.answers) == set(screen.samples))
        assert backend.calls == len(screen.samples) and tabs.active == "tab-extract"
        await pilot.press("ctrl+p", *"diff")
        await wait_until(pilot, lambda: any("Prompts: diff with marked" in hit for hit in palette_hits(app)))
        assert any("Prompts: mark for diff" in hit for hit in palette_hits(app))
        await pilot.press("escape")


class GatedBackend(FakeExtractionBackend):
    """A backend whose model load and each answer wait for the test: the screen's in-between states show."""

    def __init__(self, loaded: threading.Event, answers: threading.Semaphore) -> None:
        super().__init__()
        loaded.wait(60)
        self.answers = answers

    def generate(self, prompts: list[str], json_schema: dict, system: str = "") -> list[str]:
        assert self.answers.acquire(timeout=60), "the test never released an answer"
        return super().generate(prompts, json_schema, system)


async def test_the_extraction_preview_clears_at_once_and_reports_loading_items_done_and_eta(
    tmp_path, prompts_dir, tiny_dataset
):
    loaded, answers = threading.Event(), threading.Semaphore(0)
    app = make_app(tmp_path, prompts_dir, backend=lambda: GatedBackend(loaded, answers))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_prompts(pilot, tiny_dataset)
        status = screen.query_one("#extract-status")
        table = screen.query_one("#extract-table")
        await pilot.press("escape", "ctrl+r")
        await wait_shown(pilot, lambda: "loading the extraction model" in str(status.render()))
        assert "ctrl+g" in app.active_bindings and screen.extracting  # Stop shows while there is work
        assert all(str(table.get_row_at(i)[2]) == "…" for i in range(table.row_count))
        loaded.set()
        answers.release()
        await wait_shown(pilot, lambda: "1/5 items answered" in str(status.render()))
        line = str(status.render())
        assert "per item" in line and "ETA" in line
        assert str(table.get_row_at(0)[2]).startswith('{"mood"') and str(table.get_row_at(1)[2]) == "…"
        for _ in range(4):
            answers.release()
        await wait_shown(pilot, lambda: not screen.extracting)
        assert str(status.render()).startswith("5/5 items answered")
        assert "ctrl+g" not in app.active_bindings
        # a second extraction of an edited prompt: the old answers go at once, before any new one arrives
        loaded.clear()
        screen.query_one(TomlTextArea).text = PROMPT.replace("tone", "the tone")
        await wait_shown(pilot, lambda: screen.edited is not None and "the tone" in screen.edited.text)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert screen.answers == {} and all(str(table.get_row_at(i)[2]) == "…" for i in range(table.row_count))
        assert str(screen.query_one("#extract-quality").render()) == ""
        loaded.set()
        for _ in range(5):
            answers.release()
        await wait_shown(pilot, lambda: not screen.extracting)


async def test_the_tuis_prompts_dir_is_the_one_the_train_screen_runs_with(tmp_path, tiny_dataset, monkeypatch):
    """--prompts-dir is knowledge.prompts_dir: the Prompts screen lists that folder and a run started on the
    Train screen takes its prompt from it (recording that prompt's hash), not from the repository's prompts/."""
    import hashlib

    import engine.extraction
    from tests.tui.test_tui_train import open_train

    from engine.store import open_store
    from kirec_tui.app import build_app

    folder = tmp_path / "my-prompts"
    folder.mkdir()
    special = PROMPT.replace('name = "tiny"', 'name = "tiny-special"')
    (folder / "special.toml").write_text(special)
    backend = FakeExtractionBackend()
    monkeypatch.setattr(engine.extraction, "create_backend", lambda *args, **kwargs: backend)
    app = build_app(["--workspace", str(tmp_path), "--prompts-dir", str(folder)], {})
    assert app.env == {"KIREC_KNOWLEDGE__PROMPTS_DIR": str(folder)}
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await pilot.pause()
        assert app.screen.path == folder / "special.toml"
        small = "model.hidden_size=16 model.max_len=10 train.batch_size=32 knowledge.embed_text=attributes"
        screen = await open_train(pilot, tiny_dataset, epochs=1, extra=small)
        await pilot.press("ctrl+r")
        await screen.worker.wait()
        assert screen.final_status == "FINISHED", screen.worker.error
    with open_store(tmp_path / "runs.db") as store:  # in the workspace, with the caches
        params = store.get_run(screen.run_id).params
    assert params["knowledge.prompt"] == "tiny-special"
    assert params["knowledge.prompt_hash"] == hashlib.sha256(special.encode()).hexdigest()
    assert backend.calls > 0


def test_a_bad_prompts_dir_stops_the_tui_with_one_line(tmp_path, monkeypatch, capsys):
    from kirec_tui.app import main

    with pytest.raises(SystemExit) as exited:
        main(["--prompts-dir", str(tmp_path / "absent")])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and "--prompts-dir" in err and "no such folder" in err
