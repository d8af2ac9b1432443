"""A conversation's title, when the provider gives none: its first line, shortened."""

from __future__ import annotations


def derived_title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 80 else line[:79] + "…"
