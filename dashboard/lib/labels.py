"""The human label of every state Lethe stores, in one place.

The models take their choices from these tables, and pages, receipts, notifications and
exports read them here, so a state is named the same way everywhere a person reads it.
Machine-readable outputs (receipt JSON, CSV columns of values) keep the stored value and
add the label beside it where a person reads the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

JOB_STATUS = {
    "draft": "Awaiting confirmation",
    "awaiting_approval": "Awaiting approval",
    "scheduled": "Scheduled (cancel window)",
    "queued": "Queued",
    "running": "Running",
    "paused": "Paused",
    "done": "Finished",
    "cancelled": "Cancelled",
}

ITEM_STATE = {
    "pending": "Pending",
    "in_flight": "In flight",
    "erased": "Erased (not yet verified)",
    "verified": "Erased and verified",
    "already_gone": "Already gone",
    "soft_deleted": "Soft-deleted at provider",
    "still_there": "Acknowledged, but still there",
    "failed": "Failed",
    "unknown": "Outcome unknown",
    "skipped": "Skipped",
    "would_erase": "Would be erased (dry run)",
}

# The same outcomes as they read inside a sentence: "113 verified, 2 failed".
ITEM_OUTCOME = {
    "pending": "pending",
    "in_flight": "in flight",
    "erased": "erased, not yet verified",
    "verified": "verified",
    "already_gone": "already gone",
    "soft_deleted": "soft-deleted",
    "still_there": "still there after the delete",
    "failed": "failed",
    "unknown": "outcome unknown",
    "skipped": "skipped",
    "would_erase": "would be erased",
}

# What each outcome means, for a reader of a receipt who does not know Lethe.
ITEM_MEANING = {
    "pending": "Not sent yet.",
    "in_flight": "Sent; the provider's answer has not arrived yet.",
    "erased": "The provider acknowledged the delete; reading it back to confirm has not "
              "finished yet.",
    "verified": "The provider acknowledged the delete, and reading it back no longer "
                "finds it.",
    "already_gone": "The provider no longer had it when Lethe asked; nothing was deleted.",
    "soft_deleted": "The provider marked it deleted but still keeps it.",
    "still_there": "The provider acknowledged the delete, but reading it back still finds "
                   "it.",
    "failed": "The provider refused the delete or kept failing; it was not deleted.",
    "unknown": "Lethe could not tell whether the delete arrived; it reads it back before "
               "sending again.",
    "skipped": "Not sent: protected, already in another job, or left out by choice.",
    "would_erase": "A dry run: nothing was sent; a real erasure would send it.",
}

ITEM_KIND = {"conversation": "Conversation", "message": "Message"}

MIRROR_STATE = {"present": "Present", "gone": "Gone at provider", "erased": "Erased"}

PROVIDER_STATE = {"active": "Active", "archived": "Archived",
                  "soft_deleted": "Soft-deleted at provider"}

CONNECTION_STATUS = {"ok": "OK", "invalid": "Invalid key", "paused": "Paused",
                     "unchecked": "Not checked yet"}

SYNC_STATUS = {"queued": "Queued", "running": "Running", "ok": "Finished", "failed": "Failed"}

POLICY_RUN_STATUS = {
    "queued": "Queued",
    "running": "Running",
    "nothing": "Nothing to erase",
    "created": "Job created",
    "refused": "Did nothing (see why)",
    "failed": "Failed",
}


def label(table: Mapping[str, str], value: str) -> str:
    """The label of ``value``; a value the table does not know (a newer release's, say)
    still reads as words rather than as an error."""
    return table.get(value) or str(value).replace("_", " ").capitalize()


def outcomes(counts: Mapping[str, int], order: Iterable[str] = ITEM_STATE) -> str:
    """Item counts as one phrase, in the order of the state table, zeros left out:
    "113 verified, 2 failed"; "" when there is nothing."""
    return ", ".join(f"{counts[state]} {label(ITEM_OUTCOME, state)}"
                     for state in order if counts.get(state))
