"""What every fake provider shares: fault knobs, counters, and two ways to be reached.

A fake is a plain, thread-safe handler ``handle(method, path, headers, body)`` returning a
``FakeResponse``. ``transport()`` wraps it as an httpx transport for fast in-process tests;
``serve()`` puts it behind a real loopback HTTP server for the demo, end-to-end tests and
benchmarks. Both apply the same faults, so a test proves the same thing either way.

Faults are applied in this order: rate limit, queued failures (``fail_next``), the route
itself, then ``malformed_next`` (which replaces the body of a 200 after the route ran, like
a server that acted but garbled its answer). ``reset_after_delete_next`` is honoured by the
routes that delete: the state change happens, then the connection is dropped unanswered.

A fake's data can outlive its process: ``dump()``/``load()`` give it as plain JSON, routes
call ``changed()`` after they mutate it, and ``persist(path)`` keeps a file up to date.
"""

from __future__ import annotations

import abc
import asyncio
import bisect
import json
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, NamedTuple, Self

import httpx

log = logging.getLogger("providers.fakes")


class FakeResponse(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


class ConnectionDropped(Exception):
    """Raised by ``handle`` after a state change: the transport answers nothing at all."""


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None
                  ) -> FakeResponse:
    return FakeResponse(
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(payload).encode(),
    )


class FakeProvider(abc.ABC):
    """Base of every fake: knobs for faults and the counters tests assert on."""

    name: ClassVar[str]

    def __init__(self, *, latency: float = 0.0, rate_limit: float | None = None,
                 retry_after: float | None = 1.0, plan_gated_delete: bool = False) -> None:
        self.lock = threading.RLock()
        self.latency = latency  # seconds from a request's arrival to its answer
        self.rate_limit = rate_limit  # requests per second; beyond it a 429
        # Seconds announced in Retry-After on a 429; None: a limit that says nothing (no
        # Retry-After), as a provider whose limit is undocumented may well answer.
        self.retry_after: float | None = retry_after
        # Slowing down under load: beyond ``slow_above`` arrivals in the last second, every
        # further one adds ``slowdown`` seconds to each answer (a provider struggling).
        self.slow_above: float | None = None
        self.slowdown = 0.0
        self.plan_gated_delete = plan_gated_delete
        self.requests: Counter[str] = Counter()  # "POST /path" -> requests received
        self.deletes: Counter[str] = Counter()  # item id -> successful deletes
        self.answered_429 = 0  # requests answered 429 (over the rate limit, or injected)
        self.arrivals: list[float] = []  # when each request arrived (monotonic), in order
        # Serve text no database can store (a NUL, a lone surrogate), as JSON may carry it.
        self.odd_text = False
        # Requests being answered right now over HTTP, and the most there ever were at once.
        self.in_flight = 0
        self.peak_in_flight = 0
        self._failures: list[tuple[int, str | None]] = []
        self._unavailable_until = 0.0  # monotonic; until then every request gets a 503
        self._malformed = 0
        self._stalls: list[float] = []
        self._resets = 0
        self._recent: list[float] = []  # arrival times, sorted
        # Called (under the lock) after a route changed the data; see ``persist``.
        self.on_change: Callable[[], None] | None = None

    # -- knobs ---------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 503, path: str | None = None) -> None:
        """Answer the next ``n`` requests (to ``path`` only, if given) with ``status``.

        A 429 carries Retry-After. The route does not run, so nothing changes.
        """
        with self.lock:
            self._failures.extend([(status, path)] * n)

    def unavailable_for(self, seconds: float) -> None:
        """Answer every request with a 503 for ``seconds``, as a provider in an outage."""
        with self.lock:
            self._unavailable_until = time.monotonic() + seconds

    def stall_next(self, n: int = 1, seconds: float = 2.0) -> None:
        """Hold the next ``n`` answers for ``seconds`` after the route ran: a client with a
        shorter timeout gives up on a request the provider did act on."""
        with self.lock:
            self._stalls.extend([seconds] * n)

    def take_stall(self) -> float:
        with self.lock:
            return self._stalls.pop(0) if self._stalls else 0.0

    def malformed_next(self, n: int = 1) -> None:
        with self.lock:
            self._malformed += n

    def reset_after_delete_next(self, n: int = 1) -> None:
        with self.lock:
            self._resets += n

    def clear_faults(self) -> None:
        """Forget queued faults, counters and the rate window; keep the data."""
        with self.lock:
            self._failures.clear()
            self._unavailable_until = 0.0
            self._malformed = self._resets = 0
            self._stalls.clear()
            self._recent.clear()
            self.requests.clear()
            self.deletes.clear()
            self.answered_429 = 0
            self.arrivals.clear()
            self.peak_in_flight = self.in_flight

    ODD = "odd \u0000 text \ud800 here"

    def text(self, value: str) -> str:
        """Message text as served: with ``odd_text``, the database's worst case around it."""
        return f"{self.ODD} {value}" if self.odd_text else value

    @abc.abstractmethod
    def reset(self) -> None:
        """Rebuild the seeded data and forget faults and counters (each fake's own)."""

    def count(self, method: str, path: str) -> int:
        with self.lock:
            return self.requests[f"{method} {path}"]

    # -- for subclasses ------------------------------------------------------------------

    # The contract every fake keeps, so one provider test suite can drive them all; ``name``
    # is the registry name of the client it fakes.

    @classmethod
    @abc.abstractmethod
    def sized(cls, *, conversations: int, messages: int, seed: int = 0) -> Self:
        """A fake holding exactly ``conversations`` conversations of at least ``messages``
        messages each (0 allowed), for paging edge cases."""

    @abc.abstractmethod
    def client_config(self, base_url: str) -> tuple[dict[str, str], dict[str, str]]:
        """The (secrets, options) a client needs to reach this fake at ``base_url``."""

    @abc.abstractmethod
    def conversation_ids(self) -> set[str]:
        """Every conversation the provider still returns (soft-deleted ones included)."""

    @abc.abstractmethod
    def message_ids(self, conversation_id: str) -> list[str]:
        """The ids a client sees for this conversation's messages, oldest first."""

    @abc.abstractmethod
    def revoke_credentials(self) -> None:
        """From now on the credentials of ``client_config`` are refused (401)."""

    def people_lines(self) -> Iterator[tuple[str, Callable[[str], None]]]:
        """Each line a person wrote, in a fixed order: (the id a client sees for it, or for
        its conversation where lines have none of their own; a setter of its text). Called
        with the lock held."""
        raise NotImplementedError(f"{type(self).__name__} cannot plant lines")

    def plant(self, kinds: Sequence[str]) -> dict[str, str]:
        """Put one line holding a planted value (`planted.PLANTED`) of each kind where a
        person wrote one; returns where, by kind (see `people_lines`)."""
        from .planted import line

        placed: dict[str, str] = {}
        with self.lock:
            for kind, (ident, set_text) in zip(kinds, self.people_lines(), strict=False):
                set_text(line(kind))
                placed[kind] = ident
        if len(placed) < len(kinds):
            raise ValueError(f"{self.name} holds fewer lines by people than kinds to plant")
        return placed


    @abc.abstractmethod
    def route(self, method: str, path: str, headers: Mapping[str, str], body: bytes
              ) -> FakeResponse:
        """The provider's behaviour; ``headers`` keys are lower-case."""

    def error(self, status: int, text: str, headers: Mapping[str, str] | None = None
              ) -> FakeResponse:
        """An error in the provider's own shape."""
        return json_response(status, {"error": text}, headers)

    def record_delete(self, item_id: str) -> None:
        self.deletes[item_id] += 1

    def changed(self) -> None:
        """Called by a route, under the lock, after it changed the data."""
        if self.on_change is not None:
            self.on_change()

    def take_reset(self) -> bool:
        """Called by a delete route after its state change: drop this connection?"""
        if self._resets:
            self._resets -= 1
            return True
        return False

    # -- persistence ---------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """The fake's data (not its knobs or counters) as JSON-serialisable values."""
        raise NotImplementedError(f"the {self.name} fake cannot be saved")

    def load(self, data: Mapping[str, Any]) -> None:
        """Replace the fake's data with what ``dump`` returned."""
        raise NotImplementedError(f"the {self.name} fake cannot be loaded")

    def save(self, path: Path) -> None:
        """Write ``dump()`` to ``path`` atomically: a temporary file, then ``os.replace``."""
        with self.lock:
            payload = json.dumps(self.dump(), indent=1)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(payload)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def persist(self, path: Path) -> bool:
        """Keep the data in ``path``: load it if the file exists, else write the current data;
        then save after every change. Returns whether existing data was loaded."""
        with self.lock:
            loaded = path.exists()
            if loaded:
                self.load(json.loads(path.read_text(encoding="utf-8")))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.save(path)
            self.on_change = lambda: self.save(path)
            return loaded

    # -- the handler ---------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes,
               arrived: float | None = None) -> FakeResponse:
        """Answer one request; ``arrived`` (monotonic) is when it reached the fake, which is
        what the rate limit counts, as a provider's edge does, however long the answer
        then takes (latency, or this lock held while another answer is built)."""
        path = path.split("?", 1)[0]
        lowered = {k.lower(): v for k, v in headers.items()}
        arrived = time.monotonic() if arrived is None else arrived
        with self.lock:
            self.requests[f"{method} {path}"] += 1
            self.arrivals.append(arrived)
            if self._over_rate(arrived):
                return self._too_many()
            status = self._take_failure(path)
            if status is not None:
                if status == 429:
                    return self._too_many()
                return self.error(status, "Injected failure")
            try:
                response = self.route(method, path, lowered, body)
            except ConnectionDropped:
                raise
            except Exception:  # a bug in the fake must look like a 500, not hang a test
                log.exception("fake %s crashed on %s %s", self.name, method, path)
                return self.error(500, "INTERNAL SERVER ERROR")
            if self._malformed and response.status == 200:
                self._malformed -= 1
                return FakeResponse(200, {"Content-Type": "application/json"}, b'{"status": ')
            return response

    def answer_wait(self, arrived: float) -> float:
        """Seconds to hold an answer so that it leaves ``latency`` after the request arrived
        (more under load, see ``slow_above``): the provider's time, of which the fake's own
        work is part, not added on top."""
        latency = self.latency + self._load_delay(arrived)
        return latency - (time.monotonic() - arrived) if latency else 0.0

    def _load_delay(self, arrived: float) -> float:
        if self.slow_above is None:
            return 0.0
        with self.lock:
            times = self.arrivals
            recent = bisect.bisect_right(times, arrived) - bisect.bisect_left(
                times, arrived - 1.0)
        return max(0.0, recent - self.slow_above) * self.slowdown

    def _take_failure(self, path: str) -> int | None:
        if time.monotonic() < self._unavailable_until:
            return 503
        for index, (status, only) in enumerate(self._failures):
            if only is None or only == path:
                del self._failures[index]
                return status
        return None

    def _over_rate(self, arrived: float) -> bool:
        """At most ``rate_limit`` arrivals in any one-second window. Requests may be handled
        a little out of their arrival order, so every window holding this arrival counts,
        not only the second before it."""
        if not self.rate_limit:
            return False
        recent = self._recent  # sorted arrival times of the last two seconds or so
        while recent and arrived - recent[0] >= 2.0:
            recent.pop(0)
        lo = bisect.bisect_right(recent, arrived - 1.0)
        points = recent[lo:bisect.bisect_left(recent, arrived + 1.0)]
        bisect.insort(points, arrived)
        for i, start in enumerate(points):
            if start > arrived:
                break
            # [start, start + 1 s) holds this arrival: count what falls in it.
            if bisect.bisect_left(points, start + 1.0) - i > self.rate_limit:
                return True
        bisect.insort(recent, arrived)
        return False

    def busiest(self, seconds: float = 1.0) -> int:
        """The most requests that arrived within any ``seconds`` (what a provider counting
        arrivals in a sliding window sees at its worst)."""
        with self.lock:
            times = sorted(self.arrivals)
        return max((bisect.bisect_left(times, t + seconds) - i for i, t in enumerate(times)),
                   default=0)

    def _too_many(self) -> FakeResponse:
        self.answered_429 += 1
        if self.retry_after is None:
            return self.error(429, "Too many requests")
        return self.error(429, "Too many requests", {"Retry-After": f"{self.retry_after:g}"})

    # -- ways to reach it ----------------------------------------------------------------

    def transport(self) -> httpx.AsyncBaseTransport:
        """An in-process httpx transport; a dropped connection raises RemoteProtocolError."""

        async def handler(request: httpx.Request) -> httpx.Response:
            arrived = time.monotonic()
            stall = self.take_stall()
            try:
                answer = self.handle(request.method, request.url.raw_path.decode(),
                                     dict(request.headers), request.content, arrived)
            except ConnectionDropped:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                ) from None
            if (wait := self.answer_wait(arrived)) > 0:
                await asyncio.sleep(wait)
            if stall:
                await asyncio.sleep(stall)
            return httpx.Response(answer.status, headers=answer.headers, content=answer.body)

        return httpx.MockTransport(handler)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> FakeServer:
        """A real HTTP server on loopback in a daemon thread; ``port=0`` picks a free one."""
        return FakeServer(self, host, port)


class FakeServer:
    """A running loopback server; stop it with ``stop()`` or use it as a context manager."""

    def __init__(self, fake: FakeProvider, host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"fake": fake})
        self.fake = fake
        self._httpd = _Server((host, port), handler)
        self._httpd.daemon_threads = True
        bound = self._httpd.server_address[1]
        self.url = f"http://{host}:{bound}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"fake-{fake.name}-{bound}", daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop as a crashed provider does: new connections are refused and open ones
        (clients keep them alive) are cut, answers under way included."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.cut_connections()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    """Remembers its open connections, so that stopping it can cut them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a cut connection is no error here
            super().handle_error(request, client_address)

    def cut_connections(self) -> None:
        with self._open_lock:
            cut, self._open = self._open, set()
        for request in cut:
            try:
                request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its client


class _Handler(BaseHTTPRequestHandler):
    fake: ClassVar[FakeProvider]
    # Keep-alive like a real API, so clients exercise their connection pools.
    protocol_version = "HTTP/1.1"
    # Small writes must not wait for an ACK (Nagle) as the client waits for the answer.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        # The stdlib would print every request line to stderr.
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        arrived = time.monotonic()
        with self.fake.lock:
            self.fake.in_flight += 1
            self.fake.peak_in_flight = max(self.fake.peak_in_flight, self.fake.in_flight)
        try:
            self._answer(body, arrived)
        finally:
            with self.fake.lock:
                self.fake.in_flight -= 1

    def _answer(self, body: bytes, arrived: float) -> None:
        stall = self.fake.take_stall()
        try:
            answer = self.fake.handle(self.command, self.path, dict(self.headers.items()), body,
                                      arrived)
        except ConnectionDropped:
            self.close_connection = True
            return
        if (wait := self.fake.answer_wait(arrived)) > 0:
            time.sleep(wait)
        if stall:
            time.sleep(stall)
        self.send_response(answer.status)
        for key, value in answer.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.body)))
        # end_headers() without its flush, then the body: the whole answer leaves in one
        # write, as from a real server, not as a head and a body the client reads apart.
        self._headers_buffer.append(b"\r\n")  # type: ignore[attr-defined]
        self._headers_buffer.append(answer.body)  # type: ignore[attr-defined]
        self.flush_headers()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
