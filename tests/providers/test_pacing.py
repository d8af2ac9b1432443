"""Adaptive pacing: a connection's rate learned from the provider's answers, over real HTTP
against a fake that enforces a limit it does not announce."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from providers.fakes import ConvaiFake, FakeServer
from providers.fakes.convai import DEMO_KEY
from providers.http import HttpClient
from providers.pacing import (
    CLIMB_PER_MINUTE,
    AdaptiveBudget,
    Latency,
    Pace,
    exhausted,
    raised,
    refused,
)
from tests.providers.loopback import policy

LIST = "/character/list"


@pytest.fixture
def limited() -> Iterator[tuple[ConvaiFake, FakeServer]]:
    fake = ConvaiFake(seed=3, characters=1, sessions=1, latency=0.002, rate_limit=40,
                      retry_after=None)
    with fake.serve() as server:
        yield fake, server


async def _hammer(url: str, budget: AdaptiveBudget, requests: int, workers: int = 4
                  ) -> None:
    """``workers`` clients of one connection sending ``requests`` reads in all."""
    left = [requests]

    async def one() -> None:
        async with HttpClient(url, label="Convai", budget=budget,
                              policy=policy(backoff=0.01, retries=5),
                              headers={"CONVAI-API-KEY": DEMO_KEY}) as client:
            while left[0] > 0:
                left[0] -= 1
                await client.read("POST", LIST)

    await asyncio.gather(*(one() for _ in range(workers)))


def test_an_unannounced_limit_is_found_and_kept_under(limited):
    fake, server = limited
    budget = AdaptiveBudget(5.0)
    asyncio.run(_hammer(server.url, budget, 180))
    pace = budget.pace
    # It raised the rate past the limit, met 429s (with no Retry-After to go by)...
    assert fake.answered_429 > 0, pace
    assert not pace.probing and pace.last_429 > 0, pace
    # ...and cut to under what the provider allows, without collapsing.
    assert 40 * 0.5 <= pace.rate < 40 * 1.05, (pace, fake.answered_429)


def test_a_second_429_soon_after_cuts_harder_and_a_burst_in_flight_counts_once():
    pace = Pace(rate=20.0, changed_at=100.0)
    cut = refused(pace, now=101.0, granted=100.5, seen=17, ceiling=None)
    assert cut is not None and cut.rate == pytest.approx(0.97 * 17)
    # Answers to requests granted before that cut say nothing of the new rate.
    assert refused(cut, now=101.1, granted=100.9, seen=18, ceiling=None) is None
    # Soon after, it took far fewer than was sent: the estimate was wrong, cut harder.
    again = refused(cut, now=103.0, granted=102.0, seen=10, ceiling=None)
    assert again is not None and again.rate == pytest.approx(cut.rate * 0.7)


def test_a_second_429_when_the_provider_took_most_of_what_was_sent_settles_under_it():
    """Close to the limit, a second refusal soon after is a near miss, not a wrong
    estimate: the second counted at the first cut held one request too many, or one
    delayed on its way arrived with the next. Dropping to 70 % for it cost an erasure of
    12,000 items a third of its speed."""
    cut = refused(Pace(rate=40.0, changed_at=100.0), now=101.0, granted=100.5, seen=11,
                  ceiling=None)
    assert cut is not None and cut.rate == pytest.approx(0.97 * 11)  # one too many
    near = refused(cut, now=104.0, granted=103.5, seen=10, ceiling=None)
    assert near is not None and near.rate == pytest.approx(0.97 * 10)
    late = refused(near, now=106.0, granted=105.5, seen=10, ceiling=None)
    assert late is not None and late.rate == pytest.approx(0.97 * 0.97 * 10)
    far = refused(near, now=106.0, granted=105.5, seen=5, ceiling=None)
    assert far is not None and far.rate == pytest.approx(0.97 * 10 * 0.7)


def test_after_a_cut_the_rate_comes_back_up_and_probes_past_the_limit_again():
    cut = refused(Pace(rate=20.0, changed_at=0.0), now=10.0, granted=9.0, seen=10,
                  ceiling=None)
    assert cut is not None and cut.rate < 10
    pace, now = cut, 10.0
    for _ in range(120):  # two minutes of clean answers, one every second
        now += 1.0
        pace = raised(pace, now=now, granted=now - 0.5, ceiling=None) or pace
    assert pace.rate > 10  # back above what the provider refused at: probing again
    assert pace.rate == pytest.approx(cut.rate + 10 * CLIMB_PER_MINUTE * 2, rel=0.05)
    # Never above a ceiling.
    capped = raised(Pace(rate=9.0), now=1.0, granted=0.5, ceiling=9.5)
    assert capped is not None and capped.rate == 9.5


def test_clean_answers_raise_the_rate_only_while_requests_wait_on_it(limited):
    fake, server = limited
    fake.rate_limit = None
    budget = AdaptiveBudget(2.0)
    asyncio.run(_hammer(server.url, budget, 30))
    assert budget.pace.probing and budget.pace.rate > 2.0 * 8  # doubled answer by answer
    # Past probing, one request at a time that never waits on the budget (20 ms answers
    # at a pace of 200 a second) is no evidence the pace holds anything back: no raise.
    fake.latency = 0.02
    learned = Pace(rate=200.0, probing=False, limit=200.0)
    idle = AdaptiveBudget(5.0, learned=learned)
    asyncio.run(_hammer(server.url, idle, 10, workers=1))
    assert idle.pace == learned


def test_a_retry_after_holds_every_request_of_the_connection_and_cuts_the_rate(limited):
    fake, server = limited
    fake.rate_limit = None
    fake.retry_after = 3
    budget = AdaptiveBudget(50.0)
    fake.fail_next(1, 429)

    async def one_request() -> None:
        async with HttpClient(server.url, label="Convai", budget=budget,
                              policy=policy(max_retry_wait=0.0),
                              headers={"CONVAI-API-KEY": DEMO_KEY}) as client:
            with pytest.raises(Exception, match="Too many requests"):
                await client.read("POST", LIST)

    asyncio.run(one_request())
    assert budget.pace.rate < 50.0 and budget.pace.last_429 > 0
    assert budget.pace.refused_by == "429"
    # Not only the refused request waits: the next grant of any worker is held.
    assert budget._take() > 2.0


def test_a_pace_stamped_in_the_future_still_learns():
    """Times from a clock that stepped back, or another host's running ahead, would have
    every answer ignored until then: a 429 still cuts, a clean answer still raises."""
    now = time.time()
    ahead = Pace(rate=20.0, probing=False, limit=20.0, changed_at=now + 3600,
                 cut_at=now + 3600, last_429=now + 3600)
    cut = refused(ahead, now=now, granted=now - 0.1, seen=10, ceiling=None)
    assert cut is not None and cut.rate < 20.0 and cut.last_429 == now
    assert raised(ahead, now=now, granted=now - 0.1, ceiling=None) is not None
    # Through the budget too: requests waiting on it, clean answers raise it again.
    budget = AdaptiveBudget(20.0, learned=ahead)
    for _ in range(30):
        budget._waited = time.time()
        budget.observe(time.time(), 200, {}, 0.01)
        time.sleep(0.005)
    assert budget.pace.rate > 20.0
    # A few seconds ahead (hosts a little apart) is believed: the burst's 429s count once.
    near = Pace(rate=20.0, probing=False, limit=20.0, changed_at=now + 2, cut_at=now + 2)
    assert refused(near, now=now, granted=now - 0.1, seen=10, ceiling=None) is None


def test_rate_limit_headers_saying_nothing_is_left_count_as_a_refusal():
    assert exhausted({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "4"}) == 4.0
    assert exhausted({"ratelimit-remaining": "0"}) == 1.0
    assert exhausted({"ratelimit-remaining": "12", "ratelimit-reset": "4"}) is None
    assert exhausted({}) is None
    # What says nothing is not a refusal; a reset in epoch milliseconds is read as such.
    assert exhausted({"ratelimit-remaining": "nan"}) is None
    soon = int((time.time() + 5) * 1000)  # whole milliseconds, never past the 5 s
    assert 3 < exhausted({"ratelimit-remaining": "0", "ratelimit-reset": str(soon)}) <= 5
    assert exhausted({"ratelimit-remaining": "0", "ratelimit-reset": "nan"}) == 1.0
    budget = AdaptiveBudget(20.0)
    budget.observe(budget.pace.changed_at, 200,
                   {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"}, 0.01)
    assert budget.pace.rate < 20.0 and budget._take() > 1.0
    # Kept apart from a 429, so that the connection page names what really happened.
    assert budget.pace.last_429 > 0 and budget.pace.refused_by == "headers"


def test_latency_that_climbs_under_load_eases_the_pace(limited):
    fake, server = limited
    fake.rate_limit = None
    # Beyond 5 requests a second the fake answers 50 ms slower for each one more.
    fake.slow_above = 5
    fake.slowdown = 0.05
    budget = AdaptiveBudget(5.0)
    asyncio.run(_hammer(server.url, budget, 80))
    assert fake.answered_429 == 0
    assert not budget.pace.probing  # slowness, not a 429, ended the doubling
    assert budget.pace.last_429 == 0


def test_a_slow_first_answer_does_not_hide_latency_that_climbs():
    # The first answer carries the warm-up (the process's first request, a new connection);
    # taken as the usual level, it hid a provider slowing down from the start.
    latency = Latency()
    for seconds in (0.8, 0.011, 0.004, 0.004, 0.003):
        latency.add(seconds)
    for step in range(1, 13):  # 50 ms slower at each answer
        latency.add(0.05 * step)
    assert latency.climbing


def test_the_fake_holds_a_limit_with_or_without_retry_after_and_slows_under_load():
    fake = ConvaiFake(seed=3, characters=1, sessions=1, rate_limit=2, retry_after=None)
    headers = {"CONVAI-API-KEY": DEMO_KEY}

    async def burst(n: int) -> list:  # type: ignore[type-arg]
        async with httpx.AsyncClient(transport=fake.transport(),
                                     base_url="http://fake") as client:
            return [await client.post(LIST, headers=headers) for _ in range(n)]

    answers = asyncio.run(burst(3))
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "retry-after" not in answers[2].headers  # a limit that says nothing
    fake.clear_faults()
    fake.retry_after = 2
    assert asyncio.run(burst(3))[2].headers["retry-after"] == "2"

    fake.clear_faults()
    fake.rate_limit = None
    fake.slow_above, fake.slowdown = 1, 0.5
    fake.handle("POST", LIST, headers, b"")
    calm = fake.answer_wait(time.monotonic())
    for _ in range(4):
        fake.handle("POST", LIST, headers, b"")
    assert calm < fake.answer_wait(time.monotonic())  # more arrivals, slower answers


def test_a_refusal_that_ends_the_probing_or_cuts_hard_holds_every_request_for_a_window():
    """The burst of a pace well over the limit must drain from the provider's count, or
    the requests sent just after the cut are refused for it and cut the pace again and
    again (a sync under a 10 requests/s limit settled at 9.1 instead of 9.7). A near miss
    later, at about the pace found, has no burst to drain, and holding everyone a second
    for it cost a tenth of a job."""
    budget = AdaptiveBudget(8.0)
    budget.observe(time.time(), 429, {}, 0.02)
    assert not budget.pace.probing and budget._hold > time.monotonic()
    # A near miss: the provider took about what was sent in the last second.
    budget._hold = 0.0
    before = budget.pace.rate
    budget._refusals.clear()
    budget._grants.extend([time.monotonic()] * (round(before) + 1))  # one of them refused
    budget.observe(time.time(), 429, {}, 0.02)
    assert before * 0.9 < budget.pace.rate < before and budget._hold == 0.0
    # Far fewer taken than sent: the pace was well over, so a hard cut, and a hold.
    budget._grants.clear()
    before = budget.pace.rate
    budget.observe(time.time(), 429, {}, 0.02)
    assert budget.pace.rate < before * 0.8 and budget._hold > time.monotonic()
