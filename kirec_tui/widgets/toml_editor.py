"""A TextArea that highlights TOML without tree-sitter.

Textual highlights through tree-sitter grammars, which this environment does not have (no tree_sitter /
tree-sitter-toml package), so this subclass fills TextArea's highlight map from a small line tokenizer:
comments, table headers, keys, strings (multi-line ones too), numbers and booleans are enough for prompt files.
"""

from __future__ import annotations

import re

from textual.widgets import TextArea

_KEY = re.compile(r'\s*([A-Za-z0-9_\-."]+)\s*(=)')
_HEADER = re.compile(r"\s*(\[\[?[^\]]*\]\]?)")
_NUMBER = re.compile(r"[+-]?\d[\d_]*(\.\d+)?([eE][+-]?\d+)?\b")
_BOOL = re.compile(r"\b(true|false)\b")
_TRIPLE = ('"""', "'''")


def _byte(line: str, column: int) -> int:
    """TextArea's highlight map counts UTF-8 bytes, as tree-sitter does."""
    return len(line[:column].encode("utf-8"))


def toml_highlights(lines: list[str]) -> dict[int, list[tuple[int, int | None, str]]]:
    """(start column, end column or None for end of line, highlight name) per line, in characters."""
    found: dict[int, list[tuple[int, int | None, str]]] = {}
    open_triple: str | None = None
    for row, line in enumerate(lines):
        spans: list[tuple[int, int | None, str]] = []
        col = 0
        if open_triple is not None:
            end = line.find(open_triple)
            if end < 0:
                found[row] = [(0, None, "string")]
                continue
            spans.append((0, end + 3, "string"))
            col, open_triple = end + 3, None
        elif (header := _HEADER.match(line)) and line.strip().startswith("["):
            spans.append((header.start(1), header.end(1), "heading"))
            col = header.end(1)
        elif key := _KEY.match(line):
            spans.append((key.start(1), key.end(1), "yaml.field"))
            spans.append((key.start(2), key.end(2), "operator"))
            col = key.end(2)
        while col < len(line):
            ch = line[col]
            if ch == "#":
                spans.append((col, None, "comment"))
                break
            triple = next((t for t in _TRIPLE if line.startswith(t, col)), None)
            if triple is not None:
                end = line.find(triple, col + 3)
                if end < 0:
                    spans.append((col, None, "string"))
                    open_triple = triple
                    break
                spans.append((col, end + 3, "string"))
                col = end + 3
                continue
            if ch in "\"'":
                end = col + 1
                while end < len(line) and line[end] != ch:
                    end += 2 if ch == '"' and line[end] == "\\" else 1
                spans.append((col, min(end + 1, len(line)), "string"))
                col = end + 1
                continue
            if (number := _NUMBER.match(line, col)) and (col == 0 or not line[col - 1].isalnum()):
                spans.append((col, number.end(), "number"))
                col = number.end()
                continue
            if boolean := _BOOL.match(line, col):
                spans.append((col, boolean.end(), "boolean"))
                col = boolean.end()
                continue
            col += 1
        if spans:
            found[row] = spans
    return found


class TomlTextArea(TextArea):
    """TextArea with TOML highlighting from `toml_highlights`, wrapping long lines."""

    def __init__(self, text: str = "", **kwargs) -> None:
        kwargs.setdefault("theme", "vscode_dark")
        kwargs.setdefault("show_line_numbers", True)
        kwargs.setdefault("soft_wrap", True)  # a long template line stays readable in a narrow editor
        super().__init__(text, **kwargs)

    def _build_highlight_map(self) -> None:
        self._line_cache.clear()
        self._highlights.clear()
        lines = self.text.split("\n")
        for row, spans in toml_highlights(lines).items():
            line = lines[row]
            self._highlights[row] = [
                (_byte(line, start), None if end is None else _byte(line, end), name) for start, end, name in spans
            ]
