"""The Prompts screen: open, validate as you type, preview, extract with a (fake) backend, save a new
version, and diff the attributes of two versions."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tests.tui_support import wait_for_workers

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


async def wait_until(pilot, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.05)
        await wait_for_workers(pilot.app)


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
        await pilot.press("escape", "ctrl+b", "ctrl+r")  # mark v1, extract with it
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
