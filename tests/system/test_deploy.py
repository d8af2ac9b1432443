"""The deploy kit end to end: nginx with TLS in front of gunicorn, the Celery worker and beat
as the systemd units start them, PostgreSQL and Redis, and sign-in through a real OpenID
Connect provider (panva's oidc-provider) or through nginx itself. Headless Chromium signs
in over HTTPS, syncs, erases and reads the receipt; plain HTTP clients check what a browser
is told (HSTS, secure cookies, CSP, cache lifetimes) and what a client cannot fake."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model

from dashboard.models import ErasureItem, ErasureJob
from tests.helpers import make_connection
from tests.services import binary
from tests.views.test_browser import CHROMIUM, FLAGS, accessibility_problems

from .site import HOST, Site, bring_up, new_site, oidc_provider

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def oidc_site(tmp_path: Path, servers, transactional_db) -> Iterator[Site]:  # type: ignore[no-untyped-def]
    site = new_site(tmp_path / "oidc", servers.redis.url,
                    LETHE_OIDC_CLIENT_ID="lethe", LETHE_OIDC_SCOPES="openid email profile groups")
    try:
        issuer = oidc_provider(site, "lethe", "lethe-e2e-secret", groups="lethe-operators")
        site.env.update({
            "LETHE_OIDC_CLIENT_SECRET": "lethe-e2e-secret",
            "LETHE_OIDC_AUTHORIZATION_ENDPOINT": f"{issuer}/auth",
            "LETHE_OIDC_TOKEN_ENDPOINT": f"{issuer}/token",
            "LETHE_OIDC_USERINFO_ENDPOINT": f"{issuer}/me",
            "LETHE_OIDC_JWKS_ENDPOINT": f"{issuer}/jwks",
        })
        bring_up(site, "identity-none.conf")
        yield site
    finally:
        site.stop()
        print(site.logs())


@pytest.fixture
def basic_auth_site(tmp_path: Path, servers, transactional_db) -> Iterator[Site]:  # type: ignore[no-untyped-def]
    site = new_site(tmp_path / "basic", servers.redis.url,
                    LETHE_SSO_HEADER_USER="X-Forwarded-User",
                    LETHE_SSO_HEADER_GROUPS="X-Forwarded-Groups",
                    LETHE_SSO_TRUSTED_PROXIES="127.0.0.1")
    hashed = subprocess.run([binary("openssl", "apt-get install openssl"), "passwd", "-apr1",
                             "bob-password"], capture_output=True, text=True, check=True)
    (site.workdir / "htpasswd").write_text(f"bob:{hashed.stdout.strip()}\n")
    try:
        bring_up(site, "identity-basic-auth.conf", {
            "LETHE_HTPASSWD": str(site.workdir / "htpasswd"),
            "LETHE_BASIC_AUTH_GROUPS": "lethe-operators"}, workers=False)
        yield site
    finally:
        site.stop()
        print(site.logs())


@pytest.fixture
def chromium() -> Iterator[object]:
    # Playwright's sync API keeps an event loop in this thread; the ORM calls the test makes
    # between browser steps are ordinary blocking calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            *FLAGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1"])
        yield browser
        browser.close()


def client(site: Site, **kwargs: object) -> httpx.Client:
    """An HTTP client that reaches the site's nginx as the browser does, by its name."""
    return httpx.Client(base_url=f"https://127.0.0.1:{site.https_port}", verify=False,  # noqa: S501 - the test's own certificate
                        headers={"Host": f"{HOST}:{site.https_port}"}, **kwargs)  # type: ignore[arg-type]


def test_sign_in_with_openid_connect_over_tls_then_sync_erase_and_read_the_receipt(
        oidc_site, chromium, convai_fake, convai_server):
    context = chromium.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    # Lethe's pages only: the provider's development sign-in pages are not ours to judge.
    page.on("console", lambda m: errors.append(f"{m.location.get('url')}: {m.text}")
            if m.type == "error" and page.url.startswith(oidc_site.url) else None)

    # Lethe sends the browser to the provider; its own sign-in pages take any password.
    page.goto(f"{oidc_site.url}/")
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", "whatever")
    page.click("button[type=submit]")
    page.click("button[type=submit]:has-text('Continue')")  # consent
    page.wait_for_url(f"{oidc_site.url}/")
    assert "alice · operator" in page.inner_text("header")  # the provider's groups, as a role

    alice = get_user_model().objects.get(username="alice")
    connection = make_connection(alice, convai_server.url)
    page.goto(f"{oidc_site.url}/connections/{connection.pk}/")
    page.click("text=Sync now")  # queued to the worker the unit started
    page.wait_for_selector("#sync-status .banner-success")

    page.click("nav >> text=Conversations")
    boxes = page.locator("input[data-row]")
    boxes.nth(0).click()
    boxes.nth(1).click()
    page.click("button[data-erase]")
    page.wait_for_selector("text=Review what will be erased")
    page.click("button[value=erase]")
    page.wait_for_selector("#job-status[data-job-status=done]", timeout=60_000)
    job = ErasureJob.objects.get()
    assert job.counts()[ErasureItem.State.VERIFIED] == 2
    page.goto(f"{oidc_site.url}/jobs/{job.pk}/receipt/")
    assert f"Receipt for job #{job.pk}" in page.inner_text("main")
    erased = set(job.items.values_list("provider_id", flat=True))
    assert not erased & {s for c in convai_fake.character_ids() for s in convai_fake.session_ids(c)}
    assert not accessibility_problems(page)
    assert not errors, errors

    # What the browser was told, on the way.
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["sessionid"]["secure"] and cookies["sessionid"]["httpOnly"]
    assert cookies["csrftoken"]["secure"]
    context.close()


def test_what_nginx_and_lethe_tell_a_browser(oidc_site):
    with client(oidc_site) as https:
        login = https.get("/accounts/login/")
        assert login.headers["strict-transport-security"].startswith("max-age=31536000")
        assert "default-src 'self'" in login.headers["content-security-policy"]
        assert login.headers["x-frame-options"] == "DENY"
        assert "server" not in login.headers or "nginx/" not in login.headers["server"]
        # Static files come with their hashed names, cached for a year.
        manifest = json.loads((oidc_site.workdir / "static" / "staticfiles.json").read_text())
        static = https.get(f"/static/{manifest['paths']['css/lethe.css']}")
        assert static.status_code == 200
        assert "immutable" in static.headers["cache-control"]
        assert int(static.headers["cache-control"].split("max-age=")[1].split(",")[0]) >= 31536000
        # A name Lethe does not answer to is refused, whatever nginx passed on.
        assert https.get("/accounts/login/", headers={"Host": "evil.test"}).status_code == 400
    with httpx.Client(base_url=f"http://127.0.0.1:{oidc_site.http_port}",
                      headers={"Host": HOST}) as http:
        moved = http.get("/jobs/?x=1")
        assert moved.status_code == 301
        assert moved.headers["location"] == f"https://{HOST}/jobs/?x=1"


def test_nginx_signs_people_in_and_a_client_cannot_pass_for_someone_else(basic_auth_site):
    with client(basic_auth_site) as https:
        assert https.get("/").status_code == 401  # nginx asks first
        bob = ("bob", "bob-password")
        home = https.get("/", auth=bob)
        assert home.status_code == 200 and "bob · operator" in home.text
        for forged in ({"X-Forwarded-User": "admin", "X-Forwarded-Groups": "lethe-admins"},
                       {"X_Forwarded_User": "admin"}):
            as_bob = https.get("/", auth=bob, headers=forged)
            assert as_bob.status_code == 200 and "bob · operator" in as_bob.text, forged
        assert not get_user_model().objects.filter(username="admin").exists()
