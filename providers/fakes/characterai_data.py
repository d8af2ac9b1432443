"""The Character.AI fake's data: characters, chats, turns, their seeded generation and JSON.

Split from ``characterai`` so the routes stay readable. Every id and time comes from the
fake's own ``random.Random``, so one seed gives the same histories on every machine.
"""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import text

ARCHIVED = "STATE_ARCHIVED"
ACTIVE = "STATE_ACTIVE"
_ID_CHARS = string.ascii_letters + string.digits + "-_"

CLOUDFLARE_1015 = """<!DOCTYPE html>
<html lang="en-US"><head><title>Access denied | neo.character.ai used Cloudflare to restrict
access</title></head><body><div id="cf-wrapper"><div id="cf-error-details">
<h1><span>Error</span> <span>1015</span></h1><h2>You are being rate limited</h2>
<p>The owner of this website (neo.character.ai) has banned you temporarily from accessing
this website.</p><span class="cf-footer-item">Cloudflare Ray ID: 8f1e2d3c4b5a6978</span>
</div></div></body></html>"""
CLOUDFLARE_5XX = """<html><head><title>{status} {reason}</title></head><body>
<center><h1>{status} {reason}</h1></center><hr><center>cloudflare</center></body></html>"""


@dataclass
class Candidate:
    id: str
    text: str
    at: datetime


@dataclass
class Turn:
    id: str
    at: datetime
    author_id: str
    author_name: str
    is_human: bool
    candidates: list[Candidate]
    primary: str
    pinned: bool = False


@dataclass
class Chat:
    id: str
    character_id: str
    created: datetime
    state: str = ACTIVE
    name: str = ""
    turns: list[Turn] = field(default_factory=list)  # oldest first

    def last_activity(self) -> datetime:
        return self.turns[-1].at if self.turns else self.created


@dataclass
class FakeCharacter:
    id: str
    name: str
    description: str
    chats: dict[str, Chat] = field(default_factory=dict)

    def newest_first(self) -> list[Chat]:
        return sorted(self.chats.values(), key=lambda c: c.created, reverse=True)


class Generator:
    """Seeded characters and chats that read like real role-play sessions."""

    def __init__(self, rng: random.Random, now: datetime, turns: tuple[int, int],
                 pinned: float) -> None:
        self.rng = rng
        self.now = now
        self.turns = turns
        self.pinned = pinned

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def character(self) -> FakeCharacter:
        # Character external ids are 43 url-safe characters, never all digits.
        ident = "c" + "".join(self.rng.choice(_ID_CHARS) for _ in range(42))
        return FakeCharacter(ident, text.person(self.rng), text.description(self.rng))

    def chat(self, char: FakeCharacter, user: tuple[str, str], turns: int | None = None
             ) -> Chat:
        """A chat of ``turns`` turns (else a seeded count) between ``user`` (id, name) and
        ``char``."""
        rng = self.rng
        created = self.now - timedelta(days=rng.randint(1, 180), seconds=rng.randint(0, 86399),
                                       microseconds=rng.randint(0, 999999))
        name = f"About {rng.choice(text.TOPICS)}" if rng.random() < 0.3 else ""
        chat = Chat(self.uuid(), char.id, created, name=name)
        moment = created
        count = rng.randint(*self.turns) if turns is None else turns
        for index in range(count):
            moment += timedelta(seconds=rng.randint(3, 240), microseconds=rng.randint(1, 999999))
            # A chat opens with the character's greeting; then the user and it alternate.
            human = index % 2 == 1
            if human:
                said = [text.user_line(rng, char.name, index == 1)]
                author_id, author_name = user
            else:
                swipes = 1 if index == 0 or rng.random() < 0.7 else rng.randint(2, 3)
                said = [text.character_line(rng) for _ in range(swipes)]
                author_id, author_name = char.id, char.name
            candidates = [Candidate(self.uuid(), line, moment + timedelta(seconds=k))
                          for k, line in enumerate(said)]
            chat.turns.append(Turn(
                self.uuid(), moment, author_id, author_name, human, candidates,
                rng.choice(candidates).id, rng.random() < self.pinned,
            ))
        return chat


def dump_data(characters: Mapping[str, FakeCharacter]) -> list[dict[str, Any]]:
    return [{"id": c.id, "name": c.name, "description": c.description, "chats": [
        {"id": ch.id, "created": ch.created.isoformat(), "state": ch.state, "name": ch.name,
         "turns": [{"id": t.id, "at": t.at.isoformat(), "author_id": t.author_id,
                    "author_name": t.author_name, "is_human": t.is_human,
                    "primary": t.primary, "pinned": t.pinned,
                    "candidates": [[k.id, k.text, k.at.isoformat()] for k in t.candidates]}
                   for t in ch.turns]}
        for ch in c.chats.values()]} for c in characters.values()]


def load_data(raw: Iterable[Mapping[str, Any]]) -> dict[str, FakeCharacter]:
    characters: dict[str, FakeCharacter] = {}
    for c in raw:
        char = FakeCharacter(str(c["id"]), str(c["name"]), str(c["description"]))
        for ch in c["chats"]:
            chat = Chat(str(ch["id"]), char.id, datetime.fromisoformat(ch["created"]),
                        str(ch["state"]), str(ch["name"]))
            chat.turns = [Turn(
                str(t["id"]), datetime.fromisoformat(t["at"]), str(t["author_id"]),
                str(t["author_name"]), bool(t["is_human"]),
                [Candidate(str(k), str(said), datetime.fromisoformat(at))
                 for k, said, at in t["candidates"]],
                str(t["primary"]), bool(t["pinned"]),
            ) for t in ch["turns"]]
            char.chats[chat.id] = chat
        characters[char.id] = char
    return characters


# -- JSON shapes: the account (/chat/user/), chats and turns, as the clients read them ----


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def user_json(user_id: int, name: str) -> dict[str, Any]:
    anonymous = name == "ANONYMOUS"
    return {"user": {
        "user": {"id": user_id, "username": name,
                 "first_name": "" if anonymous else name.rstrip("0123456789").title(),
                 "account": None if anonymous else {
                     "name": name, "avatar_type": "DEFAULT", "avatar_file_name": "",
                     "onboarding_complete": True, "mobile_onboarding_complete": 1},
                 "is_staff": False, "is_human": True, "email": "",
                 "subscription": None, "needs_to_acknowledge_policy": False,
                 "suspended_until": None, "hidden_characters": [], "blocked_users": []},
        "name": name, "bio": "", "avatar_type": "DEFAULT", "is_human": True}}


def chat_json(chat: Chat, creator_id: str, char: FakeCharacter | None = None,
              previews: int = 0) -> dict[str, Any]:
    """A chat; with ``char`` the extra fields of a recent-chats entry."""
    data: dict[str, Any] = {
        "chat_id": chat.id, "character_id": chat.character_id, "creator_id": creator_id,
        "create_time": iso(chat.created), "state": chat.state, "type": "TYPE_ONE_ON_ONE",
        "visibility": "VISIBILITY_PRIVATE",
    }
    if chat.name:
        data["name"] = chat.name  # absent when the chat was never named
    if previews > 0:
        data["preview_turns"] = [turn_json(chat, t) for t in chat.turns[::-1][:previews]]
    if char is not None:
        data.update({"character_name": char.name,
                     "character_avatar_uri": f"uploaded/2024/avatars/{char.id[:8]}.webp",
                     "character_visibility": "VISIBILITY_PUBLIC",
                     "character_translations": {}, "default_voice_id": ""})
    return data


def turn_json(chat: Chat, turn: Turn) -> dict[str, Any]:
    author: dict[str, Any] = {"author_id": turn.author_id, "name": turn.author_name}
    if turn.is_human:
        author["is_human"] = True  # character turns omit it, as kramcat/CharacterAI's types allow
    return {
        "turn_key": {"chat_id": chat.id, "turn_id": turn.id},
        "create_time": iso(turn.at), "last_update_time": iso(turn.at),
        "state": "STATE_OK", "author": author,
        "candidates": [{"candidate_id": c.id, "create_time": iso(c.at), "raw_content": c.text,
                        "is_final": True,
                        "editor": {"author_id": turn.author_id, "name": turn.author_name},
                        "safety_truncated": False} for c in turn.candidates],
        "primary_candidate_id": turn.primary,
        "is_pinned": turn.pinned,
    }
