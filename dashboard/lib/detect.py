"""Finding secrets and personal data in message text: credentials (detect-secrets' plugins and
a few of today's AI keys), e-mail addresses, phone numbers (phonenumbers), payment card
numbers (Luhn) and IBANs (python-stdnum), and patterns a team adds.

Each detector is a small class with `find(text)`; `Scanner` runs a set of them. It never
keeps or returns a matched value: a `Found` holds where the match is and a masked preview
(`sk-…9f2c`). Most chat messages hold none of these, so each detector first asks a cheap
question (`might`: an `@`, a run of digits, a long token) and looks closer only when the
answer is yes: detection must not slow a sync down noticeably (`make bench`,
`findings_overhead`). A batch of messages goes through `Scanner.scan_many`, which asks the
same of the whole batch at once (each detector's `hint`, one regex pass over the batch) and
scans only the messages it picked.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import accumulate
from typing import ClassVar

import phonenumbers
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from stdnum import iban, luhn

ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class Found:
    kind: str  # secret, email, phone, card, iban, custom
    detector: str  # what found it, in words: "GitHub token", "e-mail address"
    start: int
    end: int
    preview: str  # masked: never the value itself


def mask(value: str, keep_start: int = 3, keep_end: int = 4) -> str:
    """A few characters at each end and an ellipsis between; shorter values show less, so
    that a preview never gives away half of what it stands for."""
    if len(value) < 8:
        return ELLIPSIS
    if len(value) < 2 * (keep_start + keep_end):
        keep_start, keep_end = min(keep_start, 1), min(keep_end, 2)
    return f"{value[:keep_start]}{ELLIPSIS}{value[len(value) - keep_end:]}"


class Detector:
    kind: ClassVar[str]
    name: str
    # A regex that matches wherever `find` could find something (and maybe elsewhere):
    # run once over a whole batch of messages (`Scanner.scan_many`), it picks the few worth
    # a closer look. None: every message is.
    hint: re.Pattern[str] | None = None

    # The same as several cheaper passes that together match where it would (`Secrets`).
    hints: tuple[re.Pattern[str], ...] = ()

    def passes(self) -> tuple[re.Pattern[str], ...]:
        return self.hints or (() if self.hint is None else (self.hint,))

    def might(self, text: str, digits: int) -> bool:
        """A first look costing a few string operations (``digits``: how many the text
        holds); False means `find` would find nothing."""
        return True

    def find(self, text: str) -> Iterator[Found]:
        raise NotImplementedError


# -- credentials ------------------------------------------------------------------------

def _plugins() -> list[RegexBasedDetector]:
    """detect-secrets' detectors of known credential shapes. Not its entropy or keyword
    detectors: chat ids and prose would drown in them."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    noisy = {"Base64HighEntropyString", "HexHighEntropyString", "KeywordDetector",
             "IPPublicDetector"}
    classes: list[type] = list(get_mapping_from_secret_type_to_class().values())
    return [cls() for cls in classes
            if issubclass(cls, RegexBasedDetector) and cls.__name__ not in noisy]


# Keys people paste into AI chats today that detect-secrets 1.5 does not know yet.
EXTRA_SECRETS = {
    "OpenAI key": r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}",
    "Anthropic key": r"\bsk-ant-[a-z0-9]{2,8}-[A-Za-z0-9_-]{20,}",
    "Google API key": r"\bAIza[0-9A-Za-z_-]{35}\b",
    "Hugging Face token": r"\bhf_[A-Za-z0-9]{30,}\b",
}
# detect-secrets' own ends lazily, before the signature: the whole token is the secret.
JWT = re.compile(r"eyJ[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+\.[A-Za-z0-9_.+/=-]*")
PRIVATE_KEY_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----")


class Secrets(Detector):
    kind = "secret"
    name = "credential"
    hint = re.compile(r"://|PRIVATE KEY|PuTTY|\S{16}")
    # The same, as four passes: re finds a bare literal with a fast search, but tries an
    # alternation at every position (1.7 µs a chat message as one pass, 1.2 as four).
    # The long token is found at its start only (`scan_many` puts a newline before every
    # text): tried at every character, \S{16} rereads each word once per letter.
    hints = tuple(re.compile(p) for p in (re.escape("://"), "PRIVATE KEY", "PuTTY",
                                          r"\s\S{16}"))

    def might(self, text: str, digits: int) -> bool:
        # Every shape below is a long token, a key block, or credentials in a URL.
        return ("://" in text or "PRIVATE KEY" in text or "PuTTY" in text
                or any(len(word) >= 16 for word in text.split()))

    @cached_property
    def patterns(self) -> list[tuple[str, re.Pattern[str], RegexBasedDetector | None]]:
        found: list[tuple[str, re.Pattern[str], RegexBasedDetector | None]] = []
        for plugin in _plugins():
            label = plugin.secret_type.removesuffix(" Credentials")
            regexes = [JWT] if isinstance(plugin, JwtTokenDetector) else plugin.denylist
            found += [(label, regex, plugin) for regex in regexes]
        found += [(label, re.compile(rx), None) for label, rx in EXTRA_SECRETS.items()]
        return found

    def find(self, text: str) -> Iterator[Found]:
        for label, regex, plugin in self.patterns:
            for match in regex.finditer(text):
                # Basic auth captures the password; the others match the secret whole.
                start, end = match.span(1) if label == "Basic Auth" else match.span()
                value = text[start:end]
                if isinstance(plugin, JwtTokenDetector) and not plugin.is_formally_valid(value):
                    continue
                if "PRIVATE KEY" in value or value.startswith("PuTTY"):
                    # The whole block is the secret; its first line is all the preview says.
                    if text[max(0, start - 5):start] == "-----":
                        start -= 5
                    block_end = PRIVATE_KEY_END.search(text, end)
                    end = block_end.end() if block_end else len(text)
                    yield Found(self.kind, label, start, end, f"-----{value}-----")
                    continue
                yield Found(self.kind, label, start, end, mask(value))


# -- personal data ----------------------------------------------------------------------

# Seven digits or more with at most a few separators between each.
DIGIT_RUN = re.compile(r"\d(?:[\s().\-/]{0,3}\d){6}")


class Emails(Detector):
    kind = "email"
    name = "e-mail address"
    hint = re.compile("@")

    def might(self, text: str, digits: int) -> bool:
        return "@" in text
    pattern = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

    def find(self, text: str) -> Iterator[Found]:
        for match in self.pattern.finditer(text):
            local, _, domain = match.group().partition("@")
            tld = domain.rsplit(".", 1)[-1]
            yield Found(self.kind, self.name, *match.span(),
                        f"{local[:1]}{ELLIPSIS}@{ELLIPSIS}.{tld}")


class Phones(Detector):
    """Numbers phonenumbers finds valid: with a country code anywhere, or in ``region``'s
    own format (LETHE_FINDINGS_REGION)."""

    kind = "phone"
    name = "phone number"
    # phonenumbers' own matcher costs some 200 us a message, far too much to run on every
    # one holding a time and a date: only where digits run long enough.
    hint = DIGIT_RUN

    def might(self, text: str, digits: int) -> bool:
        return digits >= 7 and self.hint is not None and self.hint.search(text) is not None

    def __init__(self, region: str = "US") -> None:
        self.region = region or None

    def find(self, text: str) -> Iterator[Found]:
        for match in phonenumbers.PhoneNumberMatcher(text, self.region,
                                                     leniency=phonenumbers.Leniency.VALID):
            digits = re.sub(r"\D", "", match.raw_string)
            yield Found(self.kind, self.name, match.start, match.end, f"{ELLIPSIS}{digits[-2:]}")


class Cards(Detector):
    kind = "card"
    name = "payment card number"
    # A card number is also a run of digits and separators: the phone hint finds it, and
    # one pass over a batch serves both.
    hint = DIGIT_RUN

    def might(self, text: str, digits: int) -> bool:
        return digits >= 13
    pattern = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")

    def find(self, text: str) -> Iterator[Found]:
        for match in self.pattern.finditer(text):
            digits = re.sub(r"\D", "", match.group())
            # Card numbers start 2-6 (Mastercard, Visa, Amex, Discover, UnionPay, ...).
            if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn.is_valid(digits):
                yield Found(self.kind, self.name, *match.span(), f"•••• {digits[-4:]}")


class Ibans(Detector):
    kind = "iban"
    name = "IBAN"
    hint = re.compile(r"[A-Z][A-Z]\d\d")

    def might(self, text: str, digits: int) -> bool:
        return digits >= 8  # the shortest (Norway's) has 11 digits; some BBANs hold letters
    pattern = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){10,30}\b")

    def find(self, text: str) -> Iterator[Found]:
        for match in self.pattern.finditer(text):
            compact = match.group().replace(" ", "")
            if iban.is_valid(compact):
                yield Found(self.kind, self.name, *match.span(), mask(compact, 4, 4))


class Pattern(Detector):
    """A team's own: a name and a regular expression (the admin's "Finding patterns")."""

    kind = "custom"

    def __init__(self, name: str, regex: str) -> None:
        self.name = name
        self.regex = re.compile(regex)
        # Its own regex, over the batch joined by newlines, unless it anchors to the start
        # or end of a text, which means something else there.
        if not re.search(r"\^|\$|\\A|\\Z|\(\?[a-z]*m", regex):
            self.hint = self.regex

    def find(self, text: str) -> Iterator[Found]:
        for match in self.regex.finditer(text):
            if match.end() > match.start():
                yield Found(self.kind, self.name, *match.span(), mask(match.group()))


# Overlaps go to the more specific kind: a card number is not also a phone number.
KINDS = ("secret", "card", "iban", "custom", "email", "phone")
PRECEDENCE = {kind: rank for rank, kind in enumerate(KINDS)}


def _digits(text: str) -> int:
    return sum(map(text.count, "0123456789"))


def _blank(text: str, hits: Iterable[Found]) -> str:
    """``text`` with what was found replaced by spaces (positions unchanged)."""
    chars = list(text)
    for hit in hits:
        chars[hit.start:hit.end] = " " * (hit.end - hit.start)
    return "".join(chars)


class Scanner:
    def __init__(self, detectors: Sequence[Detector]) -> None:
        # Most specific first: each later detector sees the text with what the earlier ones
        # found blanked out, so a card number is never also parsed as a phone number
        # (phonenumbers spends most of a millisecond on one).
        self.detectors = sorted(detectors, key=lambda d: PRECEDENCE.get(d.kind, 9))

    @classmethod
    def standard(cls, region: str = "US", extra: Iterable[Detector] = ()) -> Scanner:
        return cls([Secrets(), Cards(), Ibans(), Emails(), Phones(region), *extra])

    def scan_many(self, texts: Sequence[str]) -> Iterator[tuple[int, list[Found]]]:
        """(index, what `scan` finds) for each of ``texts`` holding something. Each
        detector's hint runs once over the texts joined by newlines; only those a hint
        touched are scanned: most chat messages cost nothing but that one pass."""
        if any(d.hint is None for d in self.detectors):
            chosen: Iterable[int] = range(len(texts))
        else:
            # Every text follows a newline, so a hint may begin on the space before a word;
            # a match beginning on the newline before a text belongs to that text.
            starts = list(accumulate((len(t) + 1 for t in texts[:-1]), initial=1))
            joined = "\n" + "\n".join(texts)
            picked: set[int] = set()
            hints = {id(h): h for d in self.detectors for h in d.passes()}
            for hint in hints.values():
                for match in hint.finditer(joined):
                    begins = match.start() + 1
                    first = bisect_right(starts, begins) - 1
                    last = bisect_right(starts, max(begins, match.end() - 1)) - 1
                    picked.update(range(first, last + 1))
            chosen = sorted(picked)
        for index in chosen:
            found = self.scan(texts[index])
            if found:
                yield index, found

    def scan(self, text: str) -> list[Found]:
        """What the detectors find in ``text``, in order, without overlaps."""
        if not text:
            return []
        seen, digits = text, _digits(text)
        found: list[Found] = []
        for detector in self.detectors:
            if not detector.might(seen, digits):
                continue
            hits = list(detector.find(seen))
            if hits:
                found += hits
                seen = _blank(seen, hits)
                digits = _digits(seen)
        if len(found) < 2:
            return found
        kept: list[Found] = []
        for hit in sorted(found, key=lambda f: (PRECEDENCE.get(f.kind, 9), f.start)):
            if all(hit.end <= k.start or hit.start >= k.end for k in kept):
                kept.append(hit)
        return sorted(kept, key=lambda f: f.start)
