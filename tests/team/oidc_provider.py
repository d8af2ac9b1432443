"""A small OpenID Connect provider for the tests: authorization code flow with PKCE, RS256
id tokens signed with a key made at start, a JWKS endpoint and userinfo. It is a real
identity provider on a loopback port, so the client library under test runs unmodified."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Person:
    sub: str
    preferred_username: str
    email: str
    groups: list[str] = field(default_factory=list)


class IdentityProvider:
    client_id = "lethe-test"
    client_secret = "lethe-test-secret"  # noqa: S105 - the test provider's own client

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(4)
        self.person: Person | None = None
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, Person] = {}
        self.token_requests: list[dict[str, list[str]]] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/authorize":
                    self.reply(*provider.authorize(query))
                elif url.path == "/jwks":
                    self.reply(200, provider.jwks())
                elif url.path == "/userinfo":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    person = provider.tokens.get(token)
                    self.reply(200, person.__dict__) if person else self.reply(401, {})
                else:
                    self.reply(404, {})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = parse_qs(body)
                provider.token_requests.append(form)
                self.reply(*provider.token({k: v[0] for k, v in form.items()}))

            def reply(self, status: int, payload: Any, location: str = "") -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def settings(self) -> dict[str, Any]:
        return {
            "LETHE_OIDC_ENABLED": True, "LETHE_LOCAL_LOGIN": False,
            "OIDC_RP_CLIENT_ID": self.client_id, "OIDC_RP_CLIENT_SECRET": self.client_secret,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{self.url}/authorize",
            "OIDC_OP_TOKEN_ENDPOINT": f"{self.url}/token",
            "OIDC_OP_USER_ENDPOINT": f"{self.url}/userinfo",
            "OIDC_OP_JWKS_ENDPOINT": f"{self.url}/jwks",
            "AUTHENTICATION_BACKENDS": ["dashboard.team.oidc.SubjectOIDCBackend",
                                        "django.contrib.auth.backends.ModelBackend"],
        }

    def authorize(self, query: dict[str, str]) -> tuple[int, Any, str]:
        if self.person is None or query.get("client_id") != self.client_id:
            return 400, {"error": "invalid_request"}, ""
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"person": self.person, "nonce": query.get("nonce"),
                            "challenge": query.get("code_challenge"),
                            "method": query.get("code_challenge_method"),
                            "redirect_uri": query["redirect_uri"]}
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return 302, {}, target

    def token(self, form: dict[str, str]) -> tuple[int, Any]:
        grant = self.codes.pop(form.get("code", ""), None)
        if (grant is None or form.get("client_secret") != self.client_secret
                or form.get("redirect_uri") != grant["redirect_uri"]):
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        if grant["method"] != "S256" or b64(hashlib.sha256(verifier.encode()).digest()) \
                != grant["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE check failed"}
        person: Person = grant["person"]
        access = secrets.token_urlsafe(16)
        self.tokens[access] = person
        now = int(time.time())
        claims = {"iss": self.url, "sub": person.sub, "aud": self.client_id, "iat": now,
                  "exp": now + 300, "nonce": grant["nonce"]}
        return 200, {"access_token": access, "token_type": "Bearer", "expires_in": 300,
                     "id_token": self.sign(claims)}

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64(signature)}"

    def jwks(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()

        def as_b64(n: int) -> str:
            return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))

        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                          "n": as_b64(numbers.n), "e": as_b64(numbers.e)}]}
