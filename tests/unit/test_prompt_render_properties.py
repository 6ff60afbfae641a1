"""Properties of `Prompt.render` (engine/extraction/prompts.py) on generated item texts, for the shipped prompts:
it never fails, every value it is given appears verbatim (braces in a title are text, not placeholders), a line
whose fields are all empty is left out, and fields the template does not name change nothing."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.extraction.prompts import KNOWN_FIELDS, PROMPTS_DIR, SCHEMA_PLACEHOLDER, _field_text, load_prompt

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROMPTS = [load_prompt(p) for p in sorted(PROMPTS_DIR.glob("*.toml"))]

# Values as loaders produce them, plus the awkward ones: braces, format specs, newlines, only spaces.
text = st.text(max_size=30) | st.sampled_from(["{title}", "{schema}", "{0}", "{}", "}{", "{title!r:>9}", "  ", "a\nb"])
value = text | st.lists(text, max_size=4) | st.none() | st.integers()
item_texts = st.dictionaries(st.sampled_from(sorted(KNOWN_FIELDS)) | st.text(max_size=6), value, max_size=8)


def test_the_shipped_prompts_are_found():
    assert {"movies", "products", "generic"} <= {p.name for p in PROMPTS}


@PROPERTY
@given(item_texts)
def test_every_given_value_appears_verbatim(item_text):
    for prompt in PROMPTS:
        rendered = prompt.render(item_text)
        for name in prompt.placeholders:
            assert _field_text(item_text.get(name)) in rendered, name
        assert prompt.schema.describe() in rendered if SCHEMA_PLACEHOLDER in prompt.template else True


@PROPERTY
@given(item_texts, st.dictionaries(st.text(max_size=6), value, max_size=3))
def test_fields_the_template_does_not_name_change_nothing(item_text, extra):
    for prompt in PROMPTS:
        if prompt.renders_all_fields:  # {item} names every field
            continue
        unused = {k: v for k, v in extra.items() if k not in prompt.placeholders}
        assert prompt.render({**item_text, **unused}) == prompt.render(item_text)


@PROPERTY
@given(st.dictionaries(st.text(alphabet="abcxyz_", min_size=1, max_size=6), st.text(max_size=30), max_size=6))
def test_an_item_prompt_shows_every_short_field(item_text):
    generic = [p for p in PROMPTS if p.renders_all_fields]
    assert generic, "the shipped domain-neutral prompt renders {item}"
    for prompt in generic:
        rendered = prompt.render(item_text)
        for name, value in item_text.items():
            shown = " ".join(_field_text(value).split())
            if shown and name.strip("_") and name not in ("id", "item_id", "asin"):
                assert f": {shown}" in rendered, (name, value)


@PROPERTY
@given(item_texts)
def test_a_line_whose_fields_are_all_empty_is_left_out(item_text):
    assume(not any("\n" in _field_text(v) for v in item_text.values()))  # a value's own lines could look like one
    for prompt in PROMPTS:
        rendered_lines = [r.rstrip() for r in prompt.render(item_text).splitlines()]
        for line in prompt.template.splitlines():
            names = [n for n in prompt.placeholders if "{" + n + "}" in line]
            if names and not any(_field_text(item_text.get(n)) for n in names):
                empty = line.format_map({**{n: "" for n in prompt.placeholders}, SCHEMA_PLACEHOLDER: ""}).rstrip()
                assert not empty or empty not in rendered_lines, (line, rendered_lines)


@PROPERTY
@given(st.lists(st.text(max_size=10), max_size=5))
def test_a_list_renders_as_its_comma_joined_values(values):
    for prompt in PROMPTS:
        for name in prompt.placeholders:
            joined = ", ".join(v.strip() for v in values if v.strip())
            assert prompt.render({name: values}) == prompt.render({name: joined})
