"""Huawei Cloud KooSearch: the chat history of one application.

Documented at https://support.huaweicloud.com/intl/en-us/api-koosearch/ (ListChatHistorys,
ShowChatHistory, BatchDeleteChatHistory); the older "Flexus" edition's pages fill gaps
(https://support.huaweicloud.com/api-flexussearchservice/).

Every path sits under ``P = /v1/{project_id}/applications/{application_id}/uni-search``:
``GET P/chat-history`` lists chats page by page, ``GET P/chat-history/{id}`` reads one
chat's questions and answers, ``DELETE P/chat-history/batch`` erases whole chats. The IAM
token every request carries is issued, cached and renewed by ``iam``.

The "character" of this provider is the knowledge repository a chat was asked against
(``knowledge_repo_id``). The unit of erasure is the whole chat: message ids are synthetic
(``"<question_id>:q"`` and ``":a"``) and only locate a line inside the mirror.

Choices made where no public source settles the question, or where the documentation
looks wrong:

- Hosts: ``base_url`` defaults to ``https://css.{region}.myhuaweicloud.com`` (the China
  site's pattern; the international host is unconfirmed) and may be an API Gateway address,
  path prefix included. ``iam_url`` defaults to ``https://iam.{region}.myhuaweicloud.com``.
  The token is scoped by project id (``scope.project.id``).
- Ids: the docs say project and application ids "must start with a letter", but project ids
  are 32 hex digits and application ids UUIDs, which begin with a digit 10 times in 16, so
  only "1 to 64 letters, digits, ``_`` or ``-``" is enforced (``iam.ID_PATTERN``).
- Errors: ``{"error_code", "error_msg"}``, or an array of them; codes starting with
  ``APIGW`` are said to come from API Gateway. 401 and 403 are retried once with a new
  token (``iam.IamAuth``), then an AuthError (403: the user lacks KooSearch permissions);
  404 NotFound, 429 RateLimited, 5xx TemporaryError, any other 4xx a PermanentError naming
  the code; a 200 that carries ``error_code`` is a refusal too (worded in ``errors``).
- Listing: 100 a page; stops at ``pages`` (or ``total``), at an empty ``records``, and,
  when neither count is given, at a short page or one with no new chat id.
- Soft-deleted chats are assumed to stay listed with ``is_del`` 1 (the list record has the
  field); they are mirrored with state ``soft_deleted``.
- Detail: ``question_models`` as in the Flexus edition; absent means no messages. A
  question without an answer yields only the question. Entries are sorted by time when
  every one has a time.
- Delete: at most 100 chat ids a batch (the uni-search limit is not stated; ``repo_ids``
  is documented at 100). ``repo_ids`` are the repositories the read-back before sending
  found the chats in. The counts are read in either spelling (``total_count`` /
  ``totalCount``, ``deleted_count`` / ``deletedCount``).
- Read-back: chats are looked up in the list filtered by ``chat_id`` (a documented filter)
  rather than by the detail, whose not-found answer is unconfirmed; when the ids outnumber
  the list's pages the whole list is read instead, and also when the filter turns out to be
  ignored. Every batch is read back after the delete, because a soft delete is counted as a
  delete. With every id counted the chats are ``erased``; with fewer (or no counts) only
  those the list no longer returns. A chat listed with ``is_del`` 1 ("soft-deleted at the
  provider, not erased"), one still listed after a short count, and a batch whose
  read-back fails are all ``unknown``, never ``erased``: the job reads them back, records
  a soft delete as such and sends a chat that is still there once more. A chat already
  soft-deleted before the delete is not sent (the API has no harder delete) but is
  ``unknown`` for the same reason.
- Rate: 5 requests a second, a guess.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from ..base import batched
from ..errors import (
    AuthError,
    NotFound,
    PermanentError,
    ProtocolError,
    ProviderError,
    RateLimited,
    TemporaryError,
)
from ..records import (
    Account,
    Capabilities,
    Character,
    Conversation,
    FieldSpec,
    Message,
    Outcome,
    OutcomeStatus,
    Presence,
    Target,
)
from .fields import (
    Record,
    as_int,
    count_of,
    from_millis,
    repo_of,
    state_of,
    text_id,
)
from .iam import HuaweiTokenProvider, valid_id

DEFAULT_BASE_URL = "https://css.{region}.myhuaweicloud.com"
PAGE_SIZE = 100
MAX_PAGES = 65535  # page_num's documented maximum

MESSAGE_REFUSED = "KooSearch erases whole chats only; erase the conversation instead"
INVALID_ID = "not a valid KooSearch chat id"
SOFT_DELETED = "soft-deleted at the provider, not erased"
NOT_DELETED = "KooSearch did not delete it: the batch deleted fewer chats than asked"

class KooSearchProvider(HuaweiTokenProvider):
    name: ClassVar[str] = "koosearch"
    label: ClassVar[str] = "Huawei Cloud KooSearch"
    public_hosts: ClassVar[tuple[str, ...]] = ("*.myhuaweicloud.com",)
    capabilities: ClassVar[Capabilities] = Capabilities(
        erase_kinds=("conversation",),
        max_batch=100,  # the real limit per batch delete is UNCONFIRMED
        soft_delete=True,
        verify="Lists the application's chats again by chat id and checks each one is gone, "
               "not merely marked deleted.",
        can=(
            "Lethe can delete whole chats, each question with its answer.",
            "Lethe can tell which chats a partly failed delete missed, by reading the "
            "list again.",
        ),
        cannot=(
            "Lethe cannot delete a single question or answer.",
            "Lethe cannot force a real delete where a deployment only marks chats "
            "deleted: those are reported as soft-deleted, not erased.",
        ),
        requests_per_second=5.0,  # UNCONFIRMED
        burst=5,
    )
    fields: ClassVar[tuple[FieldSpec, ...]] = (
        FieldSpec("region", "Region", help="e.g. ap-southeast-1 (CN-Hong Kong) or "
                  "ap-southeast-3 (AP-Singapore)."),
        FieldSpec("project_id", "Project ID", help="The project of that region, from "
                  "My Credentials → API Credentials."),
        FieldSpec("application_id", "Application ID", help="CSS console → KooSearch → "
                  "service details → Basic Information."),
        FieldSpec("iam_user", "IAM user name"),
        FieldSpec("domain_name", "Account (domain) name", help="The Huawei Cloud account "
                  "the IAM user belongs to."),
        FieldSpec("password", "IAM password", secret=True),
        FieldSpec("base_url", "KooSearch endpoint", required=False,
                  help="Empty for https://css.{region}.myhuaweicloud.com (unconfirmed for "
                       "international regions); or your API Gateway address."),
        FieldSpec("iam_url", "IAM endpoint", required=False,
                  help="Empty for https://iam.{region}.myhuaweicloud.com."),
    )
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    id_options: ClassVar[tuple[tuple[str, str], ...]] = (
        ("project_id", "project ID"), ("application_id", "application ID"))

    def __init__(self, secrets: Mapping[str, str], options: Mapping[str, str],
                 **kwargs: Any) -> None:
        super().__init__(secrets, options, **kwargs)
        project, app = self.options["project_id"], self.options["application_id"]
        self._chats = f"/v1/{project}/applications/{app}/uni-search/chat-history"

    async def _page(self, number: int, size: int = PAGE_SIZE,
                    filters: Mapping[str, str] | None = None) -> tuple[list[Record], int | None]:
        """One page of the list and the number of pages, when the answer tells."""
        params = {"page_num": str(number), "page_size": str(size), **(filters or {})}
        data = await self.http.read("GET", self._chats, params=params)
        if data is None:
            return [], 0
        if not isinstance(data, dict):
            raise ProtocolError(f"{self.label} sent a chat list that is not an object")
        records = data.get("records")
        if records is None:
            records = []
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ProtocolError(f"{self.label} sent chat records that are not a list of objects")
        for raw in records:
            raw["chat_id"] = text_id(raw.get("chat_id"))
            if not raw["chat_id"]:
                raise ProtocolError(f"{self.label} sent a chat without a usable chat_id")
        pages, total = as_int(data.get("pages")), as_int(data.get("total"))
        if pages is None and total is not None:
            pages = -(-total // (as_int(data.get("size")) or size))
        return records, pages

    async def _records(self, filters: Mapping[str, str] | None = None
                       ) -> AsyncIterator[Record]:
        seen: set[str] = set()
        for number in range(1, MAX_PAGES + 1):
            records, pages = await self._page(number, filters=filters)
            fresh = [r for r in records if r["chat_id"] not in seen]
            for raw in fresh:
                seen.add(raw["chat_id"])
                yield raw
            if not records or (pages is not None and number >= pages):
                return
            # Without counts, a short page is the last; a page of repeats means the server
            # ignores page_num.
            if pages is None and (len(records) < PAGE_SIZE or not fresh):
                return

    async def _lookup(self, chat_ids: Sequence[str]) -> dict[str, Record | None]:
        """The list record of each chat, None when the list no longer returns it."""
        found: dict[str, Record | None] = dict.fromkeys(chat_ids)
        wanted = [c for c in found if valid_id(c)]
        if not wanted:
            return found
        first, pages = await self._page(1)
        if pages is not None and pages <= 1:
            listed = {r["chat_id"]: r for r in first}
            return {c: listed.get(c) for c in found}
        # One request per id, unless listing everything takes fewer.
        by_filter = pages is None or pages > len(wanted)
        for chat_id in wanted if by_filter else []:
            records, _ = await self._page(1, 10, {"chat_id": chat_id})
            hit = next((r for r in records if r["chat_id"] == chat_id), None)
            if hit is None and records:
                by_filter = False  # other chats came back: the filter is ignored
                break
            found[chat_id] = hit
        if not by_filter:
            listed = {r["chat_id"]: r async for r in self._records()}
            found = {c: listed.get(c) for c in found}
        return found

    # -- reading -------------------------------------------------------------------------

    async def check(self) -> Account:
        await self._page(1, 1)
        user, domain = self.login.user, self.login.domain
        return Account(id=f"{domain}/{user}", name=f"IAM user {user} in account {domain}")

    async def characters(self) -> AsyncIterator[Character]:
        repos = list(dict.fromkeys([repo_of(raw) async for raw in self._records()]))
        for repo in repos:
            name = (f"Knowledge repository {repo[:8]}" if repo
                    else "Chats without a knowledge repository")
            yield Character(provider_id=repo, name=name)

    async def conversations(
        self, character: Character | None = None
    ) -> AsyncIterator[Conversation]:
        repo = character.provider_id if character is not None else None
        filters = {"repo_id": repo} if repo and valid_id(repo) else {}
        async for raw in self._records(filters):
            if repo is not None and repo_of(raw) != repo:
                continue
            yield Conversation(
                provider_id=raw["chat_id"],
                character_id=repo_of(raw),
                title=str(raw.get("chat_title") or ""),
                started_at=from_millis(raw.get("create_date_time")),
                state="soft_deleted" if state_of(raw) == "soft_deleted" else "active",
                flags={"repo_id": repo_of(raw)},
            )

    async def messages(self, conversation: Conversation) -> AsyncIterator[Message]:
        chat_id = conversation.provider_id
        if not valid_id(chat_id):
            raise NotFound(f"{self.label} has no chat {chat_id[:80]!r}: {INVALID_ID}")
        repo = conversation.character_id
        data = await self.http.read("GET", f"{self._chats}/{chat_id}",
                                    params={"repo_id": repo} if valid_id(repo) else None)
        if data is not None and not isinstance(data, dict):
            raise ProtocolError(f"{self.label} sent a chat that is not an object")
        questions = (data or {}).get("question_models") or []
        if not isinstance(questions, list) or not all(isinstance(q, dict) for q in questions):
            raise ProtocolError(f"{self.label} sent question_models that are not objects")
        entries = [(from_millis(q.get("create_date_time")), q) for q in questions]
        if all(when is not None for when, _ in entries):
            entries.sort(key=lambda pair: pair[0] or datetime.min)
        position = 0
        for n, (when, question) in enumerate(entries):
            ident = text_id(question.get("question_id")) or f"{chat_id}-{n}"
            for suffix, key, author in ((":q", "question", "User"), (":a", "answer", "KooSearch")):
                value = question.get(key)
                if value is None:
                    continue
                yield Message(provider_id=ident + suffix, conversation_id=chat_id,
                              position=position, author=author, is_human=suffix == ":q",
                              text=str(value), created_at=when)
                position += 1

    # -- erasing -------------------------------------------------------------------------

    async def erase(self, targets: Sequence[Target]) -> list[Outcome]:
        ledger = _Ledger(targets)
        try:
            await self._erase_all(ledger)
        except ProviderError as exc:
            # Auth, rate limit or an outage: the job pauses and keeps what was settled.
            exc.partial = ledger.settled()
            raise
        return ledger.settled()

    async def _erase_all(self, ledger: _Ledger) -> None:
        try:
            before = await self._lookup(list(ledger.wanted))
        except PermanentError as exc:
            for chat_id in ledger.wanted:
                ledger.settle(chat_id, "failed", exc.message)
            return
        pending = []
        for chat_id, record in before.items():
            if record is None:
                ledger.settle(chat_id, "already_gone", "KooSearch no longer lists it.")
            elif state_of(record) == "soft_deleted":
                # Sending again would change nothing: the API has no harder delete.
                ledger.settle(chat_id, "unknown", SOFT_DELETED)
            else:
                pending.append(chat_id)
        for batch in batched(pending, self.capabilities.max_batch):
            await self._erase_batch(list(batch), before, ledger)

    async def _erase_batch(self, batch: list[str], before: dict[str, Record | None],
                           ledger: _Ledger) -> None:
        repos = [r for r in dict.fromkeys(repo_of(before[c]) for c in batch) if r]
        body: dict[str, Any] = {"chat_ids": batch}
        if repos:
            body["repo_ids"] = repos[:100]
        try:
            data = await self.http.write("DELETE", f"{self._chats}/batch", json_body=body)
        except TemporaryError as exc:
            if not exc.sent:
                raise
            ledger.settle_all(batch, "unknown", exc.message)
            return
        except ProtocolError as exc:
            ledger.settle_all(batch, "unknown", exc.message)
            return
        except PermanentError as exc:
            ledger.settle_all(batch, "failed", exc.message)
            return
        deleted = count_of(data, "deleted_count", "deletedCount")
        total = count_of(data, "total_count", "totalCount")
        response = {k: v for k, v in (("total_count", total), ("deleted_count", deleted))
                    if v is not None}
        everything = deleted is not None and deleted >= len(batch)
        try:
            after = await self._lookup(batch)
        except ProviderError as exc:
            # Sent and answered: settle the batch before anything propagates, so that it is
            # read back by the job rather than sent again.
            ledger.settle_all(batch, "unknown", "KooSearch answered the delete, but reading "
                              f"it back failed ({exc.message})", response)
            if isinstance(exc, AuthError | RateLimited):
                raise
            return
        for chat_id in batch:
            state = state_of(after[chat_id])
            if state == "soft_deleted":
                ledger.settle(chat_id, "unknown", SOFT_DELETED, response)
            elif everything or state == "gone":
                ledger.settle(chat_id, "erased", "", response)
            else:
                ledger.settle(chat_id, "unknown", NOT_DELETED, response)

    async def verify(self, targets: Sequence[Target]) -> list[Presence]:
        chat_ids = [t.provider_id if t.kind == "conversation" else t.conversation_id
                    for t in targets]
        found = await self._lookup(chat_ids)
        return [Presence(t, state_of(found[c])) for t, c in zip(targets, chat_ids, strict=True)]


class _Ledger:
    """The outcomes of one erase(): targets that name the same chat share its outcome."""

    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = targets
        self.outcomes: dict[int, Outcome] = {}
        self.wanted: dict[str, list[int]] = {}
        for index, target in enumerate(targets):
            if target.kind != "conversation":
                self.outcomes[index] = Outcome(target, "failed", MESSAGE_REFUSED)
            elif not valid_id(target.provider_id):
                self.outcomes[index] = Outcome(target, "failed", INVALID_ID)
            else:
                self.wanted.setdefault(target.provider_id, []).append(index)

    def settle(self, chat_id: str, status: OutcomeStatus, detail: str,
               response: dict[str, Any] | None = None) -> None:
        for index in self.wanted[chat_id]:
            self.outcomes[index] = Outcome(self.targets[index], status, detail, response or {})

    def settle_all(self, chat_ids: Sequence[str], status: OutcomeStatus, detail: str,
                   response: dict[str, Any] | None = None) -> None:
        for chat_id in chat_ids:
            self.settle(chat_id, status, detail, response)

    def settled(self) -> list[Outcome]:
        return [self.outcomes[i] for i in sorted(self.outcomes)]
