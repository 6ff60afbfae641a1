"""Answer formats: the `lines` wire format turns back into the same JSON the validator reads, a prompt declares its
format, and the extractor asks a backend that can for it (the others answer JSON)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import registry
from engine.extraction.answer_formats import JSON, LINES, lines_complete, lines_grammar, lines_to_json
from engine.extraction.cache import ExtractionCache
from engine.extraction.extractor import extract_items
from engine.extraction.prompts import PromptError, load_prompt, parse_prompt
from engine.extraction.schema import parse_json_object
from test_extraction_cache import make_dataset

PRODUCTS = load_prompt("products")


def test_a_line_becomes_the_json_object_of_the_schema_in_its_order():
    schema = PRODUCTS.json_schema()
    text = lines_to_json("hair dryer |hair| ionic, compact ,\n", schema)
    assert json.loads(text) == {"product_type": "hair dryer", "area": "hair", "features": ["ionic", "compact"]}
    assert PRODUCTS.schema.validate(parse_json_object(text))["features"] == ["ionic", "compact"]
    assert json.loads(lines_to_json("kit|tools|\n", schema))["features"] == []  # an empty list is a list


def test_a_line_with_the_wrong_number_of_values_is_left_for_the_validator_to_refuse():
    schema = PRODUCTS.json_schema()
    assert lines_to_json("hair dryer|hair\n", schema) == "hair dryer|hair\n"
    assert lines_to_json("a|b|c|d\n", schema) == "a|b|c|d\n"
    assert lines_to_json("hair dryer|hair|ionic", schema) == "hair dryer|hair|ionic"  # cut by the token limit


def test_integers_convert_and_a_non_integer_is_refused_later():
    schema = {"properties": {"year": {"type": "integer"}, "mood": {"type": "string", "enum": ["a", "b"]}}}
    assert json.loads(lines_to_json("1999|a\n", schema)) == {"year": 1999, "mood": "a"}
    assert lines_to_json("soon|a\n", schema) == "soon|a\n"


@given(
    st.text(alphabet=st.characters(blacklist_characters="|\n,", blacklist_categories=("Cs", "Cc")), min_size=1),
    st.lists(
        st.text(alphabet=st.characters(blacklist_characters="|\n,", blacklist_categories=("Cs", "Cc")), min_size=1),
        max_size=2,
    ),
)
def test_any_value_the_grammar_allows_survives_the_round_trip(kind, features):
    line = f"{kind}|face|{','.join(features)}\n"
    answer = json.loads(lines_to_json(line, PRODUCTS.json_schema()))
    assert answer["product_type"] == kind.strip()
    assert answer["features"] == [f.strip() for f in features if f.strip()]


def test_the_grammar_asks_for_every_property_in_order_and_ends_with_a_newline():
    grammar = lines_grammar(PRODUCTS.json_schema())
    root = grammar.splitlines()[0]
    assert root == 'root ::= v0 "|" v1 "|" v2 "\\n"'
    assert 'v1 ::= "face" | "eyes"' in grammar  # the enum's values, as the schema lists them
    assert "{1,24}" in grammar and "{0,1}" in grammar  # the string's length bound; a list of at most 2
    assert lines_complete(bytearray(b"x|face|\n")) and not lines_complete(bytearray(b"x|face|a"))


def test_only_the_lines_format_adds_its_instruction_to_the_system_text():
    assert LINES.system_text("You are a shopping expert. ") == (
        "You are a shopping expert. You answer with the values only, in the order asked, separated by |."
    )
    assert JSON.system_text(" You are a film expert.") == "You are a film expert."
    assert LINES.system_text("") == LINES.instruction


def test_the_formats_are_registered_and_json_is_returned_as_it_is():
    assert registry.choices("answer_format") == ("json", "lines")
    assert registry.load("answer_format", "lines") is LINES and registry.load("answer_format", "json") is JSON
    assert JSON.to_json('{"a":1}', {}) == '{"a":1}'


def test_a_prompt_declares_its_format_and_a_bad_one_is_a_one_line_error():
    text = PRODUCTS.text
    assert PRODUCTS.answer_format == "lines" and load_prompt("movies").answer_format == "json"
    with pytest.raises(PromptError, match=r"x\.toml: 'answer_format' must be one of json, lines, not 'yaml'"):
        parse_prompt(text.replace('answer_format = "lines"', 'answer_format = "yaml"'), "x.toml")


class LinesOnlyBackend:
    """A fake backend for this test: answers in the `lines` format only when asked for it, else JSON."""

    fingerprint = "fake-lines"

    def __init__(self):
        self.formats: list[str] = []

    def generate(self, prompts, json_schema, system="", on_answer=None, answer_format="json"):
        self.formats.append(answer_format)
        line = "lipstick|lips|matte\n"
        return [registry.load("answer_format", answer_format).to_json(line, json_schema)] * len(prompts)


def test_the_extractor_asks_a_capable_backend_for_the_prompts_format(tmp_path):
    dataset = make_dataset(2)
    prompt = PRODUCTS
    backend = LinesOnlyBackend()
    report = extract_items(dataset, prompt, backend, ExtractionCache(tmp_path / "c.sqlite"))
    assert backend.formats == ["lines"] and report.extracted == 2 and report.failed == 0
