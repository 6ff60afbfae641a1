"""Prompt files: loading, validation errors that name the file, rendering, JSON schema, versions, defaults."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine.extraction.prompts import (
    ITEM_TEXT_CHARS,
    PROMPTS_DIR,
    PromptError,
    default_prompt_for,
    load_prompt,
    render_item_fields,
    save_prompt_version,
    validate_prompt,
)
from engine.extraction.schema import OutputError, parse_json_object
from engine.semantic.texts import item_texts, render_attribute_text, render_raw_text

ROOT = Path(__file__).resolve().parents[2]

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
    assert default_prompt_for("my-own-dataset").name == "generic"  # the domain-neutral "*" fallback
    for prompt in (movies, products, load_prompt("generic")):
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


# The shipped default prompts are the keys of shipped and cached answers (prompts/extractions/*.jsonl): an edit to
# either file orphans them. Add a new prompt file instead, or re-ship the answers and update the pin.
SHIPPED_PROMPT_HASHES = {
    "movies": "12972e4cdcf37c7a904c48c1f08ed577abc248dd6a392cb64cb3aeac003a8085",
    # the `lines` answer format since session 18 (docs/results/README.md "Extraction cost"); its first version
    # (a46dcf86…) had the format's instruction in its own system line, which llama.cpp now adds: the same tokens
    "products": "7c2f24fb7e51742db866ecfa0fd5652a4cf8c3f562999c76c285363eae7fd78e",
}
# The JSON-format products prompt that made the README's earlier Beauty attribute results, kept byte for byte so
# `--prompt benchmarks/prompts/products-json.toml` finds their cached answers.
EARLIER_PRODUCTS_HASH = "d64044dc1667a83e5283ae6f2713ddef643e5d875898082358b3f4b45858298f"


def test_the_movie_and_beauty_defaults_are_unchanged_and_still_chosen_for_their_datasets() -> None:
    for dataset, name in [("ml-latest-small", "movies"), ("ml-100k", "movies"), ("amazon-beauty", "products")]:
        prompt = default_prompt_for(dataset)
        assert (prompt.name, prompt.content_hash) == (name, SHIPPED_PROMPT_HASHES[name])
    earlier = load_prompt(ROOT / "benchmarks" / "prompts" / "products-json.toml")
    assert (earlier.name, earlier.content_hash, earlier.answer_format) == ("products", EARLIER_PRODUCTS_HASH, "json")


def test_a_generic_format_dataset_gets_the_neutral_prompt_which_renders_its_item(tmp_path: Path) -> None:
    from tests.data_support import write_generic_dataset
    from engine.config import load_config
    from engine.data.preprocess import load_dataset
    from engine.knowledge import resolve_prompt

    cfg = load_config(flags={"data.dataset": str(write_generic_dataset(tmp_path / "lab-supplies", users=12, items=6))})
    dataset = load_dataset(cfg.data, cwd=tmp_path)
    prompt = resolve_prompt(cfg, dataset)  # what `kirec run` and `kirec extract` use: validated against the dataset
    assert prompt.name == "generic" and prompt.path == PROMPTS_DIR / "generic.toml"
    assert "area" not in prompt.schema.names and {"kind", "use", "audience"} <= set(prompt.schema.names)
    text = prompt.render(dataset.item_text[1])
    assert text.endswith("Item:\nTitle: Item number 0\nGenres: Comedy")  # the item last: the shared prefix is reused
    assert "- audience (one of: " in text and "{" not in text
    # it fits a catalogue whatever its fields: one with neither a title nor any field kirec knows
    validate_prompt(prompt, {"name", "voltage"})
    named = prompt.render({"name": "SUPCO SPP6 Relay", "voltage": "230 V", "id": "x1"})
    assert named.endswith("Item:\nName: SUPCO SPP6 Relay\nVoltage: 230 V")


def test_the_item_placeholder_puts_known_fields_first_and_cuts_long_ones(tmp_path: Path) -> None:
    prompt = load_prompt(write(tmp_path, VALID.replace("Title: {title}", "{item}")))
    assert prompt.renders_all_fields and "item" not in prompt.placeholders
    validate_prompt(prompt, {"genres"})  # {item} needs no particular field; {genres} still does
    with pytest.raises(PromptError, match="genres"):
        validate_prompt(prompt, {"title"})
    text = prompt.render({"zeta_notes": "z", "description": "d" * 500, "title": "T", "asin": "B00", "genres": []})
    lines = text.splitlines()
    start = lines.index("Title: T")
    assert lines[start + 1].startswith("Description: ddd") and lines[start + 1].endswith("…")
    assert len(lines[start + 1]) < 200 and lines[start + 2] == "Zeta notes: z"
    assert "B00" not in text and "Genres" not in text
    huge = render_item_fields({"title": "T", **{f"field_{n}": "x" * 150 for n in range(20)}})
    assert ITEM_TEXT_CHARS - 170 < len(huge) <= ITEM_TEXT_CHARS  # a long record is cut, not refused as too long
    assert huge.startswith("Title: T\nField 0: xxx")
    # a template without {item} is not affected by fields it does not name
    plain = load_prompt(write(tmp_path, VALID, "plain.toml"))
    assert not plain.renders_all_fields and plain.render({"title": "T", "x": "y"}) == plain.render({"title": "T"})


def test_a_generic_prompt_comes_before_a_domain_prompt_that_also_takes_any_dataset(tmp_path: Path) -> None:
    domain = VALID.replace('datasets = ["toy-data"]', 'datasets = ["toy-data", "*"]')
    write(tmp_path, domain, "a-domain.toml")
    assert default_prompt_for("other", tmp_path).path.name == "a-domain.toml"  # the only fallback
    write(tmp_path, VALID.replace('datasets = ["toy-data"]', 'datasets = ["*"]'), "z-any.toml")
    assert default_prompt_for("other", tmp_path).path.name == "z-any.toml"  # not by file name: a-domain sorts first
    assert default_prompt_for("toy-data", tmp_path).path.name == "a-domain.toml"  # a named dataset keeps its own


def test_html_entities_in_item_text_are_unescaped_in_the_prompt() -> None:
    products = load_prompt("products")
    text = products.render(
        {
            "title": "L&#39;Oreal Paris Bath &amp; Body &#153;",
            "brand": "L&#39;Oreal",
            "categories": ["Bath &amp; Body", "Caf&eacute;"],
        }
    )
    assert "Product: L'Oreal Paris Bath & Body ™" in text
    assert "Brand: L'Oreal" in text and "Category: Bath & Body, Café" in text
    assert "&#" not in text and "&amp;" not in text
    # only complete entities: a bare ampersand, a legacy name without ';' and an unknown name stay as written
    plain = products.render({"title": "AT&T Salt &notes &copyright; R&D &bogus;"})
    assert "Product: AT&T Salt &notes &copyright; R&D &bogus;" in plain


def test_the_item_hash_of_text_without_entities_is_what_it_always_was_and_changes_with_entities() -> None:
    import json

    from engine.extraction.cache import item_text_hash

    def old_hash(text: dict) -> str:  # the formula every cached and shipped answer is keyed by
        return hashlib.sha256(json.dumps(text, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()

    plain = {"title": "Toy Story (1995)", "genres": ["Adventure", "Animation"], "tags": ["pixar & fun"]}
    assert item_text_hash(plain) == old_hash(plain)
    escaped = {"title": "L&#39;Oreal Mascara", "categories": ["Bath &amp; Body"]}
    assert item_text_hash(escaped) != old_hash(escaped)  # its prompt changed: answers to the old one are not reused
    assert item_text_hash(escaped) == old_hash({"title": "L'Oreal Mascara", "categories": ["Bath & Body"]})


def test_every_shipped_answer_still_matches_an_item_of_its_dataset(shared_data: Path, tmp_path: Path) -> None:
    from engine.config import load_config
    from engine.data.preprocess import load_dataset
    from engine.extraction.cache import item_text_hash
    from engine.extraction.shipped import SHIPPED_DIR, read_shipped_extractions

    for path in sorted(SHIPPED_DIR.glob("*.jsonl")):
        header, records = read_shipped_extractions(path)
        assert header["prompt_hash"] == load_prompt(header["prompt_name"]).content_hash, path
        cfg = load_config(flags={"data.dataset": header["dataset"], "data.data_root": str(shared_data)})
        dataset = load_dataset(cfg.data, cwd=tmp_path)
        hashes = {item_text_hash(dataset.item_text[i]) for i in range(1, dataset.num_items + 1)}
        assert {r.item_hash for r in records} <= hashes, path
