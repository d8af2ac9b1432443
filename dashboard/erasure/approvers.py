"""Who may approve an erasure: someone with the approver role who can see its connection
and did not ask for it (nobody approves their own)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from ..models import Connection, ErasureJob
from ..team.roles import Role, at_least


def can_approve(user: Any, job: ErasureJob) -> bool:
    return (job.requested_by_id != user.pk and at_least(user, Role.APPROVER)
            and job.connection_id is not None
            and Connection.objects.visible_to(user).filter(pk=job.connection_id).exists())


def approvers(job: ErasureJob) -> list[Any]:
    """Everyone who could approve the job now, by name: only the people who can see its
    connection are asked for their role."""
    connection = job.connection
    if connection is None:
        return []
    people: QuerySet[Any] = get_user_model().objects.filter(
        Q(pk=connection.owner_id) | Q(groups__in=connection.shared_with.all()),
        is_active=True).exclude(pk=job.requested_by_id).distinct().order_by("username")
    return [user for user in people if at_least(user, Role.APPROVER)]
