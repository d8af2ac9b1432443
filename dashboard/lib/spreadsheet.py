"""CSV that a spreadsheet opens as text: a cell starting with = + - @ (or a tab or carriage
return) would be run as a formula, and chat text, labels and names come from outside; such
a cell is written with a leading apostrophe, which spreadsheets show as text. Every CSV
Lethe writes goes through here."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def rows(header: Iterable[str], lines: Iterable[Iterable[Any]]) -> Iterator[bytes]:
    """The CSV, a line at a time, every cell made safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for line in _all(header, lines):
        writer.writerow([cell(value) for value in line])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()


def _all(header: Iterable[str], lines: Iterable[Iterable[Any]]) -> Iterator[Iterable[Any]]:
    yield header
    yield from lines
