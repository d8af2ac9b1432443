"""A conversation's title, when the provider gives none: its first line, shortened, with
what the findings' detectors find in it masked. A title is shown in every list and
sample, to people who never open the transcript, so it must not carry a key, a card or a
phone number in clear (docs/architecture.md, "Findings")."""

from __future__ import annotations

from ..lib.detect import Scanner


def derived_title(text: str, scanner: Scanner | None = None) -> str:
    if scanner is not None:
        for hit in sorted(scanner.scan(text), key=lambda h: h.start, reverse=True):
            text = f"{text[:hit.start]}{hit.preview}{text[hit.end:]}"
    line = " ".join(text.split())
    return line if len(line) <= 80 else line[:79] + "…"


def titles_from(text: str, scanner: Scanner | None) -> set[str]:
    """Every title ``text`` may have given a conversation: masked and, from before findings
    were on or when they are off, as it is."""
    return {derived_title(text), derived_title(text, scanner)}
