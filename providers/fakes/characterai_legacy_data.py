"""The legacy Character.AI fake's records, their JSON renderings and their saved form.

Kept apart from ``characterai_legacy`` only to keep each module short; the behaviour is
documented in that module's docstring.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from .base import FakeResponse

_REASONS = {404: "Not Found", 410: "Gone"}


def iso(moment: datetime) -> str:
    """Django REST Framework's rendering of an aware UTC time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LegacyMessage:
    id: int
    uuid: str
    text: str
    is_human: bool
    is_alternative: bool = False
    deleted: bool = False


@dataclass
class LegacyHistory:
    id: str
    created: datetime
    last_interaction: datetime
    messages: list[LegacyMessage] = field(default_factory=list)  # id ascending


@dataclass
class LegacyCharacter:
    id: str
    name: str
    title: str
    greeting: str
    username: str  # the character's internal user, the ``src``/``tgt`` of its messages
    histories: dict[str, LegacyHistory] = field(default_factory=dict)


def gone_page(status: int) -> FakeResponse:
    """What a retired route answers: nginx's plain HTML error page."""
    title = f"{status} {_REASONS.get(status, 'Error')}"
    page = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n")
    return FakeResponse(status, {"Content-Type": "text/html"}, page.encode())


def user_json(account: Mapping[str, Any], *, anonymous: bool = False) -> dict[str, Any]:
    username = "ANONYMOUS" if anonymous else account["username"]
    inner = {"id": 0 if anonymous else account["id"], "username": username,
             "first_name": "" if anonymous else account["name"], "is_staff": False,
             "account": None if anonymous else {
                 "name": account["name"], "avatar_type": "DEFAULT", "avatar_file_name": "",
                 "onboarding_complete": True, "mobile_onboarding_complete": 1}}
    return {"user": {"user": inner, "name": "" if anonymous else account["name"],
                     "bio": "", "is_human": True, "subscription": None,
                     "hidden_characters": [], "blocked_users": []}}


def character_json(char: LegacyCharacter, last: datetime | None) -> dict[str, Any]:
    """One entry of the recent characters, the fields of kramcat/CharacterAI's ``CharShort``."""
    return {
        "external_id": char.id, "title": char.title, "description": char.title,
        "greeting": char.greeting, "avatar_file_name": None, "visibility": "PUBLIC",
        "copyable": False, "participant__name": char.name,
        "participant__num_interactions": 1000 + len(char.name) * 37,
        "user__id": 4000 + len(char.title), "user__username": "creator",
        "img_gen_enabled": False, "default_voice_id": None, "upvotes": 12,
        "max_last_interaction": iso(last) if last else None,
    }


def message_json(account: Mapping[str, Any], char: LegacyCharacter, m: LegacyMessage
                 ) -> dict[str, Any]:
    """A HistoryMessage as kramcat/CharacterAI's ``HisMessage`` and a node_characterai 1.x issue's
    sample describe it."""
    me = account["username"]
    src, tgt = (me, char.username) if m.is_human else (char.username, me)
    return {
        "id": m.id, "uuid": m.uuid, "text": m.text, "src": src, "tgt": tgt,
        "is_alternative": m.is_alternative, "image_rel_path": "", "image_prompt_text": "",
        "deleted": m.deleted, "src__name": account["name"] if m.is_human else char.name,
        "src__user__username": src, "src__is_human": m.is_human,
        "src__character__avatar_file_name": None,
        "src_char": {"participant": {"name": char.name}, "avatar_file_name": None},
        "responsible_user__username": None if m.is_human else me,
    }


def dump_characters(characters: Mapping[str, LegacyCharacter]) -> list[dict[str, Any]]:
    return [
        {**{k: v for k, v in asdict(c).items() if k != "histories"}, "histories": [
            {"id": h.id, "created": h.created.isoformat(),
             "last_interaction": h.last_interaction.isoformat(),
             "messages": [asdict(m) for m in h.messages]}
            for h in c.histories.values()]}
        for c in characters.values()]


def load_characters(data: list[Mapping[str, Any]]) -> dict[str, LegacyCharacter]:
    characters = {}
    for c in data:
        char = LegacyCharacter(str(c["id"]), str(c["name"]), str(c["title"]),
                               str(c["greeting"]), str(c["username"]))
        for h in c["histories"]:
            char.histories[str(h["id"])] = LegacyHistory(
                str(h["id"]), datetime.fromisoformat(h["created"]),
                datetime.fromisoformat(h["last_interaction"]),
                [LegacyMessage(int(m["id"]), str(m["uuid"]), str(m["text"]),
                               bool(m["is_human"]), bool(m["is_alternative"]),
                               bool(m["deleted"])) for m in h["messages"]])
        characters[char.id] = char
    return characters
