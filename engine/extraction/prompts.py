"""Prompt files: the instruction a person edits, with `{field}` placeholders and the attribute schema it asks for.

A prompt is a TOML file under `prompts/`. Its identity is the sha256 of the file's bytes (`content_hash`): the cache
and the runs store key on it, so editing a prompt never mixes answers from two versions. Edits are saved as new
versioned files (`movies.v2.toml`) instead of overwriting, so every run's prompt stays reproducible.

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

from engine.extraction.schema import AttributeSchema, SchemaError, parse_attribute_specs

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
KNOWN_FIELDS = frozenset({"title", "year", "genres", "tags", "brand", "categories", "description", "price"})
SCHEMA_PLACEHOLDER = "schema"  # renders the attribute list, so the instruction need not repeat it
TOP_LEVEL_KEYS = {"name", "description", "datasets", "system", "template", "optional_fields", "attributes"}
_VERSION_SUFFIX = re.compile(r"^(?P<base>.+?)\.v(?P<version>\d+)$")


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

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def source(self) -> str:
        return str(self.path) if self.path else f"<prompt {self.name}>"

    @property
    def version(self) -> int:
        """1 for `movies.toml`, N for `movies.vN.toml`."""
        match = _VERSION_SUFFIX.match(self.path.stem) if self.path else None
        return int(match.group("version")) if match else 1

    def json_schema(self) -> dict[str, Any]:
        return self.schema.json_schema()

    def render(self, item_text: Mapping[str, Any]) -> str:
        """The user message for one item. Lists render comma-joined; a line whose fields are all empty is dropped."""
        values = {name: _field_text(item_text.get(name)) for name in self.placeholders}
        values[SCHEMA_PLACEHOLDER] = self.schema.describe()
        lines = []
        for line in self.template.splitlines():
            names = _placeholders_in(line, self.source)
            item_names = [n for n in names if n != SCHEMA_PLACEHOLDER]
            if item_names and not any(values[n] for n in item_names):
                continue  # "Tags: " with no tags only costs tokens
            lines.append(line.format_map(values))
        return "\n".join(lines).strip()


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, set)):
        return ", ".join(str(v).strip() for v in value if str(v).strip())
    return str(value).strip()


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
        raise PromptError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(TOP_LEVEL_KEYS))})")
    name = raw.get("name") or (path.stem if path else "")
    if not isinstance(name, str) or not name:
        raise PromptError(f"{where}: 'name' must be a non-empty string")
    template = raw.get("template")
    if not isinstance(template, str) or not template.strip():
        raise PromptError(f"{where}: 'template' is missing or empty")
    for key in ("system", "description"):
        if not isinstance(raw.get(key, ""), str):
            raise PromptError(f"{where}: '{key}' must be a string")
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
    placeholders = tuple(n for n in _placeholders_in(template, where) if n != SCHEMA_PLACEHOLDER)
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
    )


def load_prompt(path_or_name: str | Path, prompts_dir: str | Path | None = None) -> Prompt:
    """A prompt from a file path, or by name from `prompts_dir` ("movies" → movies.toml, "movies.v2" → movies.v2.toml)."""
    prompts_dir = Path(prompts_dir) if prompts_dir is not None else PROMPTS_DIR
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
                raise PromptError(f"{where}: unknown placeholder {{{name}}} (known fields: {', '.join(sorted(KNOWN_FIELDS))})")
        elif name not in available and name not in prompt.optional_fields:
            if name in KNOWN_FIELDS:
                has = ", ".join(sorted(available)) or "no text fields"
                raise PromptError(f"{where}: placeholder {{{name}}}: this dataset's items have no '{name}' field (they have: {has})")
            raise PromptError(f"{where}: unknown placeholder {{{name}}} (this dataset's fields: {', '.join(sorted(available))})")


def dataset_fields(item_text: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every text field some item of a dataset has (SequenceDataset.item_text)."""
    fields: set[str] = set()
    for text in item_text:
        fields.update(k for k, v in text.items() if v not in (None, "", [], ()))
    return fields


def default_prompt_for(dataset_name: str, prompts_dir: str | Path | None = None) -> Prompt:
    """The unversioned prompt whose `datasets` names this dataset: exact name first, then a pattern, then "*"."""
    prompts_dir = Path(prompts_dir) if prompts_dir is not None else PROMPTS_DIR
    ranked: list[tuple[int, str, Prompt]] = []
    for path in sorted(prompts_dir.glob("*.toml")):
        if _VERSION_SUFFIX.match(path.stem):
            continue  # versions are chosen explicitly, never by default
        prompt = load_prompt(path)
        for pattern in prompt.datasets:
            if pattern == dataset_name:
                ranked.append((0, path.name, prompt))
            elif pattern == "*":
                ranked.append((2, path.name, prompt))
            elif fnmatch.fnmatchcase(dataset_name, pattern):
                ranked.append((1, path.name, prompt))
    if not ranked:
        raise PromptError(f"{prompts_dir}: no prompt declares dataset '{dataset_name}' in its 'datasets' (pass a prompt explicitly)")
    return min(ranked, key=lambda r: (r[0], r[1]))[2]


def save_prompt_version(prompt: Prompt, new_text: str, prompts_dir: str | Path | None = None) -> Path:
    """Write `new_text` as the next version of `prompt` (movies.toml → movies.v2.toml → movies.v3.toml).

    The text is validated first, and an existing file is never overwritten (the file is created exclusively).
    """
    folder = prompt.path.parent if prompt.path else Path(prompts_dir) if prompts_dir is not None else PROMPTS_DIR
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
