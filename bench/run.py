"""`make bench`: speed at scale, each figure measured in one run against the fakes.

Creates (and drops) its own PostgreSQL database, runs each fake in its own process with
added latency and rate limits, and prints one ``name: value`` line per figure, also written
to ``var/bench.json`` (or ``--out``). Exits non-zero when a figure could not be measured;
a figure that misses its target is marked, not fatal. Timings live here, never in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.harness import (
    DB_NAME,
    IN_FLIGHT,
    LATENCY,
    ROOT,
    admin,
    connection_for,
    environment,
    fake,
    log,
    settle,
)

# (name, comparison, target)
TARGETS: dict[str, tuple[str, float]] = {
    "sync_floor_ratio": ("<=", 1.3),
    "sync_vs_sequential": (">=", 6),
    "ingest_rows_per_s": (">=", 40_000),
    "erase_budget_ratio": (">=", 0.9),
    "erase_429_per_min": ("<=", 1),
    "page_p95_ms_list": ("<=", 50),
    "page_p95_ms_transcript": ("<=", 50),
    "page_p95_ms_search": ("<=", 200),
    "page_p95_ms": ("<=", 50),
    "select_all_ms": ("<=", 2000),
    "default_vs_sequential": ("<=", 0.2),
    "adaptive_budget_ratio": (">=", 0.85),
    "adaptive_429_per_min": ("<=", 1),
    "adaptive_erase_ratio": (">=", 0.85),
    "select_all_200k_ms": ("<=", 3000),
    "sync_peak_rss_mb": ("<=", 300),
    "findings_overhead": ("<=", 0.2),
}




# -- sync -------------------------------------------------------------------------------


def sequential_sync(secrets: dict[str, str], options: dict[str, str]) -> int:
    """What the providers' sample code does: one request after another, page by page."""
    import httpx

    headers = {"Authorization": f"Token {secrets['token']}"}
    messages = 0
    with httpx.Client(base_url=options["neo_url"], headers=headers, timeout=30) as client:
        client.get("/chat/user/").raise_for_status()
        recent = client.get("/chats/recent/").json()["chats"]
        for char_id in dict.fromkeys(c["character_id"] for c in recent):
            chats = client.get("/chats/", params={"character_ids": char_id}).json()["chats"]
            for chat in chats:
                token = ""
                while True:
                    params = {"next_token": token} if token else {}
                    page = client.get(f"/turns/{chat['chat_id']}/", params=params).json()
                    messages += len(page["turns"])
                    token = (page.get("meta") or {}).get("next_token") or ""
                    if not token or not page["turns"]:
                        break
    return messages


SYNC_RUNS = 3


def timed_sync(owner: Any, f: Any, label: str, messages: int | None = None
               ) -> tuple[float, Any, Any]:
    """A new connection to the Character.AI fake ``f``, synced once from a reset fake:
    (seconds, the run, the connection). Raises unless it mirrored ``messages`` (when
    given)."""
    from dashboard.mirror import sync

    conn = connection_for(owner, "characterai", f.secrets, f.options, label)
    settle()
    f.ask("reset")
    started = time.perf_counter()
    run = sync.perform_sync(sync.start(conn).pk)
    elapsed = time.perf_counter() - started
    if run.status != "ok" or messages not in (None, run.messages):
        raise RuntimeError(f"{label}: the sync did not mirror {messages} messages: "
                           f"{run.status} {run.messages} {run.error}")
    conn.refresh_from_db()
    return elapsed, run, conn


def bench_sync(owner: Any) -> dict[str, float]:
    """Lethe's sync, the median of SYNC_RUNS runs (each a fresh connection, so a full sync):
    a shared machine's noise moves one run by ±5%; the median keeps the figure honest."""
    import statistics

    from django.conf import settings

    from dashboard.erasure import removal

    settings.LETHE_PROVIDER_RATE = 100_000.0  # the floor is latency-bound, not rate-bound
    with fake("characterai", characters=20, chats=100, turns=100, latency=LATENCY) as f:
        # Untimed: the fake builds each answer on its first reading (1.1 ms of processor
        # time a request against 0.24 after), which would weigh on the first run only.
        # Removed afterwards, so the parts after this one see the mirror they always saw.
        removal.remove(timed_sync(owner, f, "bench sync warm-up", 200_000)[2], owner)
        runs: list[tuple[float, int]] = []
        for attempt in range(SYNC_RUNS):
            elapsed, run, _ = timed_sync(owner, f, f"bench sync {attempt}", 200_000)
            stats = f.ask("stats")
            requests = stats["requests"]
            runs.append((elapsed, requests))
            log(f"sync: {run.messages} messages, {requests} requests in {elapsed:.2f} s "
                f"(floor {requests * LATENCY / IN_FLIGHT:.2f} s); the fake spent "
                f"{stats['cpu_seconds'] * 1e6 / requests:.0f} µs of processor time a request")
        elapsed, requests = sorted(runs)[len(runs) // 2]
        floor = requests * LATENCY / IN_FLIGHT
        f.ask("reset")
        started = time.perf_counter()
        seen = sequential_sync(f.secrets, f.options)
        sequential = time.perf_counter() - started
        log(f"sequential: {seen} messages in {sequential:.1f} s")
    return {"sync_floor_ratio": elapsed / floor, "sync_vs_sequential": sequential / elapsed,
            "sync_seconds": elapsed, "sync_requests": requests,
            "sync_spread_s": statistics.pstdev(e for e, _ in runs)}


def bench_default(owner: Any) -> dict[str, float]:
    """Lethe's sync as a person gets it (no rate pinned, a new connection that has learned
    nothing yet) against a one-request-at-a-time reader of the same API: 200 chats of 100
    turns, 20 ms latency, no limit announced. The median of SYNC_RUNS runs of each."""
    from django.conf import settings

    from dashboard.lib import ratebudget

    settings.LETHE_PROVIDER_RATE = 0.0
    ratios = []
    with fake("characterai", characters=2, chats=100, turns=100, latency=LATENCY) as f:
        for attempt in range(SYNC_RUNS):
            ratebudget.reset()
            elapsed, run, conn = timed_sync(owner, f, f"bench default {attempt}", 20_000)
            requests = f.ask("stats")["requests"]
            started = time.perf_counter()
            sequential_sync(f.secrets, f.options)
            sequential = time.perf_counter() - started
            log(f"default sync: {requests} requests in {elapsed:.2f} s, learned "
                f"{conn.pace_rate:.0f} requests/s; sequential {sequential:.2f} s")
            ratios.append(elapsed / sequential)
    return {"default_vs_sequential": sorted(ratios)[len(ratios) // 2]}


ADAPTIVE_LIMIT = 10  # requests/s the fake enforces and never announces


def per_minute_after(times: list[float], start: float, elapsed: float) -> float:
    """429s a minute after the first ``start`` seconds (0 when the work ended before)."""
    late = [t for t in times if t >= start]
    return len(late) / ((elapsed - start) / 60) if elapsed > start else 0.0


def bench_adaptive(owner: Any) -> dict[str, float]:
    """A sync under a limit the fake enforces but does not announce (no Retry-After), with
    nothing pinned and nothing learned: throughput ÷ that limit, and the 429s it cost."""
    from django.conf import settings

    from dashboard.lib import ratebudget

    settings.LETHE_PROVIDER_RATE = 0.0
    ratebudget.reset()
    with fake("characterai", characters=2, chats=200, turns=100, latency=LATENCY,
              rate_limit=ADAPTIVE_LIMIT, retry_after="none") as f:
        elapsed, run, conn = timed_sync(owner, f, "bench adaptive")
        stats = f.ask("stats")
    accepted = stats["requests"] - stats["throttled"]
    log(f"adaptive sync: {accepted} requests answered, {stats['throttled']} 429s "
        f"(at {[round(t) for t in stats['throttled_at']]} s) in {elapsed:.1f} s; "
        f"learned {conn.pace_rate:.2f} requests/s")
    return {"adaptive_budget_ratio": accepted / elapsed / ADAPTIVE_LIMIT,
            "adaptive_429_per_min": per_minute_after(stats["throttled_at"], 30, elapsed)}


def bench_ingest(owner: Any) -> dict[str, float]:
    from django.db import transaction
    from django.utils import timezone

    from dashboard.mirror import reader, sync, writer
    from dashboard.models import SyncRun
    from providers import records

    conn = connection_for(owner, "characterai", {"token": "x" * 40}, {}, "bench ingest")
    run = SyncRun.objects.create(connection=conn)
    base = datetime(2025, 1, 1, tzinfo=UTC)
    convs = [records.Conversation(provider_id=f"chat-{c}", character_id="char",
                                  title="", started_at=base) for c in range(2000)]
    batches = [
        (conv.provider_id, [
            records.Message(provider_id=f"{conv.provider_id}-{p}",
                            conversation_id=conv.provider_id, position=p,
                            author="You" if p % 2 else "Character", is_human=bool(p % 2),
                            text=f"Line {p} of a chat about mountains, rivers and coffee.",
                            created_at=base + timedelta(seconds=p))
            for p in range(100)])
        for conv in convs
    ]
    listing = reader.Listed(records.Account(id="1", name="bench"),
                            [records.Character(provider_id="char", name="Char")], convs)
    # The process settings every sync's writer runs under (`sync.responsive_reader`).
    with sync.responsive_reader(), transaction.atomic():
        into = writer.Writer(conn, run, {})
        into.write_listing(listing)
        started = time.perf_counter()
        for pid, msgs in batches:
            into.add_whole(pid, msgs)
        into.flush()
        elapsed = time.perf_counter() - started
    rows = sum(len(m) for _, m in batches)
    log(f"ingest: {rows} rows in {elapsed:.2f} s at {timezone.now():%H:%M:%S}")
    return {"ingest_rows_per_s": rows / elapsed}


# -- findings ---------------------------------------------------------------------------

FINDINGS_ROUNDS = 5


def _texts(convs: int, every: int) -> list[list[str]]:
    """``convs`` chats of 100 messages, one in ``every`` holding a planted secret or
    personal datum, the others plain chat with a few digits (times, days)."""
    from providers.fakes.planted import PLANTED, line

    kinds = list(PLANTED)
    return [[line(kinds[(c + p) % len(kinds)]) if (c * 100 + p) % every == 0 else
             f"Line {p} of a chat about mountains, rivers and coffee at 7:30 on day {c}."
             for p in range(100)] for c in range(convs)]


def _ingest_seconds(owner: Any, label: str, convs: int, every: int) -> float:
    """The writer's bulk path over `_texts`; rolled back afterwards."""
    from django.db import transaction

    from dashboard.mirror import reader, sync, writer
    from dashboard.models import SyncRun
    from providers import records

    conn = connection_for(owner, "characterai", {"token": "x" * 40}, {}, label)
    run = SyncRun.objects.create(connection=conn)
    base = datetime(2025, 1, 1, tzinfo=UTC)
    chats = [records.Conversation(provider_id=f"chat-{c}", character_id="char", title="",
                                  started_at=base) for c in range(convs)]
    batches = [(chat.provider_id, [records.Message(
        provider_id=f"{chat.provider_id}-{p}", conversation_id=chat.provider_id, position=p,
        author="You" if p % 2 else "Character", is_human=bool(p % 2), text=said,
        created_at=base + timedelta(seconds=p)) for p, said in enumerate(lines)])
        for chat, lines in zip(chats, _texts(convs, every), strict=True)]
    listing = reader.Listed(records.Account(id="1", name="bench"),
                            [records.Character(provider_id="char", name="Char")], chats)
    with sync.responsive_reader(), transaction.atomic():
        into = writer.Writer(conn, run, {})
        into.write_listing(listing)
        started = time.perf_counter()
        for pid, msgs in batches:
            into.add_whole(pid, msgs)
        into.flush()
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)
    return elapsed


def bench_findings(owner: Any) -> dict[str, float]:
    """What detection adds to ingest and to a sync: the same work with LETHE_FINDINGS off
    and on, alternated FINDINGS_ROUNDS times, so that a busy machine's drift weighs on
    both sides alike. One message in a hundred holds something to find."""
    from django.conf import settings

    ingest: dict[bool, list[float]] = {False: [], True: []}
    for attempt in range(FINDINGS_ROUNDS):
        for on in (False, True):
            settings.LETHE_FINDINGS = on
            ingest[on].append(_ingest_seconds(owner, f"bench findings {attempt} {on}", 500,
                                              100))
    settings.LETHE_PROVIDER_RATE = 100_000.0
    synced: dict[bool, list[float]] = {False: [], True: []}
    with fake("characterai", characters=5, chats=20, turns=100, latency=LATENCY) as f:
        for attempt in range(FINDINGS_ROUNDS):
            for on in (False, True):
                settings.LETHE_FINDINGS = on
                synced[on].append(timed_sync(owner, f, f"bench findings sync {attempt} {on}")[0])
    settings.LETHE_FINDINGS = True
    # Detection's own processor time, which a busy machine stretches less than wall time.
    from dashboard.mirror.findings import scanner

    texts = [t for chat in _texts(500, 100) for t in chat]
    scan = scanner()
    cpu = []
    for _ in range(FINDINGS_ROUNDS):
        started = time.process_time()
        if scan is not None:
            list(scan.scan_many(texts))
        cpu.append(time.process_time() - started)
    # The fastest of each: other load on the machine only ever adds time.
    ingest_ratio = min(ingest[True]) / min(ingest[False]) - 1
    sync_ratio = min(synced[True]) / min(synced[False]) - 1
    log(f"findings: ingest {min(ingest[False]):.2f} s off, {min(ingest[True]):.2f} s on; "
        f"sync {min(synced[False]):.2f} s off, {min(synced[True]):.2f} s on "
        f"(fastest of {FINDINGS_ROUNDS})")
    return {"findings_overhead": max(ingest_ratio, sync_ratio),
            "findings_overhead_ingest": ingest_ratio, "findings_overhead_sync": sync_ratio,
            "findings_cpu_us_per_message": min(cpu) / len(texts) * 1e6}


# -- erasure ----------------------------------------------------------------------------


def bench_erase(owner: Any) -> dict[str, float]:
    """An erasure of 12,000 sessions with the budget pinned at the fake's limit."""
    figures = erase_against_limit(owner, pinned=True)
    return {"erase_budget_ratio": figures["ratio"], "erase_429_per_min": figures["per_min"],
            "erase_requests_per_s": figures["requests_per_s"]}


def bench_adaptive_erase(owner: Any) -> dict[str, float]:
    """The same erasure with nothing pinned, under a limit the fake does not announce."""
    figures = erase_against_limit(owner, pinned=False)
    return {"adaptive_erase_ratio": figures["ratio"],
            "adaptive_erase_429_per_min": figures["late_per_min"]}


def erase_against_limit(owner: Any, *, pinned: bool) -> dict[str, float]:
    from django.conf import settings
    from django.db import connections

    from dashboard.erasure import freeze, lifecycle, worker
    from dashboard.lib import ratebudget
    from dashboard.models import Character, Conversation, ErasureItem, ErasureJob

    rate, batch, sessions = 10, 100, 12_000
    settings.LETHE_PROVIDER_RATE = float(rate) if pinned else 0.0
    settings.LETHE_APPROVAL_THRESHOLD = 10**9
    settings.LETHE_CANCEL_WINDOW = 0
    ratebudget.reset()
    with fake("convai", characters=1, chats=sessions, latency=LATENCY, rate_limit=rate,
              retry_after="1" if pinned else "none") as f:
        conn = connection_for(owner, "convai", f.secrets, f.options,
                              f"bench erase {'pinned' if pinned else 'adaptive'}")
        pairs = f.ask("stats")["ids"]
        chars = {c: Character.objects.create(connection=conn, provider_id=c, name=c)
                 for c in {c for c, _ in pairs}}
        Conversation.objects.bulk_create([
            Conversation(connection=conn, provider_id=s, character=chars[c],
                         last_message_at=datetime(2025, 1, 1, tzinfo=UTC))
            for c, s in pairs], batch_size=5000)
        request = freeze.conversations(owner, conn.conversations.all(), {})
        jobs = list(ErasureJob.objects.filter(request=request))
        [job] = lifecycle.confirm(jobs, dry_run=False, enqueue=False)
        settle()
        time.sleep(1.1)  # let the fake's rate window forget the set-up
        f.ask("reset")

        def work() -> None:
            try:
                worker.work_job(job.pk)
            finally:
                connections.close_all()

        started = time.perf_counter()
        # As many workers as a confirmed job is queued for (LETHE_ERASE_WORKERS).
        workers = [threading.Thread(target=work) for _ in range(settings.LETHE_ERASE_WORKERS)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - started
        stats = f.ask("stats")
    done = ErasureItem.objects.filter(
        job=job, state__in=[ErasureItem.State.ERASED, ErasureItem.State.VERIFIED]).count()
    if done != sessions:
        raise RuntimeError(f"erasure settled {done} of {sessions} items")
    ceiling = rate * batch
    conn.refresh_from_db()
    log(f"erase ({'pinned' if pinned else 'adaptive'}): {done} items, {stats['requests']} "
        f"requests, {stats['throttled']} 429s in {elapsed:.1f} s"
        + ("" if pinned else f", learned {conn.pace_rate:.2f} requests/s"))
    return {"ratio": done / elapsed / ceiling,
            "per_min": stats["throttled"] / (elapsed / 60),
            "late_per_min": per_minute_after(stats["throttled_at"], 30, elapsed),
            "requests_per_s": stats["requests"] / elapsed}


# -- pages ------------------------------------------------------------------------------


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, int(round(0.95 * len(ordered))) - 1)]


def timed(call: Callable[[], Any], expect: int = 200) -> float:
    started = time.perf_counter()
    response = call()
    ms = (time.perf_counter() - started) * 1000
    if response.status_code != expect:
        raise RuntimeError(f"{response.status_code} from a page under test")
    return ms


def bench_pages(owner: Any) -> dict[str, float]:
    import random
    import re

    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from dashboard.models import Conversation, ErasureItem, ErasureJob

    conn = connection_for(owner, "characterai", {"token": "x" * 40}, {}, "bench pages")
    started = time.perf_counter()
    call_command("seed_mirror", str(conn.pk), conversations=20_000, messages=50,
                 stdout=open(os.devnull, "w"))  # noqa: SIM115
    log(f"seeded 1,000,000 messages in {time.perf_counter() - started:.1f} s")
    settle()
    client = Client()
    client.force_login(owner)
    url = reverse("conversations")
    lists, searches, transcripts = [], [], []
    after = ""
    client.get(url)  # warm-up: template loading, first connection
    for _ in range(30):
        started = time.perf_counter()
        response = client.get(url, {"after": after} if after else {})
        lists.append((time.perf_counter() - started) * 1000)
        found = re.search(r"after=([A-Za-z0-9_\-]+)", response.content.decode())
        after = found.group(1) if found else ""
    for word in ["zeppelin", "quasar", "marmalade", "obsidian", "dragon castle"] * 6:
        searches.append(timed(lambda w=word: client.get(url, {"q": w})))  # type: ignore[misc]
    pks = list(Conversation.objects.filter(connection=conn).values_list("pk", flat=True)[:2000])
    for pk in random.Random(1).sample(pks, 30):
        page = reverse("transcript", args=[pk])
        transcripts.append(timed(lambda page=page: client.get(page)))  # type: ignore[misc]
    figures = {"page_p95_ms_list": p95(lists), "page_p95_ms_search": p95(searches),
               "page_p95_ms_transcript": p95(transcripts)}
    figures["page_p95_ms"] = max(figures["page_p95_ms_list"],
                                 figures["page_p95_ms_transcript"])

    matching = Conversation.objects.filter(connection=conn, mirror_state="present").count()
    settle()
    started = time.perf_counter()
    # As a person would: the list filtered to this connection, then "Select all N matching"
    # (the bench's owner also sees the connections of the parts before this one).
    response = client.post(reverse("erase_selected"),
                           {"select_all": "1", "connection": str(conn.pk)})
    if response.status_code != 302:
        raise RuntimeError(f"select all answered {response.status_code}")
    preview = client.get(response["Location"])
    select_ms = (time.perf_counter() - started) * 1000
    if preview.status_code != 200:
        raise RuntimeError(f"the preview answered {preview.status_code}")
    # One conversation item per match; a conversation holding a pinned message is also
    # frozen message by message (sent instead if pinned messages are kept).
    request = ErasureJob.objects.latest("pk").request
    if set(ErasureJob.objects.filter(request=request).values_list("connection", flat=True)
           ) != {conn.pk}:
        raise RuntimeError("select all froze conversations of another connection")
    frozen = ErasureItem.objects.filter(job__request=request, kind="conversation").count()
    if frozen != matching:
        raise RuntimeError(f"select all froze {frozen} conversations for {matching} matching")
    items = ErasureItem.objects.filter(job__request=request).count()
    log(f"select all: {frozen} conversations ({items} items) frozen and previewed in "
        f"{select_ms:.0f} ms")
    figures["select_all_ms"] = select_ms
    return figures


def bench_select(owner: Any) -> dict[str, float]:
    """A message-level selection of 200,000 messages matching a filter, frozen into a draft
    job and previewed (the page a person then sees), from a cold start."""
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from dashboard.erasure import freeze
    from dashboard.models import ErasureItem, Message

    conn = connection_for(owner, "characterai", {"token": "x" * 40}, {}, "bench select")
    call_command("seed_mirror", str(conn.pk), conversations=4_000, messages=50,
                 stdout=open(os.devnull, "w"))  # noqa: SIM115
    chosen = Message.objects.filter(conversation__connection=conn,
                                    created_at__gte=datetime(2000, 1, 1, tzinfo=UTC))
    client = Client()
    client.force_login(owner)
    settle()
    started = time.perf_counter()
    request = freeze.messages(owner, chosen, {"messages": True, "select_all": True})
    frozen_ms = (time.perf_counter() - started) * 1000
    preview = client.get(reverse("erase_preview", args=[request]))
    select_ms = (time.perf_counter() - started) * 1000
    if preview.status_code != 200:
        raise RuntimeError(f"the preview answered {preview.status_code}")
    frozen = ErasureItem.objects.filter(job__request=request).count()
    if frozen != 200_000:
        raise RuntimeError(f"froze {frozen} items for 200,000 messages")
    log(f"select 200k: frozen in {frozen_ms:.0f} ms, previewed by {select_ms:.0f} ms "
        f"({frozen_ms * 1000 / frozen:.1f} µs an item to freeze)")
    return {"select_all_200k_ms": select_ms}


# -- memory -----------------------------------------------------------------------------


def bench_rss(env: dict[str, str]) -> dict[str, float]:
    with fake("characterai", characters=100, chats=100, turns=100, latency=0) as f:
        config = json.dumps({"secrets": f.secrets, "options": f.options})
        started = time.perf_counter()
        done = subprocess.run(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "bench.rss_worker", config], cwd=ROOT, capture_output=True,
            text=True, env={**os.environ, **env, "LETHE_PROVIDER_RATE": "100000"}, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the 1M-message sync failed: {done.stderr[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        log(f"1M sync: {result['messages']} messages in {time.perf_counter() - started:.1f} s,"
            f" peak RSS {result['peak_rss_mb']:.0f} MB")
    if result["messages"] != 1_000_000:
        raise RuntimeError(f"the big sync mirrored {result['messages']} messages")
    return {"sync_peak_rss_mb": result["peak_rss_mb"]}


# -- main -------------------------------------------------------------------------------


def verdict(name: str, value: float) -> str:
    if name not in TARGETS:
        return ""
    op, target = TARGETS[name]
    ok = value <= target if op == "<=" else value >= target
    return f"  (target {op} {target:g}: {'ok' if ok else 'MISSED'})"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "var" / "bench.json"))
    parser.add_argument("--only", nargs="*", help="sync default adaptive ingest erase "
                        "adaptive_erase pages select rss findings")
    args = parser.parse_args()
    env = environment()
    os.environ.update(env)
    admin(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    admin(f"CREATE DATABASE {DB_NAME}")
    figures: dict[str, float] = {}
    failures: list[str] = []
    began = time.perf_counter()
    try:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from django.conf import settings

        # As in production: DEBUG keeps every SQL statement in memory and formats it.
        settings.DEBUG = False
        owner = get_user_model().objects.create_superuser("bench", password=None)
        steps: list[tuple[str, Callable[[], dict[str, float]]]] = [
            ("sync", lambda: bench_sync(owner)),
            ("default", lambda: bench_default(owner)),
            ("adaptive", lambda: bench_adaptive(owner)),
            ("ingest", lambda: bench_ingest(owner)),
            ("erase", lambda: bench_erase(owner)),
            ("adaptive_erase", lambda: bench_adaptive_erase(owner)),
            ("pages", lambda: bench_pages(owner)),
            ("select", lambda: bench_select(owner)),
            ("rss", lambda: bench_rss(env)),
            ("findings", lambda: bench_findings(owner)),
        ]
        for name, step in steps:
            if args.only and name not in args.only:
                continue
            try:
                figures.update(step())
            except Exception as exc:
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
                log(f"{name} FAILED: {traceback.format_exc()}")
        from django.db import connections

        connections.close_all()
    finally:
        admin(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    for name, value in figures.items():
        shown = f"{value:.0f}" if value >= 100 else f"{value:.3g}"
        print(f"{name}: {shown}{verdict(name, value)}")
    print(f"bench_seconds: {time.perf_counter() - began:.0f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"figures": figures, "failures": failures,
                               "targets": {k: list(v) for k, v in TARGETS.items()}}, indent=1))
    wanted = [k for k in TARGETS if not args.only]
    missing = [k for k in wanted if k not in figures]
    if failures or missing:
        print(f"bench FAILED: could not measure {', '.join(missing) or '-'}; "
              f"{'; '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
