from typing import Any

from django.http import HttpRequest

from ..models import ErasureJob
from .roles import Role, role_of


def role(request: HttpRequest) -> dict[str, Any]:
    """The signed-in person's role for the top bar, and for approvers how many erasures
    wait for them."""
    mine = role_of(request.user)
    waiting = 0
    if mine >= Role.APPROVER:
        waiting = ErasureJob.objects.visible_to(request.user).filter(
            status=ErasureJob.Status.AWAITING_APPROVAL).exclude(
            requested_by_id=request.user.pk).count()
    return {"lethe_role": mine.label, "is_approver": mine >= Role.APPROVER,
            "awaiting_approval": waiting}
