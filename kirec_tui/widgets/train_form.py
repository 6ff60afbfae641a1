"""The Train form: the fields of a run that people change most, turned into `load_config` flags.

Defaults come from `load_config(env=...)` itself, so the form never carries its own copy of them; the
fields and their choice lists are the settings' one declaration (kirec_tui.options), and the engine validates
every value.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Select

from kirec_tui.options import FORM_DEVICES, FORM_SETTINGS

# (widget id, dotted config key, label, choices or None for free text), from the one declaration of each setting
FIELDS: tuple[tuple[str, str, str, tuple[str, ...] | None], ...] = (
    *(
        (s.param, s.key, s.form_label or s.param, FORM_DEVICES if s.param == "device" else s.choices)
        for s in FORM_SETTINGS
    ),
    ("extra", "", "more", None),
)


class FormError(ValueError):
    """A form entry that cannot become a config flag; names the field."""


def parse_extra(text: str) -> dict[str, str]:
    """`model.hidden_size=32 train.lr=0.002` → {"model.hidden_size": "32", "train.lr": "0.002"}."""
    flags: dict[str, str] = {}
    for pair in shlex.split(text):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise FormError(f"more settings: expected SECTION.FIELD=VALUE, got {pair!r}")
        flags[key.strip()] = value.strip()
    return flags


class TrainForm(VerticalScroll):
    def __init__(self, defaults: Mapping[str, Any], dataset_names: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.defaults = dict(defaults)
        self.dataset_names = dataset_names

    def compose(self) -> ComposeResult:
        for widget_id, key, label, choices in FIELDS:
            with Horizontal(classes="form-row"):
                yield Label(label, classes="field-label")
                yield self._field(widget_id, key, choices)
        yield Label(
            "blank run name: automatic; blank prompt: the dataset's default;\n"
            "more: key=value pairs, e.g. model.hidden_size=32 train.lr=0.002",
            classes="hint",
        )

    def _field(self, widget_id: str, key: str, choices: tuple[str, ...] | None) -> Input | Select:
        default = self.defaults.get(key)
        if choices is not None:
            options = list(choices) if default in choices or default is None else [str(default), *choices]
            return Select(
                [(c, c) for c in options],
                value=str(default) if default is not None else options[0],
                allow_blank=False,
                id=f"form-{widget_id}",
                compact=True,
            )
        suggester = SuggestFromList(self.dataset_names) if widget_id == "dataset" else None
        placeholder = {"name": "automatic", "prompt": "dataset default", "extra": "key=value …"}.get(widget_id, "")
        return Input(
            "" if default is None else str(default),
            id=f"form-{widget_id}",
            suggester=suggester,
            placeholder=placeholder,
            compact=True,
        )

    # The row of the focused field is marked (its label lights up, kirec.tcss): a class on the row, since a
    # :focus-within rule restyles the row but not, at once, the label beside the field.
    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        for row in self.query(".form-row"):
            row.set_class(event.widget in row.children, "-focused")

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        if event.widget.parent is not None:
            event.widget.parent.remove_class("-focused")

    def flags(self) -> dict[str, Any]:
        """Dotted config keys → values; blank free-text fields are left unset (None)."""
        flags: dict[str, Any] = {}
        for widget_id, key, _label, choices in FIELDS:
            if choices is not None:
                flags[key] = str(self.query_one(f"#form-{widget_id}", Select).value)
                continue
            text = self.query_one(f"#form-{widget_id}", Input).value.strip()
            if widget_id == "extra":
                flags.update(parse_extra(text))
            else:
                flags[key] = text or None
        return flags

    def set_value(self, widget_id: str, value: str) -> None:
        self.query_one(f"#form-{widget_id}").value = value  # type: ignore[attr-defined]
