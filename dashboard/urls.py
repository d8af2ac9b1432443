from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from .erasure import readiness
from .team import login, oidc
from .views import (
    audit,
    connections,
    conversations,
    erase,
    findings,
    jobs,
    metrics,
    overview,
    policies,
    preferences,
    requests,
    search,
)


def healthz(request: HttpRequest) -> HttpResponse:
    """The process answers; touches nothing (not even the session)."""
    return HttpResponse("ok", content_type="text/plain")


def readyz(request: HttpRequest) -> HttpResponse:
    """The database, the broker and beat, each "ok" or why not; 503 unless all are."""
    found = readiness.check()
    return JsonResponse(found, status=200 if readiness.ready(found) else 503)


# The admin signs in through the same door as everyone: SSO when configured, throttled
# local sign-in otherwise.
admin.site.login = login.LoginView.as_view()  # type: ignore[method-assign,assignment]

handler500 = "dashboard.errors.unavailable_or_error"

urlpatterns = [
    path("", overview.overview, name="home"),
    path("time-zone/", preferences.time_zone, name="time_zone"),
    path("healthz", healthz),
    path("readyz", readyz),
    path("metrics", metrics.metrics),
    path("accounts/login/", login.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("connections/", connections.connection_list, name="connections"),
    path("connections/add/", connections.connection_add, name="connection_add"),
    path("connections/<int:pk>/", connections.connection_detail, name="connection"),
    path("connections/<int:pk>/edit/", connections.connection_edit, name="connection_edit"),
    path("connections/<int:pk>/test/", connections.connection_test, name="connection_test"),
    path("connections/<int:pk>/sync/", connections.connection_sync, name="connection_sync"),
    path("connections/<int:pk>/share/", connections.connection_share, name="connection_share"),
    path("connections/<int:pk>/remove/", connections.connection_remove,
         name="connection_remove"),
    path("conversations/", conversations.conversation_list, name="conversations"),
    path("conversations/selection/", conversations.selection_change,
         name="conversation_selection"),
    path("conversations/selection/export.<str:fmt>", conversations.selection_export,
         name="conversation_selection_export"),
    path("conversations/<int:pk>/", conversations.transcript, name="transcript"),
    path("conversations/<int:pk>/protect/", conversations.protect, name="protect"),
    path("findings/", findings.finding_list, name="findings"),
    path("findings/erase/", findings.findings_erase, name="findings_erase"),
    path("findings/<int:pk>/reveal/", findings.finding_reveal, name="finding_reveal"),
    path("findings/<int:pk>/dismiss/", findings.finding_dismiss, name="finding_dismiss"),
    path("erase/", erase.erase_selected, name="erase_selected"),
    path("erase/<uuid:request_id>/", erase.erase_preview, name="erase_preview"),
    path("erase/<uuid:request_id>/export.<str:fmt>", erase.erase_export, name="erase_export"),
    path("jobs/", jobs.job_list, name="jobs"),
    path("approvals/", jobs.approvals, name="approvals"),
    path("jobs/<int:pk>/", jobs.job_detail, name="job"),
    path("jobs/<int:pk>/receipt/", jobs.job_receipt, name="job_receipt"),
    path("jobs/<int:pk>/receipt.json", jobs.job_receipt, {"fmt": "json"}, name="job_receipt_json"),
    path("jobs/<int:pk>/<str:action>/", jobs.job_action, name="job_action"),
    path("search/", search.search, name="search"),
    path("search/erase/", search.search_erase, name="search_erase"),
    path("requests/<uuid:request_id>/", requests.request_detail, name="request"),
    path("requests/<uuid:request_id>/receipt/", requests.request_receipt,
         name="request_receipt"),
    path("requests/<uuid:request_id>/receipt.json", requests.request_receipt, {"fmt": "json"},
         name="request_receipt_json"),
    path("requests/<uuid:request_id>/<str:action>/", requests.request_action,
         name="request_action"),
    path("policies/", policies.policy_list, name="policies"),
    path("policies/add/", policies.policy_add, name="policy_add"),
    path("policies/<int:pk>/", policies.policy_detail, name="policy"),
    path("policies/<int:pk>/edit/", policies.policy_edit, name="policy_edit"),
    path("policies/<int:pk>/run/", policies.policy_run, name="policy_run"),
    path("policies/<int:pk>/remove/", policies.policy_remove, name="policy_remove"),
    path("audit/", audit.audit_list, name="audit"),
    path("audit.csv", audit.audit_csv, name="audit_csv"),
    path("admin/", admin.site.urls),
    # Sign-in with OpenID Connect; a 404 unless it is configured.
    path("oidc/authenticate/", oidc.AuthenticationRequestView.as_view(),
         name="oidc_authentication_init"),
    path("oidc/callback/", oidc.CallbackView.as_view(), name="oidc_authentication_callback"),
]
