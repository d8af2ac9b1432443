"""Huawei Cloud's error answers, as KooSearch and IAM give them.

KooSearch refuses with ``{"error_code", "error_msg"}``, or an array of them
(https://support.huaweicloud.com/intl/en-us/api-koosearch/koosearch_03_0010.html); codes
starting with ``APIGW`` come from the API Gateway in front of the service (a wrong
endpoint, an unpublished API, throttling), not from the service itself. IAM's own error
body is not documented: Keystone's ``{"error": {"code", "message", "title"}}`` is read too.

``answer_classifier`` is the ``classify`` hook of the KooSearch client. It words every
refusal with Huawei's code and says who refused; the error types and retries stay those of
the generic reading by status (401 and 403 AuthError, 404 NotFound, 429 RateLimited, 5xx
TemporaryError, other 4xx PermanentError). A 2xx that carries ``error_code`` is a refusal
too. A 401 or 403 reaches it only after ``iam.IamAuth`` renewed the token once, so both
are worded as what they then mean: the new token was refused too, or the IAM user lacks
the permissions.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..errors import PermanentError, ProviderError
from ..http import Classifier, classify, error_text, json_or_none

# The answers that refuse a token. 403 counts: a token keeps the roles it was issued with,
# so permissions granted since need a new one.
AUTH_STATUSES = (401, 403)


def huawei_error(body: Any) -> tuple[str, str] | None:
    """(code, message) from a Huawei error body: one object, an array of them, or Keystone's
    ``{"error": {...}}``; None when the body is none of these."""
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("error"), dict):
        body = {"error_code": body["error"].get("code"), "error_msg":
                body["error"].get("message") or body["error"].get("title")}
    code, message = body.get("error_code"), body.get("error_msg")
    if not isinstance(message, str) or not message.strip():
        return None
    # Keystone's numeric code only repeats the HTTP status; Huawei's codes say more.
    code_text = code.strip()[:40] if isinstance(code, str) else ""
    return code_text, message.strip()[:300]


def _detail(response: httpx.Response) -> str:
    found = huawei_error(json_or_none(response))
    if found is None:
        return error_text(response)
    code, text = found
    source = " from Huawei API Gateway" if code.upper().startswith("APIGW") else ""
    return f"{code}{source}: {text}" if code else text


def answer_classifier(label: str, user: str, domain: str) -> Classifier:
    """The KooSearch client's ``classify`` hook; ``user`` and ``domain`` name the IAM user
    whose token was refused."""

    def read(response: httpx.Response) -> ProviderError | None:
        status = response.status_code
        if response.is_success:
            body = json_or_none(response)
            found = huawei_error(body) if isinstance(body, dict) and "error_code" in body else None
            if found is None:
                return None
            return PermanentError(f"{label} refused the request: {found[0]} {found[1]}",
                                  status=status)
        detail = _detail(response)
        if status == 401:
            message = (f"{label} refused a freshly issued IAM token of user {user} in "
                       f"account {domain}: {detail}")
        elif status == 403:
            message = f"{label}: forbidden: the IAM user lacks {label} permissions ({detail})"
        else:
            message = f"{label} answered {status}: {detail}"
        return classify(response, label=label, auth_statuses=AUTH_STATUSES, message=message)

    return read
