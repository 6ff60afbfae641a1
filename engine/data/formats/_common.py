"""Helpers every format loader shares: one-line errors with file and line, text normalisation, JSON-lines items."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import math
import re
import zlib
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

import numpy as np

from engine.data.dataset import RawInteractions
from engine.data.errors import DataFormatError

# Keys whose values are lists of str after normalisation; everything else is one str.
LIST_FIELDS = frozenset({"genres", "tags", "categories"})
_YEAR_IN_TITLE = re.compile(r"\((\d{4})(?:\s*[-–]\s*\d{0,4})?\)\s*$")


def format_error(path: Path | str, line: int | None, message: str) -> DataFormatError:
    where = f"{path} line {line}" if line is not None else str(path)
    return DataFormatError(f"{where}: {' '.join(message.split())}")


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class TextLines:
    """The lines of a text file, with the line number of the last one read (`line_no`).

    Iterates like a text file opened with `newline=""` (line endings kept, so csv sees quoted newlines) and has
    `readline`. A UTF-8 byte-order mark (Excel's "CSV UTF-8") is dropped. UTF-16, NUL bytes, undecodable bytes
    and a broken gzip stream raise DataFormatError naming the file and the line. Decoding is the io module's
    (fast); only after a decoding error is the file scanned again, line by line, to find where it is."""

    def __init__(self, raw: IO[bytes], path: Path, encoding: str):
        self.path, self.encoding = path, encoding
        self.line_no = 0
        self._text = io.TextIOWrapper(raw, encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="")
        self._lines = self._read()

    def __iter__(self) -> Iterator[str]:
        return self._lines

    def __next__(self) -> str:
        return next(self._lines)

    def readline(self) -> str:
        return next(self._lines, "")

    def _read(self) -> Iterator[str]:
        try:
            for line in self._text:
                self.line_no += 1
                if "\0" in line:
                    raise format_error(self.path, self.line_no, "NUL bytes: a binary or UTF-16 file, not UTF-8 text")
                yield line
        except UnicodeDecodeError:
            raise self._decoding_error() from None
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise format_error(self.path, self.line_no + 1, f"cannot read: {exc}") from None

    def _decoding_error(self) -> DataFormatError:
        """The first bad line (NUL bytes, or bytes that do not decode), found by decoding each line on its own."""
        with _open_binary(self.path) as raw:
            for line_no, data in enumerate(raw, start=1):
                if b"\0" in data:
                    return format_error(self.path, line_no, "NUL bytes: a binary or UTF-16 file, not UTF-8 text")
                try:
                    data.decode(self.encoding)
                except UnicodeDecodeError as exc:
                    return format_error(
                        self.path,
                        line_no,
                        f"not {self.encoding.upper()} text (byte "
                        f"0x{data[exc.start]:02x} at column {exc.start + 1}); save the file as UTF-8",
                    )
        return format_error(self.path, self.line_no + 1, f"not {self.encoding.upper()} text; save the file as UTF-8")


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


@contextlib.contextmanager
def open_text(path: Path, encoding: str = "utf-8") -> Iterator[TextLines]:
    """Open a text file for reading line by line, transparently gunzipping `.gz` (see TextLines)."""
    try:
        raw = _open_binary(path)
    except IsADirectoryError:
        raise format_error(path, None, "is a directory, expected a file") from None
    except OSError as exc:
        raise format_error(path, None, f"cannot open: {exc.strerror or exc}") from None
    with raw:
        try:
            start = raw.peek(2)[:2]  # type: ignore[attr-defined]  # BufferedReader and GzipFile both peek
        except (OSError, EOFError, zlib.error) as exc:
            raise format_error(path, 1, f"cannot read: {exc}") from None
        if start in _UTF16_BOMS:
            raise format_error(path, 1, "UTF-16 text; save the file as UTF-8")
        yield TextLines(raw, path, encoding)


def csv_rows(lines: TextLines, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, fields) per CSV record; csv's own errors (a field over its size limit, often
    an unclosed quote swallowing the rest of the file) become DataFormatError with the line."""
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        start = lines.line_no + 1  # csv reads exactly the lines of one record, no further
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "NUL" in str(exc):
                raise format_error(lines.path, start, "NUL bytes: a binary or UTF-16 file, not UTF-8 text") from None
            hint = " (an unclosed quote?)" if "field larger" in str(exc) else ""
            raise format_error(lines.path, start, f"not valid CSV: {exc}{hint}") from None
        yield start, row


def field_count_error(path: Path, line: int, expected: int, row: list[str]) -> DataFormatError:
    """A record with the wrong number of fields; a quoted field that spans lines is most likely an unclosed quote."""
    hint = " (a quoted field runs over several lines: an unclosed quote?)" if any("\n" in f for f in row) else ""
    return format_error(path, line, f"expected {expected} fields, got {len(row)}{hint}")


def to_float(value: str, path: Path, line: int, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise format_error(path, line, f"{what} {value!r} is not a number") from None
    if math.isnan(number):
        raise format_error(path, line, f"{what} is NaN")
    return number


def to_timestamp(value: str, path: Path, line: int) -> float:
    """A number (Unix seconds or any orderable number) or an ISO 8601 date/time."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.strip()).timestamp()
    except ValueError:
        raise format_error(path, line, f"timestamp {value!r} is neither a number nor an ISO 8601 date") from None


def year_from_title(title: str) -> str | None:
    match = _YEAR_IN_TITLE.search(title)
    return match.group(1) if match else None


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return " ".join(str(value).split())  # one line: the LLM prompt and the TUI both want single-line fields


def normalise_text(fields: dict[str, Any]) -> dict[str, Any]:
    """Drop empty values; LIST_FIELDS become lists of non-empty str, every other value one str."""
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if key in LIST_FIELDS:
            values = value if isinstance(value, (list, tuple)) else [value]
            texts = [_as_text(v) for v in values if v is not None]
            texts = [t for t in texts if t]
            if texts:
                clean[key] = texts
        else:
            text = _as_text(value)
            if text:
                clean[key] = text
    return clean


class ItemTable(dict):
    """Item id -> text fields, filled one line at a time: a second line for an id is an error naming both lines
    (a silent overwrite would keep whichever text came last)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self._first_line: dict[str, int] = {}

    def add(self, item_id: str, fields: dict[str, Any], line: int) -> None:
        if item_id in self._first_line:
            raise format_error(
                self.path, line, f"duplicate item id {item_id!r} (first on line {self._first_line[item_id]})"
            )
        self._first_line[item_id] = line
        self[item_id] = fields


def read_items_jsonl(path: Path, id_keys: Iterable[str] = ("id", "item_id", "asin")) -> dict[str, dict[str, Any]]:
    """One JSON object per line; the item id is the first of `id_keys` present; other keys are text fields."""
    keys = tuple(id_keys)
    items = ItemTable(path)
    with open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise format_error(path, line_no, f"invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise format_error(path, line_no, "expected a JSON object")
            key = next((k for k in keys if obj.get(k) not in (None, "")), None)
            if key is None:
                raise format_error(path, line_no, f"no item id (expected one of {', '.join(keys)})")
            item_id = str(obj.pop(key))
            for other in keys:
                obj.pop(other, None)
            items.add(item_id, normalise_text(obj), line_no)
    return dict(items)


def make_raw(
    name: str,
    users: list[str],
    items: list[str],
    timestamps: list[float],
    ratings: list[float] | None,
    item_text: dict[str, dict[str, Any]],
    source: Path,
) -> RawInteractions:
    return RawInteractions(
        name=name,
        users=np.array(users, dtype=object),
        items=np.array(items, dtype=object),
        timestamps=np.asarray(timestamps, dtype=np.float64),
        ratings=None if ratings is None else np.asarray(ratings, dtype=np.float64),
        item_text=item_text,
        source=str(source),
    )
