"""The KooSearch fake's data: chats and their questions, their seeded generation and JSON.

Split from ``koosearch`` so the routes stay readable. Every id and time comes from the
fake's own ``random.Random``, so one seed gives the same chats on every machine.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import text


@dataclass
class Question:
    id: str
    question: str
    answer: str | None
    at: datetime
    feedback_status: int = 0


@dataclass
class Chat:
    id: str
    repo_id: str
    slave_repo_id: str
    user: str
    title: str
    created: datetime
    questions: list[Question] = field(default_factory=list)
    is_del: int = 0


def new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def new_chat(rng: random.Random, now: datetime, repo_id: str, slave: str,
             turns: tuple[int, int], unanswered: float) -> Chat:
    """A chat asked up to 180 days before ``now``, of ``turns`` questions; a share
    ``unanswered`` of them got no answer."""
    created = now - timedelta(days=rng.randint(0, 180), seconds=rng.randint(0, 86399),
                              milliseconds=rng.randint(0, 999))
    asker = text.person(rng)
    chat = Chat(new_uuid(rng), repo_id, slave, asker.replace(" ", "_").lower(), "", created)
    moment = created
    for turn in range(rng.randint(*turns)):
        question = text.user_line(rng, asker, turn == 0)
        answer = None if rng.random() < unanswered else text.character_line(rng)
        chat.questions.append(Question(new_uuid(rng), question, answer, moment,
                                       rng.choice((0, 0, 0, 1, 2))))
        moment += timedelta(seconds=rng.randint(5, 240), milliseconds=rng.randint(0, 999))
    chat.title = chat.questions[0].question[:100] if chat.questions else "New chat"
    return chat


# -- state files ------------------------------------------------------------------------

def chat_to_json(chat: Chat) -> dict[str, Any]:
    return {**asdict(chat), "created": chat.created.isoformat(), "questions": [
        {**asdict(q), "at": q.at.isoformat()} for q in chat.questions]}


def chat_from_json(c: Mapping[str, Any]) -> Chat:
    questions = [Question(str(q["id"]), str(q["question"]), q["answer"],
                          datetime.fromisoformat(q["at"]), int(q["feedback_status"]))
                 for q in c["questions"]]
    return Chat(str(c["id"]), str(c["repo_id"]), str(c["slave_repo_id"]), str(c["user"]),
                str(c["title"]), datetime.fromisoformat(c["created"]), questions,
                int(c["is_del"]))


# -- JSON shapes: a list record and a chat's detail (the Flexus edition's shape) ---------

def millis(moment: datetime) -> str:
    """KooSearch's times: epoch milliseconds, in a string."""
    return str(round(moment.timestamp() * 1000))


def record_json(chat: Chat, project_id: str) -> dict[str, Any]:
    return {"chat_id": chat.id, "knowledge_repo_id": chat.repo_id,
            "slave_repo_id": chat.slave_repo_id, "chat_title": chat.title,
            "create_date_time": millis(chat.created), "project_id": project_id,
            "is_del": chat.is_del}


def detail_json(chat: Chat) -> dict[str, Any]:
    return {"chat_id": chat.id, "knowledge_repo_id": chat.repo_id,
            "chat_title": chat.title, "create_date_time": millis(chat.created),
            "is_del": chat.is_del, "question_models": [
                {"question_id": q.id, "chat_id": chat.id, "question": q.question,
                 "answer": q.answer, "create_date_time": millis(q.at),
                 "feedback_status": q.feedback_status, "question_reference_models": []}
                for q in chat.questions]}
