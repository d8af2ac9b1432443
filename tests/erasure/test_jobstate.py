"""Property-based tests of the erasure job state machine (Hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dashboard.models.jobstate import (
    FINAL,
    NOT_STARTED,
    TRANSITIONS,
    Event,
    IllegalTransition,
    Status,
    advance,
)

events = st.sampled_from(list(Event))


class JobLife(RuleBasedStateMachine):
    """Apply any events in any order; illegal ones must be refused and change nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.status = Status.DRAFT
        self.history: list[Status] = [self.status]
        self.confirmed = False
        self.approved_or_direct = False

    @rule(event=events)
    def apply(self, event: Event) -> None:
        before = self.status
        try:
            self.status = advance(before, event)
        except IllegalTransition:
            assert (before, event) not in TRANSITIONS
            return
        if event in (Event.CONFIRM, Event.CONFIRM_DIRECT):
            self.confirmed = True
        if event in (Event.APPROVE, Event.CONFIRM_DIRECT):
            self.approved_or_direct = True
        self.history.append(self.status)

    @invariant()
    def cancelled_is_the_end(self) -> None:
        if Status.CANCELLED in self.history:
            assert self.history[-1] == Status.CANCELLED

    @invariant()
    def nothing_runs_without_confirmation_and_approval_or_window(self) -> None:
        if Status.RUNNING in self.history or Status.QUEUED in self.history:
            assert self.confirmed and self.approved_or_direct
            first_queue = self.history.index(Status.QUEUED)
            assert Status.SCHEDULED in self.history[:first_queue]

    @invariant()
    def done_only_after_running_or_queued(self) -> None:
        if Status.DONE in self.history:
            first_done = self.history.index(Status.DONE)
            assert {Status.RUNNING, Status.QUEUED} & set(self.history[:first_done])


TestJobLife = JobLife.TestCase


@given(status=st.sampled_from(list(Status)), event=events)
def test_every_transition_is_either_in_the_table_or_refused(status: Status, event: Event) -> None:
    try:
        after = advance(status, event)
    except IllegalTransition as exc:
        assert (status, event) not in TRANSITIONS
        assert (exc.status, exc.event) == (status, event)
        assert str(exc).startswith(f"A job that is {status.replace('_', ' ')} cannot be ")
    else:
        assert TRANSITIONS[(status, event)] == after


def test_every_unfinished_job_can_be_cancelled_and_final_ones_cannot() -> None:
    for status in Status:
        if status in FINAL or status == Status.DONE:
            assert (status, Event.CANCEL) not in TRANSITIONS
        else:
            assert advance(status, Event.CANCEL) == Status.CANCELLED
    assert NOT_STARTED <= {s for s in Status if (s, Event.CANCEL) in TRANSITIONS}
