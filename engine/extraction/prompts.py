"""Prompt files: the instruction a person edits, with `{field}` placeholders and the attribute schema it asks for.

A prompt is a TOML file under `prompts/`. Its identity is the sha256 of the file's bytes (`content_hash`): the cache
and the runs store key on it, so editing a prompt never mixes answers from two versions. Edits are saved as new
versioned files (`movies.v2.toml`) instead of overwriting, so every run's prompt stays reproducible.

Two placeholders are not item fields: `{schema}` renders the attribute list, `{item}` every field the item has (one
"Name: value" line each), so a prompt that uses it fits any dataset (prompts/generic.toml, the fallback default).
Field values have their HTML entities unescaped ("&#39;" → "'") on the way in.

The instruction comes first and the item's fields last, so every item's prompt shares one long token prefix that
llama.cpp evaluates once (see backends/llama_cpp.py).
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from engine.choices import ANSWER_FORMAT_CHOICES
from engine.extraction.entities import unescape_entities
from engine.extraction.schema import AttributeSchema, SchemaError, parse_attribute_specs

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
KNOWN_FIELDS = frozenset({"title", "year", "genres", "tags", "brand", "categories", "description", "price"})
SCHEMA_PLACEHOLDER = "schema"  # renders the attribute list, so the instruction need not repeat it
# Renders every text field the item has, one "Name: value" line each: a prompt for any catalogue, whatever its fields.
ITEM_PLACEHOLDER = "item"
RESERVED_PLACEHOLDERS = frozenset({SCHEMA_PLACEHOLDER, ITEM_PLACEHOLDER})
# {item}: the fields that say most about an item first, ids never; bounded, so a long description is not refused
# as too long for the model (the llama.cpp backend's max_item_tokens) but cut.
ITEM_FIELD_ORDER = ("title", "name", "brand", "categories", "genres", "tags", "description", "price")
ITEM_FIELDS_SKIPPED = frozenset({"id", "item_id", "asin"})
ITEM_VALUE_CHARS = 160
ITEM_LIST_VALUES = 8
ITEM_TEXT_CHARS = 600
TOP_LEVEL_KEYS = {
    "name",
    "description",
    "datasets",
    "system",
    "template",
    "optional_fields",
    "attributes",
    "answer_format",
}
_VERSION_SUFFIX = re.compile(r"^(?P<base>.+?)\.v(?P<version>\d+)$")


def prompts_folder(setting: str | Path | None = None) -> Path:
    """The folder of prompt files a `knowledge.prompts_dir` setting names (relative: the current folder), or
    the repository's prompts/ when unset."""
    return Path(setting).expanduser() if setting is not None and str(setting).strip() else PROMPTS_DIR


def version_of(path: str | Path) -> tuple[str, int]:
    """(family, version) of a prompt file: movies.toml → ("movies", 1), movies.v3.toml → ("movies", 3)."""
    stem = Path(path).stem
    match = _VERSION_SUFFIX.match(stem)
    return (match.group("base"), int(match.group("version"))) if match else (stem, 1)


class PromptError(ValueError):
    """A prompt that cannot be used; the one-line message names the file and the problem."""


@dataclass(frozen=True)
class Prompt:
    name: str
    path: Path | None
    text: str  # the file's content, exactly
    template: str
    schema: AttributeSchema
    system: str = ""
    description: str = ""
    datasets: tuple[str, ...] = ()
    optional_fields: frozenset[str] = frozenset()
    placeholders: tuple[str, ...] = field(default=())
    # How a grammar-constrained backend (llama.cpp) spells the answer while decoding (engine.extraction.answer_formats);
    # backends without a grammar answer JSON whatever this says. The stored answer is JSON either way.
    answer_format: str = "json"

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def source(self) -> str:
        return str(self.path) if self.path else f"<prompt {self.name}>"

    @property
    def version(self) -> int:
        """1 for `movies.toml`, N for `movies.vN.toml`."""
        return version_of(self.path)[1] if self.path else 1

    def json_schema(self) -> dict[str, Any]:
        return self.schema.json_schema()

    @property
    def renders_all_fields(self) -> bool:
        """True when the template has {item}: it then fits any dataset, and every field of an item is in its prompt."""
        return ITEM_PLACEHOLDER in _placeholders_in(self.template, self.source)

    def render(self, item_text: Mapping[str, Any]) -> str:
        """The user message for one item. Lists render comma-joined; a line whose fields are all empty is dropped."""
        values = {name: _field_text(item_text.get(name)) for name in self.placeholders}
        values[SCHEMA_PLACEHOLDER] = self.schema.describe()
        values[ITEM_PLACEHOLDER] = render_item_fields(item_text) if self.renders_all_fields else ""
        lines = []
        for line in self.template.splitlines():
            names = _placeholders_in(line, self.source)
            item_names = [n for n in names if n != SCHEMA_PLACEHOLDER]
            if item_names and not any(values[n] for n in item_names):
                continue  # "Tags: " with no tags only costs tokens
            lines.append(line.format_map(values))
        return "\n".join(lines).strip()


def _field_text(value: Any) -> str:
    """A field as prompt text: lists comma-joined, HTML entities as their characters ("L&#39;Oreal" → "L'Oreal")."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple, set)):
        parts = (unescape_entities(str(v)).strip() for v in value)
        return ", ".join(p for p in parts if p)
    return unescape_entities(str(value)).strip()


def render_item_fields(item_text: Mapping[str, Any]) -> str:
    """Every text field of an item as "Name: value" lines (the {item} placeholder), within ITEM_TEXT_CHARS."""
    order = [k for k in ITEM_FIELD_ORDER if k in item_text]
    order += sorted(k for k in item_text if k not in ITEM_FIELD_ORDER and k not in ITEM_FIELDS_SKIPPED)
    lines: list[str] = []
    used = 0
    for key in order:
        value = item_text[key]
        if isinstance(value, (list, tuple, set)):
            value = list(value)[:ITEM_LIST_VALUES]
        text = " ".join(_field_text(value).split())
        if not text:
            continue
        if len(text) > ITEM_VALUE_CHARS:
            text = text[: ITEM_VALUE_CHARS - 1].rstrip() + "…"
        label = " ".join(str(key).replace("_", " ").split()).capitalize()
        if not label:
            continue
        line = f"{label}: {text}"
        if lines and used + len(line) > ITEM_TEXT_CHARS:
            break  # the first field (the title) always stays
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)


def _placeholders_in(template: str, where: str) -> list[str]:
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:  # "Single '}' encountered" etc.
        raise PromptError(f"{where}: template: {exc} (write {{{{ and }}}} for literal braces)") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or not name.isidentifier():
            raise PromptError(f"{where}: template: bad placeholder {{{name}}} (use a field name like {{title}})")
        if spec or conversion:
            raise PromptError(f"{where}: template: placeholder {{{name}}} may not have a format spec or conversion")
        if name not in names:
            names.append(name)
    return names


def parse_prompt(text: str, source: Path | str | None = None) -> Prompt:
    """A prompt from TOML text; PromptError names `source` and the problem."""
    path = Path(source) if source is not None else None
    where = str(path) if path else "<prompt>"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PromptError(f"{where}: invalid TOML: {exc}") from None
    unknown = set(raw) - TOP_LEVEL_KEYS
    if unknown:
        raise PromptError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(TOP_LEVEL_KEYS))})"
        )
    name = raw.get("name") or (path.stem if path else "")
    if not isinstance(name, str) or not name:
        raise PromptError(f"{where}: 'name' must be a non-empty string")
    template = raw.get("template")
    if not isinstance(template, str) or not template.strip():
        raise PromptError(f"{where}: 'template' is missing or empty")
    for key in ("system", "description"):
        if not isinstance(raw.get(key, ""), str):
            raise PromptError(f"{where}: '{key}' must be a string")
    answer_format = raw.get("answer_format", "json")
    if answer_format not in ANSWER_FORMAT_CHOICES:
        raise PromptError(
            f"{where}: 'answer_format' must be one of {', '.join(ANSWER_FORMAT_CHOICES)}, not {answer_format!r}"
        )
    for key in ("datasets", "optional_fields"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PromptError(f"{where}: '{key}' must be a list of strings")
    if "{" in raw.get("system", "") or "}" in raw.get("system", ""):
        raise PromptError(f"{where}: 'system' is shared by all items and may not contain placeholders")
    try:
        schema = parse_attribute_specs(raw.get("attributes"), where)
    except SchemaError as exc:
        raise PromptError(str(exc)) from None
    placeholders = tuple(n for n in _placeholders_in(template, where) if n not in RESERVED_PLACEHOLDERS)
    return Prompt(
        name=name,
        path=path,
        text=text,
        template=template,
        schema=schema,
        system=raw.get("system", "").strip(),
        description=raw.get("description", "").strip(),
        datasets=tuple(raw.get("datasets", [])),
        optional_fields=frozenset(raw.get("optional_fields", [])),
        placeholders=placeholders,
        answer_format=answer_format,
    )


def load_prompt(path_or_name: str | Path, prompts_dir: str | Path | None = None) -> Prompt:
    """A prompt from a file path, or by name from `prompts_dir` ("movies" → movies.toml, "movies.v2" → movies.v2.toml)."""
    prompts_dir = prompts_folder(prompts_dir)
    candidate = Path(path_or_name)
    if not candidate.is_file():
        candidate = prompts_dir / f"{path_or_name}.toml"
    if not candidate.is_file():
        available = ", ".join(p.stem for p in sorted(prompts_dir.glob("*.toml"))) or "none"
        raise PromptError(f"{path_or_name}: no such prompt file or name in {prompts_dir} (available: {available})")
    try:
        text = candidate.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"{candidate}: cannot read: {exc}") from None
    return parse_prompt(text, candidate)


def validate_prompt(prompt: Prompt, available_fields: Iterable[str] | None = None) -> None:
    """Check placeholders against the dataset's item fields before any LLM call.

    Without `available_fields` only the fields kirec's loaders know are accepted. With them, a placeholder must name
    a field the dataset has, unless the prompt lists it in `optional_fields` (it then renders empty when absent).
    """
    where = prompt.source
    if not prompt.schema.attributes:
        raise PromptError(f"{where}: no attributes declared")
    available = set(available_fields) if available_fields is not None else None
    for name in prompt.placeholders:
        if available is None:
            if name not in KNOWN_FIELDS:
                raise PromptError(
                    f"{where}: unknown placeholder {{{name}}} (known fields: {', '.join(sorted(KNOWN_FIELDS))})"
                )
        elif name not in available and name not in prompt.optional_fields:
            if name in KNOWN_FIELDS:
                has = ", ".join(sorted(available)) or "no text fields"
                raise PromptError(
                    f"{where}: placeholder {{{name}}}: this dataset's items have no '{name}' field (they have: {has})"
                )
            raise PromptError(
                f"{where}: unknown placeholder {{{name}}} (this dataset's fields: {', '.join(sorted(available))})"
            )


def dataset_fields(item_text: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every text field some item of a dataset has (SequenceDataset.item_text)."""
    fields: set[str] = set()
    for text in item_text:
        fields.update(k for k, v in text.items() if v not in (None, "", [], ()))
    return fields


def default_prompt_for(dataset_name: str, prompts_dir: str | Path | None = None) -> Prompt:
    """The unversioned prompt whose `datasets` names this dataset: exact name first, then a pattern, then "*".

    Among the "*" fallbacks, a prompt made for any dataset (`datasets = ["*"]` only, e.g. generic.toml) comes before
    a domain prompt that also lists "*" (products.toml): a catalogue of tools should not be asked where on the face
    its items go. Ties go to the file name, in order.
    """
    prompts_dir = prompts_folder(prompts_dir)
    ranked: list[tuple[int, str, Prompt]] = []
    for path in sorted(prompts_dir.glob("*.toml")):
        if _VERSION_SUFFIX.match(path.stem):
            continue  # versions are chosen explicitly, never by default
        prompt = load_prompt(path)
        for pattern in prompt.datasets:
            if pattern == dataset_name:
                ranked.append((0, path.name, prompt))
            elif pattern == "*":
                ranked.append((2 if prompt.datasets == ("*",) else 3, path.name, prompt))
            elif fnmatch.fnmatchcase(dataset_name, pattern):
                ranked.append((1, path.name, prompt))
    if not ranked:
        raise PromptError(
            f"{prompts_dir}: no prompt declares dataset '{dataset_name}' in its 'datasets' (pass a prompt explicitly)"
        )
    return min(ranked, key=lambda r: (r[0], r[1]))[2]


def save_prompt_version(prompt: Prompt, new_text: str, prompts_dir: str | Path | None = None) -> Path:
    """Write `new_text` as the next version of `prompt` (movies.toml → movies.v2.toml → movies.v3.toml).

    The text is validated first, and an existing file is never overwritten (the file is created exclusively).
    """
    folder = prompt.path.parent if prompt.path else prompts_folder(prompts_dir)
    base = prompt.path.stem if prompt.path else prompt.name
    match = _VERSION_SUFFIX.match(base)
    if match:
        base = match.group("base")
    existing = [1]
    for path in folder.glob(f"{base}.v*.toml"):
        m = _VERSION_SUFFIX.match(path.stem)
        if m and m.group("base") == base:
            existing.append(int(m.group("version")))
    version = max(existing) + 1
    while True:
        target = folder / f"{base}.v{version}.toml"
        parse_prompt(new_text, target)  # raises PromptError naming the would-be file
        try:
            with target.open("x", encoding="utf-8") as fh:
                fh.write(new_text)
            return target
        except FileExistsError:  # another editor saved the same version meanwhile
            version += 1
