"""Roles decide what a person may do with the connections they can see.

viewer < operator < approver < admin. A person's role is the highest one among their
groups (group names from LETHE_ROLE_GROUPS); superusers are admins. Seeing a connection is
separate: its owner and the members of the groups it is shared with (invariant 5 in
docs/architecture.md).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from django.conf import settings


class Role(IntEnum):
    NONE = 0
    VIEWER = 1  # browse
    OPERATOR = 2  # sync, request erasure, export
    APPROVER = 3  # approve other people's erasures
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()


def group_names() -> dict[Role, str]:
    names: dict[str, str] = settings.LETHE_ROLE_GROUPS
    return {Role[role.upper()]: group for role, group in names.items()}


def role_of(user: Any) -> Role:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return Role.NONE
    if user.is_superuser:
        return Role.ADMIN
    cached = getattr(user, "_lethe_role", None)
    if cached is not None:
        return Role(cached)
    mine = set(user.groups.values_list("name", flat=True))
    role = max((r for r, group in group_names().items() if group in mine), default=None)
    if role is None:
        role = Role[settings.LETHE_DEFAULT_ROLE.upper()]
    user._lethe_role = int(role)
    return role


def at_least(user: Any, role: Role) -> bool:
    return role_of(user) >= role
