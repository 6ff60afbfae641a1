"""The Prompts screen's use cases in engine.services: version labels and order, the sample items chosen by id,
the text diff of two versions, the extraction preview's progress lines."""

from __future__ import annotations

import pytest

from engine.extraction.extractor import ExtractionProgress, ExtractionReport
from engine.extraction.prompts import parse_prompt
from engine.services import extraction, prompts
from engine.services.errors import NotFoundError

TEXT = '''name = "t"
template = """Item: {title}"""

[[attributes]]
name = "mood"
type = "string"
description = "tone"
'''


def test_files_list_each_files_versions_together_in_save_order(tmp_path):
    for name in ("movies.toml", "movies.v10.toml", "movies.v2.toml", "beauty.toml", "beauty.v2.toml"):
        (tmp_path / name).write_text(TEXT)
    listed = prompts.prompt_files(tmp_path)
    assert [f.label for f in listed] == [
        "beauty.toml v1",
        "beauty.toml v2",
        "movies.toml v1",
        "movies.toml v2",
        "movies.toml v10",
    ]
    assert listed[-1].path.name == "movies.v10.toml"
    assert prompts.version_label(tmp_path / "movies.v2.toml", edited=True) == "movies.toml v2 (edited)"


def test_samples_are_the_typed_item_ids_or_the_most_popular(tiny_dataset):
    from engine.services import datasets
    from engine.config import load_config

    ds = datasets.load(load_config(flags={"data.dataset": str(tiny_dataset)}).data, cwd=tiny_dataset.parent)
    popular = prompts.popular_items(ds)
    assert prompts.choose_samples(ds, "  ") == popular and len(popular) == prompts.SAMPLE_ITEMS
    chosen = prompts.choose_samples(ds, "i7, i2 i7")
    assert [ds.item_ids[i] for i in chosen] == ["i7", "i2"]  # typed order, repeats dropped
    with pytest.raises(NotFoundError, match=r"^not in tiny: nope, gone$"):
        prompts.choose_samples(ds, "i2 nope gone")


def test_the_text_diff_is_a_unified_diff_of_the_two_files():
    old, new = parse_prompt(TEXT, None), parse_prompt(TEXT.replace("tone", "the tone"), None)
    lines = prompts.text_diff(old, new, "t.toml v1", "t.toml v2")
    assert lines[:2] == ["--- t.toml v1", "+++ t.toml v2"]
    assert '-description = "tone"' in lines and '+description = "the tone"' in lines
    assert prompts.text_diff(old, old, "a", "b") == []


def test_progress_lines_say_items_done_time_per_item_and_eta():
    live = ExtractionProgress(
        done=3, total=5, extracted=2, from_cache=1, failed=0, items_per_second=0.5, eta_seconds=4.0
    )
    assert extraction.progress_text(live) == "3/5 items answered · 2.0 s per item · ETA 4.0 s · 1 from the cache"
    first = ExtractionProgress(
        done=0, total=5, extracted=0, from_cache=0, failed=0, items_per_second=0, eta_seconds=None
    )
    assert extraction.progress_text(first) == "0/5 items answered · ETA —"
    report = ExtractionReport(total=5, extracted=4, failed=1, seconds=125.0)
    report.failures = []  # items_per_second counts the ones the LLM answered
    assert extraction.finished_text(report) == "5/5 items answered · 2m05s (31 s per item) · 1 failed"
    cached = ExtractionReport(total=5, from_cache=5, seconds=0.01)
    assert extraction.finished_text(cached) == "5/5 items answered · 5 from the cache"
    assert extraction.duration_text(7300) == "2h01m"
