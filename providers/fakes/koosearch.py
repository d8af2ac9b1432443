"""A stateful fake of Huawei Cloud KooSearch's chat history
(https://support.huaweicloud.com/intl/en-us/api-koosearch/) and of IAM's token endpoint
(https://support.huaweicloud.com/intl/en-us/api-iam/iam_30_0001.html), both on one server
and told apart by path.

- ``POST /v3/auth/tokens``: the password body (``auth.identity.password.user`` with its
  ``domain``, ``auth.scope.project`` by id or name); answers 201 with the token in
  ``X-Subject-Token`` and ``{"token": {"expires_at", "issued_at", ...}}``. A wrong user,
  account or password is 401; a project other than ``project_id`` (by id) or the region (by
  name) is 400. IAM errors are Keystone-shaped (``{"error": {"code", "message",
  "title"}}``), or ``{"error_code", "error_msg"}`` with ``iam_error_style="huawei"``.
- Under ``P = /v1/{project_id}/applications/{application_id}/uni-search``: ``GET
  P/chat-history`` (``page_num``/``page_size`` 1–65535, defaults 1 and 10, newest first,
  filters ``user_name``, ``repo_id``, ``chat_id``, ``type``), ``GET P/chat-history/{id}``
  (the Flexus detail shape, ``question_models`` included), ``DELETE P/chat-history/{id}``
  (200, no body) and ``DELETE P/chat-history/batch`` (``{"chat_ids", "repo_ids"?}`` →
  ``{"totalCount", "deletedCount"}``, or snake case with ``count_spelling="snake"``).

Where the documentation is silent the fake picks one behaviour:

- ``X-Auth-Token`` missing, unknown or expired: 401 ``APIGW.0301`` (API Gateway in front of
  the service checks it); a token of another project: 403 ``APIGW.0302``; an unknown path:
  404 ``APIGW.0101``; an unknown application or chat: 404 ``KOS.00010005``; bad JSON: 400
  ``KOS.00010001``; a bad parameter or id: 400 ``KOS.00010002``; no ``chat_ids``: 400
  ``KOS.00010003``; 429: ``APIGW.0308`` with ``Retry-After``; injected 5xx: ``KOS.00000500``.
  With ``error_array`` every error body is a one-element array.
- The list and the detail keep returning soft-deleted chats (``is_del`` 1). A batch
  delete counts only chats that exist, are not yet deleted and, when ``repo_ids`` is given,
  belong to one of those repositories; ``totalCount`` is the number of distinct ids asked.
- ``soft_delete`` marks chats ``is_del`` 1 instead of removing them; ``partial_next(n)``
  makes the next n batch deletes delete only the first half (rounded down) of what they
  could; ``expire_tokens()`` invalidates every issued token; ``token_ttl`` is in seconds;
  ``revoke_credentials()`` changes the password (``client_config`` keeps the old one) and
  expires every token.
- Tokens are not part of ``dump()``: after a restart from a state file, a client's cached
  token is answered 401 and the client logs in again.
"""

from __future__ import annotations

import json
import random
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar, Literal, Self
from urllib.parse import parse_qs, urlsplit

from .base import ConnectionDropped, FakeProvider, FakeResponse, json_response
from .koosearch_data import (
    Chat,
    chat_from_json,
    chat_to_json,
    detail_json,
    new_chat,
    new_uuid,
    record_json,
)

DEMO_PASSWORD = "Demo-KooSearch-Passw0rd"  # noqa: S105 - the fake's own demo credential
DEMO_USER = "lethe-demo"
DEMO_DOMAIN = "lethe-demo-account"
DEMO_REGION = "ap-southeast-1"
DEMO_PROJECT_ID = "b25446daeb1a41a7953c5deba2b2677a"
DEMO_APPLICATION_ID = "be9b19bf-4865-4fb8-b9f8-2fd1fea98d76"
EPOCH = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
TOKEN_PATH = "/v3/auth/tokens"  # noqa: S105 - a path
PATH = re.compile(r"/v1/([^/]+)/applications/([^/]+)/uni-search/chat-history(?:/([^/]+))?")
ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
CODES = {400: "KOS.00010002", 401: "APIGW.0301", 403: "APIGW.0302", 404: "KOS.00010005",
         405: "APIGW.0101", 429: "APIGW.0308"}
STALE_AUTH = ("Incorrect IAM authentication information: the token is missing, invalid or "
              "expired")
BAD_LOGIN = "The username or password is wrong."


class KooSearchFake(FakeProvider):
    name: ClassVar[str] = "koosearch"

    def __init__(self, *, seed: int = 0, repos: int = 3, chats: int = 8,
                 turns: tuple[int, int] = (1, 4), unanswered: float = 0.05,
                 password: str = DEMO_PASSWORD, user: str = DEMO_USER,
                 domain: str = DEMO_DOMAIN, project_id: str = DEMO_PROJECT_ID,
                 application_id: str = DEMO_APPLICATION_ID, region: str = DEMO_REGION,
                 now: datetime = EPOCH, token_ttl: float = 86400.0, soft_delete: bool = False,
                 count_spelling: Literal["snake", "camel"] = "camel", error_array: bool = False,
                 iam_error_style: Literal["keystone", "huawei"] = "keystone",
                 latency: float = 0.0, rate_limit: float | None = None,
                 retry_after: float | None = 1.0) -> None:
        super().__init__(latency=latency, rate_limit=rate_limit, retry_after=retry_after)
        self.seed, self.n_repos, self.n_chats = seed, repos, chats
        self.turns, self.unanswered = turns, unanswered
        # client_config hands out the password the fake was built with, so that after
        # revoke_credentials it is refused.
        self.password = self.demo_password = password
        self.user, self.domain = user, domain
        self.project_id, self.application_id, self.region = project_id, application_id, region
        self.now = now
        self.token_ttl = token_ttl
        self.soft_delete = soft_delete
        self.count_spelling = count_spelling
        self.error_array = error_array
        self.iam_error_style = iam_error_style
        self.chats: dict[str, Chat] = {}
        self.tokens: dict[str, datetime] = {}
        self._partial = 0
        self._query: dict[str, list[str]] = {}
        self.reset()

    # -- state ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Rebuild the seeded data; forget tokens, faults and counters."""
        with self.lock:
            self.rng = random.Random(self.seed)
            self.chats = {}
            self.tokens = {}
            for _ in range(self.n_repos):
                self.add_chats(self._uuid(), self.n_chats)
            self.clear_faults()

    def clear_faults(self) -> None:
        with self.lock:
            super().clear_faults()
            self._partial = 0

    def _uuid(self) -> str:
        return new_uuid(self.rng)

    def add_chats(self, repo_id: str, count: int) -> list[str]:
        with self.lock:
            slave = next((c.slave_repo_id for c in self.chats.values() if c.repo_id == repo_id),
                         "") or self._uuid()
            added = []
            for _ in range(count):
                chat = new_chat(self.rng, self.now, repo_id, slave, self.turns,
                                self.unanswered)
                self.chats[chat.id] = chat
                added.append(chat.id)
            return added

    def chat_ids(self, repo_id: str | None = None) -> list[str]:
        """Newest first, as the list returns them."""
        with self.lock:
            chats = sorted(self.chats.values(), key=lambda c: c.created, reverse=True)
            return [c.id for c in chats if repo_id is None or c.repo_id == repo_id]

    def repo_ids(self) -> list[str]:
        with self.lock:
            return list(dict.fromkeys(c.repo_id for c in self.chats.values()))

    def dump(self) -> dict[str, Any]:
        with self.lock:
            return {"chats": [chat_to_json(c) for c in self.chats.values()]}

    def load(self, data: Mapping[str, Any]) -> None:
        chats = {str(c["id"]): chat_from_json(c) for c in data["chats"]}
        with self.lock:
            self.chats = chats

    # -- knobs ---------------------------------------------------------------------------

    def partial_next(self, n: int = 1) -> None:
        """The next ``n`` batch deletes delete only half of what they could."""
        with self.lock:
            self._partial += n

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    # -- the contract of every fake ----------------------------------------------------

    @classmethod
    def sized(cls, *, conversations: int, messages: int, seed: int = 0) -> Self:
        # Every question is one question and one answer.
        per = max(1, -(-messages // 2)) if messages else 0
        return cls(seed=seed, repos=1, chats=conversations, turns=(per, per), unanswered=0)

    def client_config(self, base_url: str) -> tuple[dict[str, str], dict[str, str]]:
        return {"password": self.demo_password}, {
            "region": self.region, "project_id": self.project_id,
            "application_id": self.application_id, "iam_user": self.user,
            "domain_name": self.domain, "base_url": base_url, "iam_url": base_url}

    def conversation_ids(self) -> set[str]:
        with self.lock:
            return set(self.chats)

    def message_ids(self, conversation_id: str) -> list[str]:
        with self.lock:
            chat = self.chats.get(conversation_id)
            questions = sorted(chat.questions, key=lambda q: q.at) if chat else []
            return [f"{q.id}:{part}" for q in questions
                    for part in ("q", "a") if part == "q" or q.answer is not None]

    def people_lines(self) -> Iterator[tuple[str, Callable[[str], None]]]:
        for chat in self.chats.values():
            for question in sorted(chat.questions, key=lambda q: q.at):
                yield f"{question.id}:q", partial(setattr, question, "question")

    def revoke_credentials(self) -> None:
        with self.lock:
            self.password = "revoked-" + secrets.token_hex(8)
            self.tokens.clear()

    # -- HTTP ----------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes,
               arrived: float | None = None) -> FakeResponse:
        # The base hands routes the path without its query; the list needs the query.
        with self.lock:
            self._query = parse_qs(urlsplit(path).query, keep_blank_values=True)
            return super().handle(method, path, headers, body, arrived)

    def error(self, status: int, text: str, headers: Mapping[str, str] | None = None,
              code: str = "") -> FakeResponse:
        code = code or CODES.get(status, "KOS.00000500" if status >= 500 else "KOS.00010002")
        body: Any = {"error_code": code, "error_msg": text}
        return json_response(status, [body] if self.error_array else body, headers)

    def _iam_error(self, status: int, message: str) -> FakeResponse:
        if self.iam_error_style == "huawei":
            return json_response(status, {"error_msg": message, "error_code": "IAM.0007"})
        title = {400: "Bad Request", 401: "Unauthorized"}.get(status, "Error")
        return json_response(status, {"error": {"code": status, "message": message,
                                                "title": title}})

    def route(self, method: str, path: str, headers: Mapping[str, str], body: bytes
              ) -> FakeResponse:
        if path == TOKEN_PATH:
            if method != "POST":
                return self._iam_error(405, "Method Not Allowed")
            return self._issue(body)
        match = PATH.fullmatch(path)
        if match is None:
            return self.error(404, "The API does not exist or has not been published in the "
                                   "environment.", code="APIGW.0101")
        project, app, tail = match.groups()
        expires = self.tokens.get(headers.get("x-auth-token", ""))
        if expires is None or expires <= datetime.now(UTC):
            return self.error(401, STALE_AUTH)
        if project != self.project_id:
            return self.error(403, f"The token is not scoped to project {project}.")
        if app != self.application_id:
            return self.error(404, "The application does not exist.")
        if tail is None:
            return self._list() if method == "GET" else self.error(405, "Method Not Allowed")
        if method == "GET":
            return self._detail(tail)
        if method != "DELETE":
            return self.error(405, "Method Not Allowed")
        return self._batch(body) if tail == "batch" else self._delete_one(tail)

    def _issue(self, body: bytes) -> FakeResponse:
        try:
            payload = json.loads(body or b"null")
            auth = payload["auth"]
            login = auth["identity"]["password"]["user"]
            name, password = login["name"], login["password"]
            domain = login["domain"]["name"]
            scope = auth["scope"]["project"]
            scoped = (scope.get("id", self.project_id) == self.project_id
                      and scope.get("name", self.region) == self.region)
            if "password" not in auth["identity"]["methods"]:
                raise KeyError("methods")
        except (ValueError, KeyError, TypeError, AttributeError):
            return self._iam_error(400, "The request body is not a valid password login.")
        if (name, domain, password) != (self.user, self.domain, self.password):
            return self._iam_error(401, BAD_LOGIN)
        if not scoped:
            return self._iam_error(400, "The project in the scope does not exist.")
        token = "MIIfake" + secrets.token_urlsafe(48)
        issued = datetime.now(UTC)
        expires = issued + timedelta(seconds=self.token_ttl)
        self.tokens[token] = expires
        stamp = "%Y-%m-%dT%H:%M:%S.%fZ"
        return json_response(201, {"token": {
            "expires_at": expires.strftime(stamp), "issued_at": issued.strftime(stamp),
            "methods": ["password"], "roles": [{"id": "0", "name": "op_service"}],
            "project": {"id": self.project_id, "name": self.region},
            "user": {"name": self.user, "domain": {"name": self.domain}},
        }}, {"X-Subject-Token": token})

    def _param(self, key: str) -> str | None:
        values = self._query.get(key)
        return values[0] if values else None

    def _number(self, key: str, default: int) -> int | None:
        raw = self._param(key)
        if raw is None:
            return default
        return int(raw) if raw.isdigit() and 1 <= int(raw) <= 65535 else None

    def _list(self) -> FakeResponse:
        page_num, page_size = self._number("page_num", 1), self._number("page_size", 10)
        if page_num is None or page_size is None:
            return self.error(400, "Invalid request parameter: page_num and page_size must be "
                                   "integers from 1 to 65535.")
        filters = {k: self._param(k) for k in ("user_name", "repo_id", "chat_id")}
        for key, value in filters.items():
            if value is not None and not ID.fullmatch(value):
                return self.error(400, f"Invalid request parameter: {key}.")
        if self._param("type") not in (None, "AI", "OTHER"):
            return self.error(400, "Invalid request parameter: type.")
        chats = [self.chats[i] for i in self.chat_ids()]
        for key, attr in (("user_name", "user"), ("repo_id", "repo_id"), ("chat_id", "id")):
            if filters[key] is not None:
                chats = [c for c in chats if getattr(c, attr) == filters[key]]
        start = (page_num - 1) * page_size
        return json_response(200, {
            "total": len(chats), "size": page_size, "pages": -(-len(chats) // page_size),
            "current": page_num, "optimize_count_sql": True, "search_count": True,
            "records": [record_json(c, self.project_id) for c in chats[start:start + page_size]],
        })

    def _find(self, chat_id: str) -> Chat | FakeResponse:
        repo_id = self._param("repo_id")
        if not ID.fullmatch(chat_id) or (repo_id is not None and not ID.fullmatch(repo_id)):
            return self.error(400, "Invalid request parameter: chat_history_id or repo_id.")
        chat = self.chats.get(chat_id)
        if chat is None or (repo_id is not None and chat.repo_id != repo_id):
            return self.error(404, "The chat history does not exist.")
        return chat

    def _detail(self, chat_id: str) -> FakeResponse:
        chat = self._find(chat_id)
        if isinstance(chat, FakeResponse):
            return chat
        return json_response(200, detail_json(chat))

    def _remove(self, chat_ids: list[str]) -> None:
        for chat_id in chat_ids:
            if self.soft_delete:
                self.chats[chat_id].is_del = 1
            else:
                del self.chats[chat_id]
            self.record_delete(chat_id)
        if chat_ids:
            self.changed()
        if self.take_reset():
            raise ConnectionDropped

    def _delete_one(self, chat_id: str) -> FakeResponse:
        chat = self._find(chat_id)
        if isinstance(chat, FakeResponse):
            return chat
        self._remove([chat.id] if not chat.is_del else [])
        return FakeResponse(200, {}, b"")

    def _batch(self, body: bytes) -> FakeResponse:
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            return self.error(400, "The request body is not valid JSON.", code="KOS.00010001")
        if not isinstance(payload, dict) or not payload.get("chat_ids"):
            return self.error(400, "chat_ids must not be empty.", code="KOS.00010003")
        ids, repos = payload["chat_ids"], payload.get("repo_ids")
        if not isinstance(ids, list) or len(ids) > 65535 or \
                not all(isinstance(i, str) and ID.fullmatch(i) for i in ids):
            return self.error(400, "Invalid request parameter: chat_ids.")
        if repos is not None and (not isinstance(repos, list) or len(repos) > 100 or not all(
                isinstance(r, str) and ID.fullmatch(r) for r in repos)):
            return self.error(400, "Invalid request parameter: repo_ids.")
        asked = list(dict.fromkeys(ids))
        doomed = [i for i in asked if (chat := self.chats.get(i)) is not None
                  and not chat.is_del and (not repos or chat.repo_id in repos)]
        if self._partial:
            self._partial -= 1
            doomed = doomed[:len(doomed) // 2]
        self._remove(doomed)
        if self.count_spelling == "snake":
            return json_response(200, {"total_count": len(asked), "deleted_count": len(doomed)})
        return json_response(200, {"totalCount": len(asked), "deletedCount": len(doomed)})
