from typing import Any

from django.http import HttpRequest

from .roles import role_of


def role(request: HttpRequest) -> dict[str, Any]:
    """The signed-in person's role, for the top bar."""
    return {"lethe_role": role_of(request.user).label}
