"""How a grammar-constrained backend spells an answer while it decodes: the wire format, not what is stored.

Every decoded token costs a decoding step, and in a compact JSON answer most of them are structure the grammar
forces anyway (`{"product_type":"`, `","area":"`, `"]}`). A format here gives the GBNF grammar the decoder
follows, says when an answer is complete, and turns the decoded text back into the compact JSON object every
other part of kirec reads (validation, the cache, the quality report), so a format changes cost, not meaning.

- `json`: the JSON object itself, no optional whitespace (the default).
- `lines`: the values alone in the schema's order, `|` between attributes, `,` between a list's items, ended by a
  newline: `hair dryer|hair|ionic,compact`. Values may then not contain `|` (nor `,` inside a list item).

A prompt file names its format (`answer_format`), so the prompt's hash, which keys the cache, covers it. A backend
that decodes `lines` adds the format's instruction after the prompt's system text; backends without a grammar
(transformers, an OpenAI-compatible server) answer JSON, without it, whatever the prompt's format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class AnswerFormat:
    name: str
    grammar: Callable[[dict[str, Any]], str]  # JSON schema → GBNF
    complete: Callable[[bytearray], bool]  # the decoded bytes so far form a whole answer (asked every token)
    to_json: Callable[[str, dict[str, Any]], str]  # decoded text → the answer as compact JSON text
    # Said after the prompt's system text by a backend that decodes this format, so a prompt's own words suit
    # every backend (a server constrained to JSON never reads "separated by |").
    instruction: str = ""

    def system_text(self, system: str) -> str:
        return " ".join(part for part in (system.strip(), self.instruction) if part)


# ---- json ---------------------------------------------------------------------------------------------------------
def compact_json_grammar(json_schema: dict[str, Any]) -> str:
    """GBNF for the schema, with no optional whitespace and no control characters inside strings.

    Whitespace between JSON tokens is a quarter of a small answer's tokens, and every token costs a decoding step.
    Control characters (newlines in a string) are never wanted and are what random-weight test models emit.
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    lines = []
    for line in json_schema_to_gbnf(json.dumps(json_schema)).splitlines():
        if line.startswith("space ::="):
            line = 'space ::= ""'
        elif line.startswith("char ::="):
            line = line.replace('[^"\\\\]', '[^"\\\\\\x00-\\x1f]', 1)
        lines.append(line)
    return "\n".join(lines)


def json_complete(out: bytearray) -> bool:
    """True once the answer is a complete JSON object (the grammar would only allow trailing whitespace)."""
    text = out.decode("utf-8", "ignore").rstrip()
    if not text.endswith("}"):
        return False
    try:
        json.loads(text)
        return True
    except json.JSONDecodeError:
        return False


# ---- lines --------------------------------------------------------------------------------------------------------
def _literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lines_grammar(json_schema: dict[str, Any]) -> str:
    """GBNF for `value|value|item,item` + newline, one value per property in the schema's order."""
    rules, fields = [], []
    for i, prop in enumerate(json_schema["properties"].values()):
        rule = f"v{i}"
        if "enum" in prop:
            rules.append(f"{rule} ::= " + " | ".join(_literal(str(v)) for v in prop["enum"]))
        elif prop.get("type") == "array":
            length = int(prop.get("items", {}).get("maxLength", 40))
            more = max(0, int(prop.get("maxItems", 3)) - 1)
            rules.append(f"{rule}i ::= [^|,\\n\\x00-\\x1f]{{1,{length}}}")
            rules.append(f'{rule} ::= ({rule}i ("," {rule}i){{0,{more}}})?')
        elif prop.get("type") == "integer":
            rules.append(f'{rule} ::= "-"? [0-9]{{1,9}}')
        else:
            rules.append(f"{rule} ::= [^|\\n\\x00-\\x1f]{{1,{int(prop.get('maxLength', 40))}}}")
        fields.append(rule)
    root = "root ::= " + ' "|" '.join(fields) + ' "\\n"'
    return "\n".join([root] + rules)


def lines_complete(out: bytearray) -> bool:
    return out.endswith(b"\n")


def lines_to_json(text: str, json_schema: dict[str, Any]) -> str:
    """The decoded line as compact JSON. A line cut short by the token limit (no newline) or with the wrong number
    of values is returned as it is: the validator then refuses it and names the problem."""
    values = text[:-1].split("|")
    properties = json_schema["properties"]
    if not text.endswith("\n") or len(values) != len(properties):
        return text
    answer: dict[str, Any] = {}
    for (name, prop), value in zip(properties.items(), values):
        if prop.get("type") == "array":
            answer[name] = [v.strip() for v in value.split(",") if v.strip()]
        elif prop.get("type") == "integer":
            try:
                answer[name] = int(value)
            except ValueError:
                return text
        else:
            answer[name] = value.strip()
    return json.dumps(answer, separators=(",", ":"), ensure_ascii=False)


JSON = AnswerFormat("json", compact_json_grammar, json_complete, lambda text, _schema: text)
LINES = AnswerFormat(
    "lines",
    lines_grammar,
    lines_complete,
    lines_to_json,
    "You answer with the values only, in the order asked, separated by |.",
)
