"""A small, real OAuth 2.0 token endpoint on loopback, standing in for Chutes' IdP in tests.

It speaks the two grants the server uses (RFC 6749 section 6, refresh_token; section 4.1.3,
authorization_code with a PKCE verifier), checks the client credentials, and rotates refresh
tokens: each refresh spends the old one, so a second refresh with the same token is
``invalid_grant``, exactly what makes concurrent refreshes dangerous. It counts calls, can revoke a
token, can hang (for the timeout and the circuit breaker), fail with 503, and be stopped.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

CLIENT_ID = "oro-test-client"
CLIENT_SECRET = "oro-test-client-secret-7c1f"  # a value tests grep for in logs and answers
REDIRECT_URI = "http://127.0.0.1:8976/callback"
BASE_URL = "http://127.0.0.1:9/inference/v1"  # never called: the validator would use it


@dataclass
class Calls:
    refresh: int = 0
    exchange: int = 0
    refused: int = 0
    total: int = 0


@dataclass
class TokenServer:
    expires_in: int = 3600
    mode: str = "ok"  # ok | hang | fail
    delay: float = 0.0  # seconds to think before answering (to make refreshes overlap)
    calls: Calls = field(default_factory=Calls)
    refresh_tokens: set[str] = field(default_factory=set)  # currently valid
    issued_access: list[str] = field(default_factory=list)
    codes: dict[str, tuple[str, str, str]] = field(
        default_factory=dict
    )  # code -> (verifier, redirect, refresh)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)
    _httpd: ThreadingHTTPServer | None = None

    # --- the test's side -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/idp/token"

    def settings_overrides(self, **more: Any) -> dict[str, Any]:
        """Settings that point the server at this endpoint (short timeout: tests wait for it)."""
        return {
            "require_inference_credential": True,
            "chutes_token_url": self.url,
            "chutes_client_id": CLIENT_ID,
            "chutes_client_secret": CLIENT_SECRET,
            "chutes_base_url": BASE_URL,
            "chutes_redirect_uris": REDIRECT_URI,
            "inference_timeout_seconds": 1.0,
            "inference_breaker_seconds": 30,
            **more,
        }

    def issue_refresh_token(self) -> str:
        token = "rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self.refresh_tokens.add(token)
        return token

    def issue_code(self, verifier: str, redirect_uri: str = REDIRECT_URI) -> str:
        code = "code-" + secrets.token_urlsafe(16)
        with self._lock:
            self.codes[code] = (verifier, redirect_uri, "rt-" + secrets.token_urlsafe(24))
        return code

    def revoke_all(self) -> None:
        with self._lock:
            self.refresh_tokens.clear()

    def hang(self) -> None:
        self.mode = "hang"
        self._release.clear()

    def recover(self) -> None:
        self.mode = "ok"
        self._release.set()

    def start(self) -> TokenServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    # --- the endpoint ----------------------------------------------------------------------------

    def answer(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.calls.total += 1
        if self.mode == "hang":  # a provider that is down: it never gets to the grant
            self._release.wait(timeout=30)
            return 503, {"error": "temporarily_unavailable"}
        if self.mode == "fail":
            return 503, {"error": "temporarily_unavailable"}
        if self.delay:
            time.sleep(self.delay)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return 401, {"error": "invalid_client"}
        grant = form.get("grant_type")
        with self._lock:
            if grant == "refresh_token":
                self.calls.refresh += 1
                old = form.get("refresh_token", "")
                if old not in self.refresh_tokens:
                    self.calls.refused += 1
                    return 400, {"error": "invalid_grant", "error_description": f"unknown token {old}"}
                self.refresh_tokens.discard(old)  # rotation: the old one is spent
                return 200, self._tokens()
            if grant == "authorization_code":
                self.calls.exchange += 1
                found = self.codes.pop(form.get("code", ""), None)
                if (
                    found is None
                    or found[0] != form.get("code_verifier")
                    or found[1] != form.get("redirect_uri")
                ):
                    self.calls.refused += 1
                    return 400, {"error": "invalid_grant"}
                return 200, self._tokens(found[2])
        return 400, {"error": "unsupported_grant_type"}

    def _tokens(self, refresh: str | None = None) -> dict[str, Any]:
        refresh = refresh or "rt-" + secrets.token_urlsafe(24)
        access = "at-" + secrets.token_urlsafe(24)
        self.refresh_tokens.add(refresh)
        self.issued_access.append(access)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": refresh,
        }

    def current_refresh_tokens(self) -> set[str]:
        with self._lock:
            return set(self.refresh_tokens)


def _handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length).decode()
            form = {key: values[0] for key, values in parse_qs(raw).items()}
            status, body = server.answer(form)
            payload = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                pass

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return Handler
