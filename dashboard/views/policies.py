"""Retention policies: the list, one policy (its last runs and what it would erase now),
the form to make or change one, and "Run now". Viewers browse; operators act, and only the
owner changes, runs or removes a policy, since it acts with the owner's access."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

import providers

from .. import audit, policies, selection
from ..models import Character, Connection, RetentionPolicy
from ..models.policies import policies_visible_to
from ..roles import Role, at_least
from .common import require_role


class PolicyForm(forms.ModelForm):  # type: ignore[type-arg]
    provider = forms.ChoiceField(required=False, choices=[("", "—")] + [
        (name, cls.label) for name, cls in providers.REGISTRY.items()])

    class Meta:
        model = RetentionPolicy
        fields = ["name", "scope", "provider", "connection", "character", "older_than_days",
                  "keywords", "keep_keywords", "mode", "every_hours", "enabled"]
        labels = {"older_than_days": "Erase conversations older than (days)",
                  "keywords": "Only those mentioning (one phrase a line, optional)",
                  "keep_keywords": "Never those mentioning (one phrase a line, optional)",
                  "every_hours": "Run every (hours)"}
        widgets = {"keywords": forms.Textarea(attrs={"rows": 3}),
                   "keep_keywords": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, user: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        visible = Connection.objects.visible_to(user)
        self.fields["connection"].queryset = visible  # type: ignore[attr-defined]
        self.fields["character"].queryset = Character.objects.filter(  # type: ignore[attr-defined]
            connection__in=visible).select_related("connection")
        self.fields["older_than_days"].min_value = 1  # type: ignore[attr-defined]
        self.fields["every_hours"].min_value = 1  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        scope = data.get("scope")
        needed = {"provider": "provider", "connection": "connection",
                  "character": "character"}.get(str(scope))
        if needed and not data.get(needed):
            self.add_error(needed, f"Choose the {needed} this policy covers.")
        # Only the field the scope names is kept, so the policy means one thing.
        for name in ("provider", "connection", "character"):
            if name != needed:
                data[name] = "" if name == "provider" else None
        if (data.get("older_than_days") or 0) < 1:
            self.add_error("older_than_days", "At least one day.")
        return data


def visible_policy(request: HttpRequest, pk: int) -> RetentionPolicy:
    return get_object_or_404(policies_visible_to(request.user), pk=pk)


def owned_policy(request: HttpRequest, pk: int) -> RetentionPolicy:
    """Changing, running or removing a policy is its owner's: others get a 404."""
    policy = visible_policy(request, pk)
    if policy.owner_id != request.user.pk:
        raise Http404("No such policy of yours.")
    return policy


def policy_list(request: HttpRequest) -> HttpResponse:
    rows = []
    for policy in policies_visible_to(request.user).select_related(
            "owner", "connection", "character"):
        rows.append({"policy": policy, "last": policy.runs.first(),
                     "would": would_erase(request, policy).count()})
    return render(request, "policies/list.html", {
        "rows": rows, "can_add": at_least(request.user, Role.OPERATOR)})


def would_erase(request: HttpRequest, policy: RetentionPolicy) -> Any:
    # Seen through both pairs of eyes: the owner's scope, but never more than this person
    # may see (invariant 5).
    return policies.matching(policy).filter(
        protected=False, pk__in=selection.visible_conversations(request.user).values("pk"))


def policy_detail(request: HttpRequest, pk: int) -> HttpResponse:
    policy = visible_policy(request, pk)
    would = would_erase(request, policy).select_related("connection", "character")
    return render(request, "policies/detail.html", {
        "policy": policy,
        "runs": policy.runs.all()[:20],
        "would_count": would.count(),
        "sample": would.order_by("last_message_at", "id")[:10],
        "refusal": policies.refusal(policy),
        "is_owner": policy.owner_id == request.user.pk,
    })


@require_http_methods(["GET", "POST"])
@require_role(Role.OPERATOR)
def policy_add(request: HttpRequest) -> HttpResponse:
    form = PolicyForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        policy = form.save(commit=False)
        policy.owner = request.user
        policy.save()
        audit.record(request.user, audit.Action.POLICY_CHANGED, policy, request,
                     created=True)
        messages.success(request, f"Policy “{policy.name}” saved. Its first run is due now; "
                                  "jobs it makes follow your policy's mode.")
        return redirect("policy", pk=policy.pk)
    return render(request, "policies/form.html", {"form": form, "policy": None})


@require_http_methods(["GET", "POST"])
@require_role(Role.OPERATOR, lookup=owned_policy)
def policy_edit(request: HttpRequest, pk: int) -> HttpResponse:
    policy = owned_policy(request, pk)
    form = PolicyForm(request.user, request.POST or None, instance=policy)
    if request.method == "POST" and form.is_valid():
        form.save()
        audit.record(request.user, audit.Action.POLICY_CHANGED, policy, request,
                     fields=sorted(form.changed_data))
        messages.success(request, "Policy saved.")
        return redirect("policy", pk=policy.pk)
    return render(request, "policies/form.html", {"form": form, "policy": policy})


@require_POST
@require_role(Role.OPERATOR, lookup=owned_policy)
def policy_run(request: HttpRequest, pk: int) -> HttpResponse:
    from .. import tasks

    policy = owned_policy(request, pk)
    run = policies.start_run(policy)
    audit.record(request.user, audit.Action.POLICY_RUN, policy, request, run=run.pk)
    tasks.run_policy.delay_on_commit(run.pk)
    messages.info(request, "Run queued: it syncs first, then reports, then makes the job.")
    return redirect("policy", pk=policy.pk)


@require_POST
@require_role(Role.OPERATOR, lookup=owned_policy)
def policy_remove(request: HttpRequest, pk: int) -> HttpResponse:
    policy = owned_policy(request, pk)
    name = policy.name
    audit.record(request.user, audit.Action.POLICY_REMOVED, policy, request)
    policy.delete()
    messages.success(request, f"Policy “{name}” removed. Jobs it made are unchanged.")
    return redirect("policies")
