"""Character.AI's error answers, shared by the chat v2 and legacy providers, as the public
clients (PyCharacterAI, kramcat/CharacterAI, node_characterai) and their issue trackers
report them.

The generic ``http.classify`` reads a status code; Character.AI needs the body as well:

- ``{"command": "neo_error", "comment": ...}`` (maybe with ``error_code``/``sub_code``) is a
  refusal even under HTTP 200; a comment saying "not found"/"doesn't exist" is NotFound,
  any other is PermanentError. Under 5xx it stays a TemporaryError.
- ``{"force_login": true}`` (guests) is an AuthError whatever the status.
- A 2xx ``{"status": "Error…"|"NOT_OK", "error": ...}`` (old plus style) is a refusal.
- 401 is a bad token (AuthError, "Maybe your token is invalid?", as PyCharacterAI says).
- 403 depends on the body: JSON such as ``{"detail": "Authentication credentials were not
  provided."}`` is a bad token; an HTML page is NOT: a Cloudflare block or challenge is
  RateLimited (error 1015) or TemporaryError, and Django's "CSRF verification failed"
  (the endpoint wants browser cookies) is a PermanentError. A JSON neo_error under 403 is
  the token working but the action refused (PermanentError).
- 429 with a body that is not JSON (Cloudflare, ``Retry-After`` often absent), or any
  non-JSON answer that says "error code: 1015" (as text or as an HTML page), is RateLimited
  with a readable reason; a JSON 429 is left to the shared client (Retry-After, retries).
- Another HTML 4xx page served by Cloudflare (not 404/405) is a TemporaryError.
- 5xx and 408 are left to the shared client, which retries reads and shows the reason
  phrase, never the HTML.

``classifier(label)`` is the ``classify`` hook of every Character.AI ``HttpClient``: it
raises the right error before the generic reading sees the answer, and only where the
generic result would be wrong, so 5xx/408 and JSON 429 keep the client's retries. What it
raises is final: a Cloudflare block lasts minutes, so retrying it at once only prolongs it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from ..errors import (
    AuthError,
    NotFound,
    PermanentError,
    ProviderError,
    RateLimited,
    TemporaryError,
)
from ..http import Classifier, json_or_none, parse_retry_after

LABEL = "Character.AI"
# Its public hosts, for both APIs: chat v2 (neo), the account and v1 (plus), the old v1.
HOSTS = ("neo.character.ai", "plus.character.ai", "beta.character.ai")
# Where Character.AI puts its text: neo uses `comment`, plus `detail`/`error`/`status`.
ERROR_KEYS = ("comment", "detail", "error", "status", "message")
# 403 is decided from the body by the hook, so only 401 means "bad token" to the client.
AUTH_STATUSES = (401,)
AUTH_HINT = "Maybe your token is invalid?"

_CF_CODE = re.compile(r"error(?:\s+code)?\s*:?\s*(1\d{3})\b", re.IGNORECASE)
_CF_MARKERS = ("cloudflare", "cf-ray", "cf-error", "just a moment", "attention required",
               "waiting room", "cf_chl")
_NOT_FOUND = re.compile(r"not\s+found|does\s*n[o']t\s+exist|no\s+such", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]*>")
_TOKEN_PREFIX = re.compile(r"^token(?:\s+|$)", re.IGNORECASE)
_CLIENT_RETRIES = frozenset({408, 500, 502, 503, 504})


def normalize_token(raw: str) -> str:
    """The bare token: surrounding space and a pasted leading "Token " removed."""
    return _TOKEN_PREFIX.sub("", raw.strip()).strip()


def auth_headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Token {normalize_token(token)}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }


def is_html(response: httpx.Response) -> bool:
    kind = response.headers.get("Content-Type", "").lower()
    return "text/html" in kind or response.text.lstrip()[:1] == "<"


def cloudflare_code(response: httpx.Response) -> int | None:
    """The Cloudflare error number ("error code: 1015") a page carries, if any."""
    # Cloudflare's pages spread "Error 1015" over several tags.
    match = _CF_CODE.search(_TAGS.sub(" ", response.text[:20000]))
    return int(match.group(1)) if match else None


def _is_cloudflare(response: httpx.Response) -> bool:
    if "cloudflare" in response.headers.get("Server", "").lower():
        return True
    head = response.text[:20000].lower()
    return cloudflare_code(response) is not None or any(m in head for m in _CF_MARKERS)


def body_text(body: Any) -> str:
    """The provider's explanation from a JSON body, trimmed; "" when it has none."""
    if not isinstance(body, dict):
        return ""
    for key in ERROR_KEYS:
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:300]
        if isinstance(value, dict | list) and value:
            return json.dumps(value)[:300]
    return ""


def _refusal(body: Any) -> bool:
    """A JSON body that says the request failed although the status may be 2xx."""
    if not isinstance(body, dict):
        return False
    if body.get("command") == "neo_error":
        return True
    status = body.get("status")
    if isinstance(status, str) and (status.lower().startswith("error") or status == "NOT_OK"):
        return True
    return "error" in body and body.get("error") not in (None, "", False)


def _codes(body: dict[str, Any]) -> str:
    parts = [f"{key} {body[key]}" for key in ("error_code", "sub_code")
             if isinstance(body.get(key), str | int) and not isinstance(body.get(key), bool)]
    return f" ({', '.join(parts)})" if parts else ""


def classify_response(response: httpx.Response, *, label: str = LABEL) -> ProviderError | None:
    """The error a Character.AI answer means, or None when it is a success."""
    status = response.status_code
    body = json_or_none(response)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if isinstance(body, dict) and body.get("force_login") is True:
        return AuthError(f"{label} wants a logged-in session (force_login). {AUTH_HINT}",
                         status=status)
    if response.is_success:
        if not _refusal(body):
            return None
        text = body_text(body) or "an error without explanation"
        kind = NotFound if _NOT_FOUND.search(text) else PermanentError
        return kind(f"{label} refused the request: {text}{_codes(body)}", status=status)
    html = body is None and is_html(response)
    # Cloudflare answers API clients with an HTML page or a bare "error code: 1015".
    code = cloudflare_code(response) if body is None else None
    if code == 1015 or (status == 429 and body is None):
        what = f"error {code}: rate limited" if code else f"HTTP {status}: rate limited"
        return RateLimited(f"{label}'s Cloudflare front blocked the request ({what})",
                           retry_after=retry_after, status=status)
    if status == 401:
        text = body_text(body) or f"HTTP {status}"
        return AuthError(f"{label} refused the token ({text}). {AUTH_HINT}", status=status)
    if status == 403:
        if html or body is None:
            if "csrf" in response.text[:20000].lower():
                return PermanentError(
                    f"{label} refused the request with a CSRF check (HTTP 403): the endpoint "
                    "wants browser cookies; the token itself may be fine", status=status)
            what = f"error {code}" if code else "HTTP 403 challenge page"
            return TemporaryError(f"{label}'s Cloudflare front blocked the request ({what}); "
                                  "try again later", status=status)
        if isinstance(body, dict) and body.get("command") == "neo_error":
            return PermanentError(f"{label} refused the request: "
                                  f"{body_text(body) or 'forbidden'}{_codes(body)}", status=status)
        text = body_text(body) or "forbidden"
        return AuthError(f"{label} refused the token ({text}). {AUTH_HINT}", status=status)
    if status == 429:
        text = body_text(body) or "too many requests"
        return RateLimited(f"{label} asked us to slow down ({text})",
                           retry_after=retry_after, status=status)
    if html and _is_cloudflare(response) and status < 500 and status not in (404, 405):
        return TemporaryError(f"{label}'s Cloudflare front answered {status}"
                              f"{f' (error {code})' if code else ''}", status=status)
    if status >= 500 or status == 408:
        reason = response.reason_phrase or "server error"
        source = "Cloudflare" if html and _is_cloudflare(response) else label
        return TemporaryError(f"{label} answered {status}: {reason} ({source})", status=status)
    text = body_text(body) or (response.reason_phrase or f"HTTP {status}")
    extra = _codes(body) if isinstance(body, dict) else ""
    kind = NotFound if status == 404 or _NOT_FOUND.search(text) else PermanentError
    return kind(f"{label} answered {status}: {text}{extra}", status=status)


def classifier(label: str = LABEL) -> Classifier:
    """HttpClient's ``classify`` hook for Character.AI: raises the error an answer means,
    with ``label`` naming the provider in its message."""

    def classify(response: httpx.Response) -> None:
        status = response.status_code
        if status in _CLIENT_RETRIES:
            return  # the shared client retries these (reads) and keeps a short reason
        if status == 429 and json_or_none(response) is not None:
            return  # a JSON 429: the shared client honours Retry-After and retries
        error = classify_response(response, label=label)
        if error is not None:
            raise error

    return classify
