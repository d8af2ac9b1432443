"""Retention policies: the list, one policy (its last runs and what it would erase now),
the form to make or change one, and "Run now". Viewers browse; operators act, and only the
owner changes, runs or removes a policy, since it acts with the owner's access."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from ..erasure import retention
from ..forms import PolicyForm
from ..models import RetentionPolicy
from ..team import audit
from ..team.roles import Role, at_least
from .common import require_role


def visible_policy(request: HttpRequest, pk: int) -> RetentionPolicy:
    return get_object_or_404(RetentionPolicy.objects.visible_to(request.user), pk=pk)


def owned_policy(request: HttpRequest, pk: int) -> RetentionPolicy:
    """Changing, running or removing a policy is its owner's: others get a 404."""
    policy = visible_policy(request, pk)
    if policy.owner_id != request.user.pk:
        raise Http404("No such policy of yours.")
    return policy


def policy_list(request: HttpRequest) -> HttpResponse:
    rows = []
    for policy in RetentionPolicy.objects.visible_to(request.user).select_related(
            "owner", "connection", "character"):
        rows.append({"policy": policy, "last": policy.runs.first(),
                     **retention.standing(policy, request.user)})
    return render(request, "policies/list.html", {
        "rows": rows, "can_add": at_least(request.user, Role.OPERATOR)})


def policy_detail(request: HttpRequest, pk: int) -> HttpResponse:
    policy = visible_policy(request, pk)
    would = retention.would_erase(policy, request.user).select_related("connection", "character")
    return render(request, "policies/detail.html", {
        "policy": policy,
        "runs": policy.runs.all()[:20],
        **retention.standing(policy, request.user),
        "sample": would.order_by("last_message_at", "id")[:10],
        "refusal": retention.refusal(policy),
        "is_owner": policy.owner_id == request.user.pk,
    })


@require_http_methods(["GET", "POST"])
@require_role(Role.OPERATOR)
def policy_add(request: HttpRequest) -> HttpResponse:
    form = PolicyForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        policy = form.save(commit=False)
        policy.owner = request.user
        # Due at once: the page then says "due now" wherever it names the next run.
        policy.next_run_at = timezone.now()
        policy.save()
        audit.record(request.user, audit.Action.POLICY_CHANGED, policy, request,
                     created=True)
        first = ("Its first run is due now" if policy.enabled
                 else "It is switched off, so it does not run until you switch it on")
        messages.success(request, f"Policy “{policy.name}” saved. {first}; jobs it makes "
                                  "follow its mode.")
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
    policy = owned_policy(request, pk)
    run = retention.start_run(policy)
    audit.record(request.user, audit.Action.POLICY_RUN, policy, request, run=run.pk)
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
