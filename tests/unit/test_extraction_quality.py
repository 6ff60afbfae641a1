"""The answer-quality report (engine/extraction/quality.py): figures on hand-made answers whose quality is known,
its reading of the cache, and its events at the end of engine.knowledge.extract_attributes."""

from __future__ import annotations

import json
import re

import pytest

from engine.config import load_config
from engine.events import Status
from engine.extraction.cache import STATUS_FAILED, STATUS_OK, ExtractionCache, ExtractionRecord, item_text_hash
from engine.extraction.prompts import parse_prompt
from engine.extraction.quality import extraction_quality, is_title_copy, measure_quality

TITLES = [f"Acme Model {i} Cordless Drill Driver Kit" for i in range(25)]


def hand_made_answers() -> list[dict | None]:
    """25 items: `area` collapsed (22 × "face"), `product_type` mostly the title (10 whole, 5 cut at 24 characters),
    `features` healthy (a distinct pair each), and items 23, 24 failed."""
    answers: list[dict | None] = []
    for i, title in enumerate(TITLES):
        if i >= 23:
            answers.append(None)
            continue
        if i < 10:
            product_type = title.upper() + "  "  # case and spacing do not hide a copy
        elif i < 15:
            product_type = title[:24]  # cut short at the schema's max_length
        else:
            product_type = "drill" if i % 2 else "driver kit"
        area = "face" if i < 22 else "tools"
        answers.append({"product_type": product_type, "area": area, "features": [f"feature {i}", "cordless"]})
    return answers


def test_a_collapsed_field_and_a_title_copy_are_measured_and_warned_about_and_a_healthy_one_is_not():
    report = measure_quality(hand_made_answers(), TITLES, ["product_type", "area", "features"], prompt="products")
    assert (report.items, report.answered, report.failed, report.missing) == (25, 23, 2, 0)
    product_type, area, features = report.fields
    assert (area.distinct, area.top_value, area.top_count, area.answered) == (2, "face", 22, 23)
    assert area.top_share == pytest.approx(22 / 23)
    assert product_type.title_copies == 15 and product_type.title_copy_share == pytest.approx(15 / 23)
    assert product_type.distinct == 10 + 5 + 2  # each title is its own answer; "drill" and "driver kit"
    assert (features.distinct, features.distinct_values, features.title_copies) == (23, 24, 0)
    assert features.top_share == pytest.approx(1 / 23)
    warnings = report.warnings
    assert len(warnings) == 2, warnings
    assert "'area' has collapsed to one value: 'face' in 96% of 23 answers" in warnings[1]
    assert "'product_type' is a copy of the title in 65% of 23 answers" in warnings[0]
    assert not any("features" in w for w in warnings)

    lines = report.lines()
    assert lines[0] == "answer quality (products): 23 of 25 items answered, 2 failed"
    assert lines[2] == "  area: 2 distinct, top 'face' 96%, title copies 0%, 0 empty"
    assert lines[3].startswith("  features: 23 distinct (24 values), top ")
    info = report.as_info()
    assert info["quality.area.distinct"] == 2 and info["quality.area.top_value"] == "face"
    assert info["quality.area.top_share"] == pytest.approx(0.9565, abs=1e-4)
    assert info["quality.product_type.title_copy_share"] == pytest.approx(0.6522, abs=1e-4)
    assert (info["quality.failed"], info["quality.warnings"]) == (2, 2)
    assert all(isinstance(v, (int, float, str)) for v in info.values())  # scalars: they go into the run's params

    events = []
    report.emit(events.append)
    assert [e.level for e in events] == ["info"] * 4 + ["warning"] * 2
    assert events[-1].message.startswith("answer quality: 'area' has collapsed")


def test_title_copies_whole_cut_short_or_escaped_count_and_short_prefixes_do_not():
    title = "SUPCO SPP6 Relay/Capacitor Hard Start Kit"
    assert is_title_copy("supco  spp6 relay/capacitor HARD start kit", title)
    assert is_title_copy("SUPCO SPP6 Relay/Capacit", title)  # the 24-character cut the issue saw
    assert is_title_copy("L'Oreal Paris Voluminous", "L&#39;Oreal Paris Voluminous Mascara")  # as the model read it
    assert not is_title_copy("SUPCO SPP6", title)  # a short prefix is a brand or a model name, not a copy
    assert not is_title_copy("relay kit", title)
    assert not is_title_copy("", title) and not is_title_copy("kit", "")


def test_few_answers_that_agree_and_many_empty_or_failed_ones():
    few = measure_quality([{"mood": "funny"}] * 10, ["t"] * 10)
    assert few.fields[0].top_share == 1.0 and few.warnings == []  # ten comedies may all be funny
    many = measure_quality([{"mood": "funny"}] * 20, [f"t{i}" for i in range(20)])
    assert len(many.warnings) == 1 and "'mood' has collapsed" in many.warnings[0]

    empty = measure_quality([{"themes": []}] * 15 + [{"themes": ["war"]}] * 5 + [None] * 10, ["t"] * 30)
    themes = empty.fields[0]
    assert (themes.answered, themes.empty, themes.distinct) == (5, 15, 1)
    assert any("'themes' is empty in 75% of 20 answers" in w for w in empty.warnings)
    assert any("10 of 30 items (33%) have no valid answer" in w for w in empty.warnings)
    # a list in another order is the same answer
    assert measure_quality([{"f": ["a", "b"]}, {"f": ["b", "A"]}], ["x", "y"]).fields[0].distinct == 1
    with pytest.raises(ValueError):
        measure_quality([{"f": "a"}], [])


PROMPT = parse_prompt('''
name = "toy"
template = """{schema}
Title: {title}"""
[[attributes]]
name = "mood"
type = "enum"
values = ["dark", "light"]
''')


class ToyDataset:
    def __init__(self, texts: list[dict]) -> None:
        self.item_text = [{}] + texts
        self.item_ids = ["[PAD]"] + [f"i{n}" for n in range(1, len(texts) + 1)]
        self.num_items = len(texts)


def test_the_report_reads_the_cache_telling_failed_from_not_yet_extracted_and_skipping_textless_items(tmp_path):
    texts = [{"title": f"Film {n}"} for n in range(1, 7)] + [{}]  # item 7 has no text: never asked
    dataset = ToyDataset(texts)
    records = [
        ExtractionRecord(f"i{n}", item_text_hash(texts[n - 1]), {"mood": "dark"}, "{}", STATUS_OK, 1) for n in (1, 2, 3)
    ]
    records.append(ExtractionRecord("i4", item_text_hash(texts[3]), None, "junk", STATUS_FAILED, 2, "not JSON"))
    with ExtractionCache(tmp_path / "c.sqlite") as cache:
        cache.put_many("m", PROMPT.content_hash, PROMPT.name, records)
        cache.put_many(
            "other-model",
            PROMPT.content_hash,
            PROMPT.name,
            [ExtractionRecord("i5", item_text_hash(texts[4]), {"mood": "light"}, "{}", STATUS_OK, 1)],
        )
        report = extraction_quality(dataset, PROMPT, "m", cache)
        limited = extraction_quality(dataset, PROMPT, "m", cache, item_indices=[1, 4])
    assert (report.items, report.answered, report.failed, report.missing) == (6, 3, 1, 2)
    assert report.fields[0].distinct == 1 and report.fields[0].top_value == "dark"
    assert "2 not yet extracted" in report.lines()[0]
    assert (limited.items, limited.answered, limited.failed, limited.missing) == (2, 1, 1, 0)


class TitleCopyingBackend:
    """Answers every item with its own title as `kind` and the same audience: a copy and a collapse."""

    fingerprint = "fake:title-copier"

    def generate(self, prompts, json_schema, system="", on_answer=None):
        answers = []
        for index, prompt in enumerate(prompts):
            title = re.search(r"^Title: (.*)$", prompt, re.M).group(1)
            answer = json.dumps({"kind": title, "traits": [title.split()[-1]], "use": "work", "audience": "anyone"})
            answers.append(answer)
            if on_answer is not None:
                on_answer(index, answer)
        return answers

    def close(self):
        pass


def test_extract_attributes_ends_with_the_report_as_events_and_in_its_info(tmp_path, monkeypatch):
    import engine.extraction
    from tests.data_support import write_generic_dataset
    from engine.data.preprocess import load_dataset
    from engine.knowledge import extract_attributes

    monkeypatch.setattr(engine.extraction, "create_backend", lambda *a, **kw: TitleCopyingBackend())
    cfg = load_config(flags={"data.dataset": str(write_generic_dataset(tmp_path / "tools", users=40, items=24))})
    dataset = load_dataset(cfg.data, cwd=tmp_path)
    events = []
    attributes, info = extract_attributes(cfg, dataset, tmp_path, on_event=events.append)
    assert info["prompt"] == "generic"  # a generic-format dataset gets the domain-neutral prompt
    assert sum(a is not None for a in attributes) == 24
    assert (info["quality.items"], info["quality.answered"], info["quality.kind.title_copy_share"]) == (24, 24, 1.0)
    assert info["quality.audience.top_value"] == "anyone" and info["quality.audience.distinct"] == 1
    assert info["quality.traits.distinct"] == 24 and info["quality.warnings"] == 3  # kind; use, audience
    warnings = [e.message for e in events if isinstance(e, Status) and e.level == "warning"]
    assert any("'kind' is a copy of the title in 100% of 24 answers" in w for w in warnings), warnings
    assert any("'audience' has collapsed to one value: 'anyone'" in w for w in warnings), warnings
    assert any(isinstance(e, Status) and e.message.startswith("answer quality (generic): 24 of 24") for e in events)
