"""The erasure job's life, as a table: which event may move a job from which state.

Every status change of a job goes through `advance`, so an illegal move (running a
cancelled job, approving your own, resuming a finished one) is refused in one place.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    DRAFT = "draft"  # previewed, not confirmed
    AWAITING_APPROVAL = "awaiting_approval"
    SCHEDULED = "scheduled"  # approved, waiting out the cancel window
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"  # by a person, or by the provider refusing the key
    DONE = "done"
    CANCELLED = "cancelled"


class Event(StrEnum):
    CONFIRM = "confirm"  # the requester confirmed; approval needed
    CONFIRM_DIRECT = "confirm_direct"  # confirmed, no approval needed
    APPROVE = "approve"
    REJECT = "reject"
    WINDOW_OVER = "window_over"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    FINISH = "finish"
    RETRY = "retry"  # failed items go back to pending
    CANCEL = "cancel"


# DONE can be reopened to retry failed items; CANCELLED is the end.
FINAL = frozenset({Status.CANCELLED})
# Before anything could have been sent: cancelling there sends nothing at all.
NOT_STARTED = frozenset({Status.DRAFT, Status.AWAITING_APPROVAL, Status.SCHEDULED, Status.QUEUED})

TRANSITIONS: dict[tuple[Status, Event], Status] = {
    (Status.DRAFT, Event.CONFIRM): Status.AWAITING_APPROVAL,
    (Status.DRAFT, Event.CONFIRM_DIRECT): Status.SCHEDULED,
    (Status.AWAITING_APPROVAL, Event.APPROVE): Status.SCHEDULED,
    (Status.AWAITING_APPROVAL, Event.REJECT): Status.CANCELLED,
    (Status.SCHEDULED, Event.WINDOW_OVER): Status.QUEUED,
    (Status.QUEUED, Event.START): Status.RUNNING,
    (Status.RUNNING, Event.START): Status.RUNNING,  # a second worker joins
    (Status.RUNNING, Event.PAUSE): Status.PAUSED,
    (Status.QUEUED, Event.PAUSE): Status.PAUSED,
    (Status.PAUSED, Event.RESUME): Status.QUEUED,
    (Status.RUNNING, Event.FINISH): Status.DONE,
    (Status.QUEUED, Event.FINISH): Status.DONE,
    (Status.DONE, Event.RETRY): Status.QUEUED,
    (Status.PAUSED, Event.RETRY): Status.PAUSED,
    (Status.QUEUED, Event.RETRY): Status.QUEUED,
    (Status.RUNNING, Event.RETRY): Status.RUNNING,
}
for _status in Status:
    if _status not in FINAL and _status != Status.DONE:
        TRANSITIONS[(_status, Event.CANCEL)] = Status.CANCELLED


# What an event does to a job, for the sentence that refuses it (one for every Event).
_DONE_TO: dict[str, str] = {
    Event.CONFIRM: "confirmed", Event.CONFIRM_DIRECT: "confirmed", Event.APPROVE: "approved",
    Event.REJECT: "rejected", Event.WINDOW_OVER: "released", Event.START: "started",
    Event.PAUSE: "paused", Event.RESUME: "resumed", Event.FINISH: "finished",
    Event.RETRY: "retried", Event.CANCEL: "cancelled"}


class IllegalTransition(Exception):
    def __init__(self, status: str, event: str) -> None:
        super().__init__(f"A job that is {status.replace('_', ' ')} cannot be "
                         f"{_DONE_TO[event]}.")
        self.status, self.event = status, event


def advance(status: str, event: str) -> Status:
    try:
        return TRANSITIONS[(Status(status), Event(event))]
    except (KeyError, ValueError):
        raise IllegalTransition(status, event) from None


def allowed(status: str) -> set[Event]:
    return {event for (s, event) in TRANSITIONS if s == status}
