"""Faithful local fakes of each provider, for tests, the demo and benchmarks."""

from __future__ import annotations

from .base import ConnectionDropped, FakeProvider, FakeResponse, FakeServer
from .characterai import DEMO_TOKEN as CHARACTERAI_DEMO_TOKEN
from .characterai import CharacterAIFake
from .characterai_legacy import CharacterAILegacyFake
from .convai import DEMO_KEY as CONVAI_DEMO_KEY
from .convai import ConvaiFake
from .koosearch import DEMO_PASSWORD as KOOSEARCH_DEMO_PASSWORD
from .koosearch import KooSearchFake

FAKES: dict[str, type[FakeProvider]] = {
    cls.name: cls
    for cls in (CharacterAIFake, CharacterAILegacyFake, ConvaiFake, KooSearchFake)
}


def demo_ports(first: int) -> dict[str, int]:
    """Where `python -m providers.fakes all --port FIRST` serves each fake."""
    return {name: first + i for i, name in enumerate(sorted(FAKES))}

__all__ = [
    "CHARACTERAI_DEMO_TOKEN",
    "CONVAI_DEMO_KEY",
    "CharacterAIFake",
    "CharacterAILegacyFake",
    "KOOSEARCH_DEMO_PASSWORD",
    "KooSearchFake",
    "FAKES",
    "ConnectionDropped",
    "ConvaiFake",
    "FakeProvider",
    "FakeResponse",
    "FakeServer",
    "demo_ports",
]
