"""Who may approve an erasure: someone with the approver role who can see its connection
and did not ask for it (nobody approves their own)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from ..models import Connection, ErasureJob
from ..team.roles import Role, at_least


def can_approve(user: Any, job: ErasureJob) -> bool:
    return (job.requested_by_id != user.pk and at_least(user, Role.APPROVER)
            and job.connection_id is not None
            and Connection.objects.visible_to(user).filter(pk=job.connection_id).exists())


def approvers(job: ErasureJob) -> list[Any]:
    """Everyone who could approve the job now, by name."""
    people: QuerySet[Any] = get_user_model().objects.filter(is_active=True).exclude(
        pk=job.requested_by_id).order_by("username")
    return [user for user in people.iterator() if can_approve(user, job)]
