"""HTML entities in item text ("L&#39;Oreal", "Bath &amp; Body"), turned back into the characters they stand for.

Amazon's metadata carries them (788 of Beauty's 12,101 items). The LLM should read the characters, not the escape
codes, which cost tokens and which a small model copies into its answers. Only complete entities, with their
semicolon, are replaced: `html.unescape` alone also expands legacy names without one ("&not" in "Salt &notes"
would become "¬es"), which in free text are more often plain ampersands than entities.
"""

from __future__ import annotations

import html
import html.entities
import re
from typing import Any, Mapping

_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_MAX_ROUNDS = 3  # "&amp;#39;" (escaped twice) is still an apostrophe; a bound keeps it from looping


def unescape_entities(text: str) -> str:
    """`text` with every complete HTML entity replaced by its character; text without "&" is returned as is."""
    for _ in range(_MAX_ROUNDS):
        if "&" not in text:
            break
        unescaped = _ENTITY.sub(_character, text)
        if unescaped == text:
            break
        text = unescaped
    return text


def _character(match: re.Match[str]) -> str:
    entity = match.group(0)
    if entity[1] == "#":
        return html.unescape(entity)  # also maps the Windows-1252 codes Amazon uses ("&#153;" is the trade mark sign)
    # a known name only: html.unescape would turn "&copyright;" into "©right;" (a legacy prefix match)
    return html.entities.html5.get(entity[1:], entity)


def unescape_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of item text fields with entities unescaped in every string and list of strings."""
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, str):
            clean[key] = unescape_entities(value)
        elif isinstance(value, (list, tuple)):
            clean[key] = type(value)(unescape_entities(v) if isinstance(v, str) else v for v in value)
        else:
            clean[key] = value
    return clean
