"""Attribute schemas: what a prompt asks the LLM to return, as a JSON schema and as a validator of the answer.

A prompt file declares a handful of attributes (name, type, description). The same declaration becomes the JSON
schema that constrains decoding, the check applied to every answer, and the order attributes are rendered in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

ATTRIBUTE_TYPES = ("string", "list", "enum", "integer")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # short snake_case keys: they cost output tokens
DEFAULT_MAX_ITEMS = 3
DEFAULT_MAX_LENGTH = 40


class SchemaError(ValueError):
    """An attribute declaration that cannot become a JSON schema; the message names the attribute."""


class OutputError(ValueError):
    """An LLM answer that is not JSON or does not match the attribute schema."""


@dataclass(frozen=True)
class AttributeSpec:
    name: str
    type: str  # string | list | enum | integer
    description: str = ""
    values: tuple[str, ...] = ()  # enum choices
    max_items: int = DEFAULT_MAX_ITEMS  # list length bound (keeps outputs short)
    max_length: int = DEFAULT_MAX_LENGTH  # characters per string value
    minimum: int | None = None
    maximum: int | None = None

    def json_schema(self) -> dict[str, Any]:
        string = {"type": "string", "maxLength": self.max_length}
        if self.type == "string":
            return string
        if self.type == "list":
            return {"type": "array", "items": string, "maxItems": self.max_items}
        if self.type == "enum":
            return {"type": "string", "enum": list(self.values)}
        schema: dict[str, Any] = {"type": "integer"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema


@dataclass(frozen=True)
class AttributeSchema:
    attributes: tuple[AttributeSpec, ...] = field(default_factory=tuple)

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.attributes]

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {a.name: a.json_schema() for a in self.attributes},
            "required": self.names,
            "additionalProperties": False,
        }

    def describe(self) -> str:
        """One line per attribute, for the instruction text ("- mood (one of: dark, light): overall tone")."""
        lines = []
        for a in self.attributes:
            kind = {"string": "text", "list": f"list of up to {a.max_items}", "integer": "integer"}.get(a.type, "")
            if a.type == "enum":
                kind = "one of: " + ", ".join(a.values)
            lines.append(f"- {a.name} ({kind}): {a.description}".rstrip(": "))
        return "\n".join(lines)

    def validate(self, value: Any) -> dict[str, Any]:
        """The answer normalised to the declared attributes, or OutputError saying what is wrong."""
        if not isinstance(value, dict):
            raise OutputError(f"expected a JSON object, got {type(value).__name__}")
        missing = [n for n in self.names if n not in value]
        if missing:
            raise OutputError(f"missing attribute(s): {', '.join(missing)}")
        clean: dict[str, Any] = {}
        for a in self.attributes:
            v = value[a.name]
            if a.type in ("string", "enum"):
                if not isinstance(v, str):
                    raise OutputError(f"{a.name}: expected a string, got {v!r}")
                if a.type == "enum" and v not in a.values:
                    raise OutputError(f"{a.name}: {v!r} is not one of {', '.join(a.values)}")
                clean[a.name] = v.strip()
            elif a.type == "list":
                if isinstance(v, str):  # a model that answers one string instead of a list: accept it as one item
                    v = [v]
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise OutputError(f"{a.name}: expected a list of strings, got {v!r}")
                items = dict.fromkeys(x.strip() for x in v if x.strip())  # small models repeat themselves
                clean[a.name] = list(items)[: a.max_items]
            else:
                if isinstance(v, bool) or not isinstance(v, int):
                    raise OutputError(f"{a.name}: expected an integer, got {v!r}")
                clean[a.name] = v
        return clean


def parse_attribute_specs(raw: Any, where: str) -> AttributeSchema:
    """`[[attributes]]` tables from a prompt file → AttributeSchema; SchemaError names `where` and the attribute."""
    if not isinstance(raw, list) or not raw:
        raise SchemaError(f"{where}: no attributes declared (add at least one [[attributes]] table)")
    specs: list[AttributeSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw, start=1):
        if not isinstance(entry, dict):
            raise SchemaError(f"{where}: attribute #{i} is not a table")
        name = entry.get("name")
        label = f"attribute #{i} ({name!r})" if name else f"attribute #{i}"
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise SchemaError(f"{where}: {label}: bad name (use lower snake_case, at most 32 characters)")
        if name in seen:
            raise SchemaError(f"{where}: attribute '{name}' is declared twice")
        seen.add(name)
        kind = entry.get("type", "string")
        if kind not in ATTRIBUTE_TYPES:
            raise SchemaError(f"{where}: attribute '{name}': bad type {kind!r} (choose: {', '.join(ATTRIBUTE_TYPES)})")
        values = entry.get("values", [])
        if kind == "enum":
            if not isinstance(values, list) or len(values) < 2 or not all(isinstance(v, str) and v for v in values):
                raise SchemaError(f"{where}: attribute '{name}': an enum needs 'values', a list of at least 2 strings")
            if len(set(values)) != len(values):
                raise SchemaError(f"{where}: attribute '{name}': duplicate enum values")
        elif values:
            raise SchemaError(f"{where}: attribute '{name}': 'values' only applies to type = \"enum\"")
        unknown = set(entry) - {
            "name",
            "type",
            "description",
            "values",
            "max_items",
            "max_length",
            "minimum",
            "maximum",
        }
        if unknown:
            raise SchemaError(f"{where}: attribute '{name}': unknown key(s) {', '.join(sorted(unknown))}")
        for key in ("max_items", "max_length"):
            if key in entry and (not isinstance(entry[key], int) or isinstance(entry[key], bool) or entry[key] < 1):
                raise SchemaError(f"{where}: attribute '{name}': {key} must be a positive integer")
        specs.append(
            AttributeSpec(
                name=name,
                type=kind,
                description=str(entry.get("description", "")).strip(),
                values=tuple(values),
                max_items=entry.get("max_items", DEFAULT_MAX_ITEMS),
                max_length=entry.get("max_length", DEFAULT_MAX_LENGTH),
                minimum=entry.get("minimum"),
                maximum=entry.get("maximum"),
            )
        )
    return AttributeSchema(tuple(specs))


def parse_json_object(text: str) -> Any:
    """The first JSON object in `text`: tolerates prose or code fences around it (unconstrained backends)."""
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    start = text.find("{")
    while start != -1:
        try:
            value, _ = json.JSONDecoder().raw_decode(text, start)
            return value
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
    raise OutputError(f"no JSON object in output: {text[:80]!r}")
