"""A small OpenID Connect provider on loopback for the login tests: discovery, JWKS, an authorization endpoint that
redirects straight back with a code (the person "signing in" is set by the test), a token endpoint that answers an
RS256 id_token signed with a test key, and userinfo. Only what the authorization-code flow needs, checked strictly
enough (client secret, redirect URI, PKCE verifier) that a wrong request from the app fails the test."""

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

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "evalstudio-test"
CLIENT_SECRET = "test-client-secret"  # noqa: S105 - a loopback test provider
KID = "test-key-1"


@dataclass
class Identity:
    """The person who "signs in" at the provider next."""

    sub: str
    email: str
    email_verified: bool = True


@dataclass
class Provider:
    url: str
    server: ThreadingHTTPServer
    key: rsa.RSAPrivateKey
    identity: Identity | None = None
    # Sign the next id_token with this key instead (a forged token) or for this audience.
    signing_key: rsa.RSAPrivateKey | None = None
    audience: str = CLIENT_ID
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, Identity] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def id_token(self, identity: Identity, nonce: str | None) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": identity.sub,
            "aud": self.audience,
            "iat": now,
            "exp": now + 300,
            "email": identity.email,
            "email_verified": identity.email_verified,
        }
        if nonce:
            claims["nonce"] = nonce
        return jwt.encode(claims, self.signing_key or self.key, algorithm="RS256", headers={"kid": KID})


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            provider.requests.append(parts.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/.well-known/openid-configuration":
                self._json(
                    200,
                    {
                        "issuer": provider.url,
                        "authorization_endpoint": f"{provider.url}/authorize",
                        "token_endpoint": f"{provider.url}/token",
                        "userinfo_endpoint": f"{provider.url}/userinfo",
                        "jwks_uri": f"{provider.url}/jwks",
                        "id_token_signing_alg_values_supported": ["RS256"],
                    },
                )
            elif parts.path == "/jwks":
                jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(provider.key.public_key()))
                self._json(200, {"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]})
            elif parts.path == "/authorize":
                if query.get("client_id") != CLIENT_ID or provider.identity is None:
                    self._json(400, {"error": "invalid_request"})
                    return
                code = secrets.token_urlsafe(16)
                provider.codes[code] = {
                    "identity": provider.identity,
                    "nonce": query.get("nonce"),
                    "redirect_uri": query["redirect_uri"],
                    "challenge": query.get("code_challenge"),
                }
                self.send_response(302)
                self.send_header(
                    "Location", f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
                )
                self.end_headers()
            elif parts.path == "/userinfo":
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                identity = provider.tokens.get(token)
                if identity is None:
                    self._json(401, {"error": "invalid_token"})
                    return
                self._json(
                    200, {"sub": identity.sub, "email": identity.email, "email_verified": identity.email_verified}
                )
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            provider.requests.append(self.path)
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if self.path != "/token":
                self._json(404, {"error": "not_found"})
                return
            grant = provider.codes.pop(form.get("code", ""), None)
            if (
                grant is None
                or form.get("client_id") != CLIENT_ID
                or form.get("client_secret") != CLIENT_SECRET
                or form.get("redirect_uri") != grant["redirect_uri"]
            ):
                self._json(400, {"error": "invalid_grant"})
                return
            if grant["challenge"]:
                digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["challenge"]:
                    self._json(400, {"error": "invalid_grant", "error_description": "PKCE"})
                    return
            access = secrets.token_urlsafe(16)
            provider.tokens[access] = grant["identity"]
            self._json(
                200,
                {
                    "access_token": access,
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": provider.id_token(grant["identity"], grant["nonce"]),
                },
            )

    return Handler


def start_provider() -> Provider:
    # 2048 bits: the smallest size PyJWT accepts for RS256 without a warning; generated once per test module.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    provider = Provider(url=f"http://127.0.0.1:{server.server_address[1]}", server=server, key=key)
    server.RequestHandlerClass = _handler(provider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return provider
