"""What text each item is embedded from: attributes, raw fields, or both, with the fallback counted."""

import pytest

from engine.semantic.texts import item_texts, render_attribute_text, render_fields, render_raw_text

ITEM_TEXT = [
    {},  # padding row
    {"title": "Toy Story (1995)", "year": "1995", "genres": ["Animation", "Comedy"]},
    {"title": "Great Lash Mascara", "brand": "Maybelline", "categories": ["Beauty", "Makeup", "Eyes"]},
    {"title": "Frying pan", "description": "  non-stick\n  aluminium  "},
]
ATTRIBUTES = [None, {"mood": "playful", "themes": ["toys", "friendship"]}, {}, {"material": "aluminium", "empty": ""}]


def test_render_fields_joins_lists_and_drops_empty_values():
    text = render_fields({"main_theme": "space", "tags": ["a", " ", "b"], "none": None, "blank": "  "})
    assert text == "main theme: space; tags: a, b"


def test_render_fields_caps_long_lists():
    assert render_fields({"tags": [str(i) for i in range(30)]}, max_list_values=3) == "tags: 0, 1, 2"


def test_raw_text_puts_title_first_skips_year_and_squashes_whitespace():
    assert render_raw_text(ITEM_TEXT[1]) == "title: Toy Story (1995); genres: Animation, Comedy"
    assert render_raw_text({"description": "x", "brand": "B", "title": "T"}) == "title: T; brand: B; description: x"
    assert render_raw_text(ITEM_TEXT[3]) == "title: Frying pan; description: non-stick aluminium"


def test_attribute_text_keeps_declared_order():
    assert render_attribute_text({"z": "1", "a": "2"}) == "z: 1; a: 2"
    assert render_attribute_text(None) == ""


def test_attributes_mode_falls_back_to_raw_text_and_counts_it():
    result = item_texts(ITEM_TEXT, ATTRIBUTES, "attributes")
    assert result.texts[0] == "mood: playful; themes: toys, friendship"
    assert result.texts[1] == render_raw_text(ITEM_TEXT[2])  # {} attributes: fallback
    assert result.texts[2] == "material: aluminium"
    assert result.fell_back_to_raw == 1
    assert len(result.texts) == len(ITEM_TEXT) - 1


def test_attributes_mode_without_any_extraction_is_all_fallback():
    result = item_texts(ITEM_TEXT, None, "attributes")
    assert result.fell_back_to_raw == 3
    assert result.texts == [render_raw_text(t) for t in ITEM_TEXT[1:]]


def test_both_mode_joins_attributes_and_raw_text():
    result = item_texts(ITEM_TEXT, ATTRIBUTES, "both")
    assert result.texts[0] == "mood: playful; themes: toys, friendship | " + render_raw_text(ITEM_TEXT[1])
    assert result.texts[1] == render_raw_text(ITEM_TEXT[2])
    assert result.fell_back_to_raw == 1


def test_raw_mode_ignores_attributes_and_counts_empty_texts():
    result = item_texts([{}, {}, {"title": "x"}], [None, {"a": "b"}, None], "raw")
    assert result.texts == ["", "title: x"]
    assert result.fell_back_to_raw == 0
    assert result.empty == 1


def test_bad_mode_and_misaligned_attributes_are_rejected():
    with pytest.raises(ValueError, match="knowledge.embed_text"):
        item_texts(ITEM_TEXT, None, "titles")
    with pytest.raises(ValueError, match="3 entries for 4 item rows"):
        item_texts(ITEM_TEXT, ATTRIBUTES[:3], "attributes")


def test_raw_text_unescapes_html_entities_as_the_prompt_side_does():
    # Amazon's metadata carries escape codes (700 Beauty items); the encoder should see the characters
    item = {"title": "L&#39;Oreal Bath &amp; Body", "categories": ["Skin &amp; Care", "Face"]}
    assert render_raw_text(item) == "title: L'Oreal Bath & Body; categories: Skin & Care, Face"
    assert render_fields({"name": "Salt &notes"}) == "name: Salt &notes"  # no semicolon: a plain ampersand
