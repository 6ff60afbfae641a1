"""Prompt files: loading, validation errors that name the file, rendering, JSON schema, versions, defaults."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine.extraction.prompts import (
    PROMPTS_DIR,
    PromptError,
    default_prompt_for,
    load_prompt,
    save_prompt_version,
    validate_prompt,
)
from engine.extraction.schema import OutputError, parse_json_object
from engine.semantic.texts import item_texts, render_attribute_text, render_raw_text

VALID = '''
name = "toy"
datasets = ["toy-data"]
optional_fields = ["tags"]
template = """Attributes:
{schema}
Title: {title}
Genres: {genres}
Tags: {tags}
Literal {{braces}}"""

[[attributes]]
name = "mood"
type = "enum"
values = ["dark", "light"]
description = "tone"

[[attributes]]
name = "themes"
type = "list"
max_items = 2

[[attributes]]
name = "decade"
type = "integer"
'''


def write(tmp_path: Path, text: str, name: str = "toy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_defaults_load_validate_and_match_their_datasets() -> None:
    movies, products = load_prompt("movies"), load_prompt("products")
    validate_prompt(movies, {"title", "year", "genres", "tags"})
    validate_prompt(movies, {"title", "year", "genres"})  # ml-100k: no tags, declared optional
    validate_prompt(products, {"title", "brand", "categories"})
    assert default_prompt_for("ml-latest-small").name == "movies"
    assert default_prompt_for("ml-1m").name == "movies"
    assert default_prompt_for("amazon-beauty").name == "products"
    assert default_prompt_for("my-own-dataset").name == "products"  # the "*" fallback
    for prompt in (movies, products):
        assert 2 <= len(prompt.schema.attributes) <= 4  # output tokens are the cost
        last_line = prompt.template.rstrip().splitlines()[-1]
        assert "{" in last_line and "{schema}" not in last_line  # item last: the shared prefix is reused


def test_render_joins_lists_drops_empty_optional_lines_and_keeps_literal_braces(tmp_path: Path) -> None:
    prompt = load_prompt(write(tmp_path, VALID))
    text = prompt.render({"title": "Alien (1979)", "genres": ["Horror", "Sci-Fi"], "tags": []})
    assert "Title: Alien (1979)" in text
    assert "Genres: Horror, Sci-Fi" in text
    assert "Tags" not in text
    assert "Literal {braces}" in text
    assert "- mood (one of: dark, light): tone" in text
    with_tags = prompt.render({"title": "Alien", "genres": "Horror", "tags": ["space", "creature"]})
    assert "Tags: space, creature" in with_tags


def test_json_schema_and_output_validation(tmp_path: Path) -> None:
    prompt = load_prompt(write(tmp_path, VALID))
    schema = prompt.json_schema()
    assert schema["required"] == ["mood", "themes", "decade"]
    assert schema["properties"]["mood"]["enum"] == ["dark", "light"]
    assert schema["properties"]["themes"]["maxItems"] == 2
    assert schema["additionalProperties"] is False
    good = prompt.schema.validate({"mood": "dark", "themes": ["a", " b ", "c"], "decade": 1970})
    assert good == {"mood": "dark", "themes": ["a", "b"], "decade": 1970}
    for bad, message in [
        ({"mood": "grim", "themes": [], "decade": 1}, "not one of"),
        ({"mood": "dark", "themes": [1], "decade": 1}, "list of strings"),
        ({"mood": "dark", "themes": []}, "missing"),
        ({"mood": "dark", "themes": [], "decade": "1970"}, "integer"),
    ]:
        with pytest.raises(OutputError, match=message):
            prompt.schema.validate(bad)
    assert parse_json_object('Sure! ```json\n{"a": 1}\n```') == {"a": 1}
    with pytest.raises(OutputError):
        parse_json_object("no json here")


def test_content_hash_is_the_files_sha256(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    assert load_prompt(path).content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_prompt(write(tmp_path, VALID + "\n# edit\n", "b.toml")).content_hash != load_prompt(path).content_hash


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.replace('type = "integer"', 'type = "float"'), "bad type 'float'"),
        (lambda t: t.replace('name = "decade"', 'name = "Decade!"'), "bad name"),
        (lambda t: t.split("[[attributes]]")[0], "no attributes"),
        (lambda t: t.replace('values = ["dark", "light"]', 'values = ["dark"]'), "at least 2"),
        (lambda t: t.replace("Title: {title}", "Title: {title!r}"), "format spec or conversion"),
        (lambda t: t.replace("Title: {title}", "Title: {title"), "template"),
        (lambda t: t + "\nbogus = 1\n", "unknown key"),
        (lambda t: t.replace('name = "toy"', 'name = "toy'), "invalid TOML"),
    ],
)
def test_invalid_prompts_fail_with_the_file_name(tmp_path: Path, change, message: str) -> None:
    path = write(tmp_path, change(VALID))
    with pytest.raises(PromptError, match=message) as info:
        load_prompt(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_placeholder_validation_against_dataset_fields(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("Title: {title}", "Title: {title} {plot}"))
    prompt = load_prompt(path)
    with pytest.raises(PromptError, match=r"unknown placeholder \{plot\}") as info:
        validate_prompt(prompt)
    assert str(path) in str(info.value)
    validate_prompt(prompt, {"title", "genres", "plot"})  # a dataset with a 'plot' field makes it fine
    movies_like = load_prompt(write(tmp_path, VALID, "m.toml"))
    with pytest.raises(PromptError, match=r"\{genres\}: this dataset's items have no 'genres' field") as info:
        validate_prompt(movies_like, {"title", "brand"})
    assert "m.toml" in str(info.value)
    validate_prompt(movies_like, {"title", "genres"})  # 'tags' is optional


def test_unknown_prompt_name_lists_what_exists(tmp_path: Path) -> None:
    write(tmp_path, VALID)
    with pytest.raises(PromptError, match="available: toy"):
        load_prompt("nope", tmp_path)
    assert load_prompt("toy", tmp_path).name == "toy"


def test_save_prompt_version_never_overwrites(tmp_path: Path) -> None:
    prompt = load_prompt(write(tmp_path, VALID))
    edited = VALID.replace("Attributes:", "Describe:")
    v2 = save_prompt_version(prompt, edited)
    assert v2.name == "toy.v2.toml" and v2.read_text() == edited
    v3 = save_prompt_version(load_prompt(v2), edited + "\n")
    assert v3.name == "toy.v3.toml"
    assert (tmp_path / "toy.toml").read_text() == VALID
    assert load_prompt("toy.v3", tmp_path).version == 3
    with pytest.raises(PromptError, match="toy.v4.toml"):
        save_prompt_version(prompt, "not = [valid")
    assert not (tmp_path / "toy.v4.toml").exists()
    # versions are never picked as a dataset's default
    assert default_prompt_for("toy-data", tmp_path).path == tmp_path / "toy.toml"


def test_attributes_render_as_the_text_that_is_embedded() -> None:
    answer = '{"genre": "sci-fi", "mood": "dark", "themes": ["space", "survival"], "empty": [], "year": 1979}'
    attributes = parse_json_object(answer)  # an LLM's raw answer, as the extractor parses it
    text = render_attribute_text(attributes)
    assert text == "genre: sci-fi; mood: dark; themes: space, survival; year: 1979"
    # exactly this string, not the item's own text, is what the embedding stage encodes for the item
    item = {"title": "Alien (1979)", "genres": ["Horror", "Sci-Fi"]}
    assert item_texts([{}, item], [None, attributes], "attributes").texts == [text]
    assert item_texts([{}, item], [None, attributes], "both").texts == [f"{text} | {render_raw_text(item)}"]
    assert PROMPTS_DIR.is_dir()
