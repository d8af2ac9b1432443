"""Connections screen: list, add, edit (replace key), share, remove, test, sync now."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

import providers

from ..erasure import lifecycle, removal
from ..forms import ConnectionForm, ShareForm
from ..lib.aio import ProviderSession
from ..mirror import sync
from ..models import Connection, MirrorState, ProviderTraffic, SyncRun
from ..team import audit
from ..team.roles import Role
from .common import is_fragment, require_role, user_connection


def owned_connection(request: HttpRequest, pk: int) -> Connection:
    """Only the owner changes, shares or removes a connection; others see a 404 as if
    they had no access, or can see it but not change it."""
    connection = user_connection(request, pk)
    if connection.owner_id != request.user.pk:
        raise Http404("Only the owner changes a connection.")
    return connection


def check_key(connection: Connection) -> tuple[bool, str]:
    """Ask the provider who the key belongs to and record what was found on the connection
    (not saved): (True, what was reached) or (False, why not). Key refused: the status says
    so; provider unreachable: the error says so and the status is left as it was."""
    provider = None
    try:
        provider = connection.open_provider()
        with ProviderSession(provider) as session:
            account = session.call(provider.check())
    except providers.AuthError as exc:
        connection.status = Connection.Status.INVALID
        connection.last_error = connection.key_refused(exc)
        return False, connection.last_error
    except providers.ProviderError as exc:
        connection.last_error = (f"Could not check the key: {exc.sentence} Test again once "
                                 "the provider answers.")
        return False, connection.last_error
    finally:
        if provider is not None:
            ProviderTraffic.add(connection.provider, ProviderTraffic.Kind.CHECK,
                                provider.meter.take())
    connection.account_name = account.name[:200]
    connection.status, connection.last_error = Connection.Status.OK, ""
    return True, f"Reached {account.name}: the key works."


def _checked_before_saving(connection: Connection, form: ConnectionForm) -> bool:
    """Unless the person asked to skip it, a new key is saved only once the provider took
    it; otherwise the form says why and nothing is saved."""
    if form.cleaned_data.get("skip_check"):
        connection.status, connection.last_error = Connection.Status.UNCHECKED, ""
        return True
    ok, message = check_key(connection)
    if not ok:
        form.add_error(None, f"{message} Nothing was saved: type the key again, or tick "
                             "“Save without checking”.")
    return ok


def connection_list(request: HttpRequest) -> HttpResponse:
    present = Q(conversations__mirror_state=MirrorState.PRESENT)
    latest = SyncRun.objects.filter(connection=OuterRef("pk")).order_by("-id")
    connections = (
        Connection.objects.visible_to(request.user)
        .select_related("owner")
        .prefetch_related("shared_with")
        .annotate(
            held=Count("conversations", filter=present),
            sync_status=Subquery(latest.values("status")[:1]),
            sync_error=Subquery(latest.values("error")[:1]),
        )
    )
    return render(request, "connections/list.html", {
        "connections": connections,
        "providers": providers.REGISTRY.values(),
    })


@require_http_methods(["GET", "POST"])
@require_role(Role.OPERATOR)
def connection_add(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("provider") or request.GET.get("provider") or ""
    if name not in providers.REGISTRY:
        return render(request, "connections/choose.html",
                      {"providers": providers.REGISTRY.values()})
    form = ConnectionForm(name, request.POST or None)
    if request.method == "POST" and form.is_valid():
        connection = Connection(owner=request.user, provider=name,  # type: ignore[misc]
                                label=form.cleaned_data["label"], options=form.options())
        connection.set_secrets(form.secrets())
        if _checked_before_saving(connection, form):
            connection.save()
            audit.record(request.user, audit.Action.CONNECTION_ADDED, connection, request,
                         provider=name)
            messages.success(request, f"Added {connection}. "
                             + ("Test it, then sync its histories."
                                if connection.status == Connection.Status.UNCHECKED
                                else "The key works: sync to mirror its histories."))
            return redirect("connection", pk=connection.pk)
    return render(request, "connections/form.html",
                  {"form": form, "provider": form.provider_class, "connection": None})


@require_http_methods(["GET", "POST"])
@require_role(Role.OPERATOR, lookup=owned_connection)
def connection_edit(request: HttpRequest, pk: int) -> HttpResponse:
    connection = owned_connection(request, pk)
    form = ConnectionForm(connection.provider, request.POST or None, instance=connection)
    if request.method == "POST" and form.is_valid():
        connection.label = form.cleaned_data["label"]
        connection.options = form.options()
        new = form.secrets()
        if new:
            connection.set_secrets({**connection.get_secrets(), **new})
        if not new or _checked_before_saving(connection, form):
            connection.save()
            audit.record(request.user, audit.Action.CONNECTION_KEY_REPLACED if new
                         else audit.Action.CONNECTION_CHANGED, connection, request,
                         fields=sorted(form.changed_data))
            # A key saved unchecked may be as wrong as the old one: paused jobs wait for a
            # Test to find it good.
            resumed = (lifecycle.resume_after_key_fix(connection.pk)
                       if new and connection.status == Connection.Status.OK else 0)
            messages.success(request, "Saved."
                             + (" The new key works and is stored encrypted."
                                if new and connection.status == Connection.Status.OK else "")
                             + (" The new key is stored encrypted, not checked yet: Test it."
                                if connection.status == Connection.Status.UNCHECKED else "")
                             + (f" {resumed} paused job(s) resumed." if resumed else ""))
            return redirect("connection", pk=connection.pk)
    return render(request, "connections/form.html",
                  {"form": form, "provider": form.provider_class, "connection": connection})


def _sync_context(connection: Connection) -> dict[str, object]:
    """What the parts of the page that a sync changes are drawn from."""
    runs = list(connection.sync_runs.all()[:10])
    present = Q(conversations__mirror_state=MirrorState.PRESENT)
    latest = runs[0] if runs else None
    return {"connection": connection, "runs": runs, "latest": latest,
            "run_key": _run_key(latest),
            "characters": connection.characters.annotate(
                held=Count("conversations", filter=present))}


def _run_key(run: SyncRun | None) -> str:
    """Which run an idle connection page shows, and how it ended: the page asks now and
    then with it, and is redrawn once another run (started elsewhere) comes."""
    return f"{run.pk}-{run.status}" if run else "none"


def connection_detail(request: HttpRequest, pk: int) -> HttpResponse:
    connection = user_connection(request, pk)
    context = _sync_context(connection)
    if is_fragment(request) and request.GET.get("since") == context["run_key"]:
        return HttpResponse(status=204)  # still the run the page shows: nothing to redraw
    if is_fragment(request):
        # While a sync runs its section polls here; the answer that finds it finished also
        # redraws, out of band, every part it changed (status, characters, recent syncs).
        return render(request, "connections/detail.html#sync-update", context)
    if connection.owner_id == request.user.pk:
        context["share_form"] = ShareForm(
            request.user, initial={"groups": connection.shared_with.all()})
    return render(request, "connections/detail.html", context)


@require_POST
@require_role(Role.OPERATOR, lookup=user_connection)
def connection_test(request: HttpRequest, pk: int) -> HttpResponse:
    connection = user_connection(request, pk)
    ok, message = check_key(connection)
    connection.save(update_fields=["account_name", "status", "last_error"])
    # Jobs paused on a refused key wait for a key found good: a key saved unchecked is
    # found good here.
    resumed = lifecycle.resume_after_key_fix(connection.pk) if ok else 0
    if resumed:
        message += f" {resumed} paused job{'s' * (resumed != 1)} resumed."
    if is_fragment(request):
        return render(request, "connections/detail.html#test-update",
                      {"result": {"ok": ok, "message": message}, "connection": connection})
    (messages.success if ok else messages.error)(request, message)
    return redirect("connection", pk=connection.pk)


@require_POST
@require_role(Role.OPERATOR, lookup=user_connection)
def connection_sync(request: HttpRequest, pk: int) -> HttpResponse:
    connection = user_connection(request, pk)
    run, started = sync.request(connection, request.user)
    if started:
        audit.record(request.user, audit.Action.SYNC_REQUESTED, connection, request,
                     sync_run=run.pk)
    if is_fragment(request):
        return render(request, "connections/detail.html#sync-update",
                      _sync_context(connection))
    if run.status == run.Status.FAILED:
        messages.error(request, run.error)
    else:
        messages.info(request, f"Sync of {connection.label} queued.")
    if request.POST.get("back") == "overview":
        return redirect("home")  # the overview's Sync buttons: it shows the progress
    return redirect("connection", pk=connection.pk)


@require_POST
@require_role(Role.OPERATOR, lookup=owned_connection)
def connection_share(request: HttpRequest, pk: int) -> HttpResponse:
    connection = owned_connection(request, pk)
    form = ShareForm(request.user, request.POST)
    if form.is_valid():
        groups = form.cleaned_data["groups"]
        connection.shared_with.set(groups)
        audit.record(request.user, audit.Action.CONNECTION_SHARED, connection, request,
                     groups=sorted(g.name for g in groups))
        messages.success(request, "Sharing saved." if groups else "Shared with nobody now.")
    else:
        messages.error(request, "Share only with groups you belong to.")
    return redirect("connection", pk=connection.pk)


@require_http_methods(["GET", "POST"])
@require_role(Role.OPERATOR, lookup=owned_connection)
def connection_remove(request: HttpRequest, pk: int) -> HttpResponse:
    """What removing deletes and what stays, then (on POST) the removal."""
    connection = owned_connection(request, pk)
    if request.method == "POST":
        label = connection.label
        try:
            done = removal.remove(connection, request.user, request)
        except removal.StillWorking as exc:
            messages.error(request, f"Job {exc} may still be sending or reading back; wait "
                                    "for it to finish, or cancel it, then remove.")
            return redirect("connection_remove", pk=pk)
        messages.success(request, f"Removed {label}: its key and its mirror are gone"
                         + (f"; the receipts of {done.kept} job{'s' * (done.kept != 1)} stay"
                            if done.kept else "") + ".")
        return redirect("connections")
    return render(request, "connections/remove.html",
                  {"connection": connection, "plan": removal.plan(connection)})
