"""Sign-in sessions for the web pages, held in this process's memory.

The browser's cookie holds only a random session id (256 bits); the id maps here to the
organisation that signed in and its kind (trust, oversight body or auditor), the token they
signed in with (re-checked on every request, so revoking the token ends the session) and the
session's form token (CSRF). The token itself never reaches a cookie. Sessions end on sign-out,
after ``lifetime`` seconds, or when the process restarts; with several API processes behind one
address, route a browser to one process (or sign in again).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

LIFETIME_SECONDS = 8 * 3600  # a working day; signing in again takes a paste


@dataclass(frozen=True)
class WebSession:
    """One signed-in browser."""

    id: str
    org_code: str
    kind: str
    token_id: str
    csrf_token: str
    expires_at: float


class SessionStore:
    """Session ids to sessions; safe to share between the server's threads."""

    def __init__(
        self,
        *,
        lifetime: float = LIFETIME_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lifetime = lifetime
        self._clock = clock
        self._sessions: dict[str, WebSession] = {}
        self._lock = threading.Lock()

    def create(self, *, org_code: str, kind: str, token_id: str) -> WebSession:
        """A new session with a fresh id and form token (never reuses an id it was given)."""
        now = self._clock()
        session = WebSession(
            id=secrets.token_urlsafe(32),
            org_code=org_code,
            kind=kind,
            token_id=token_id,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=now + self._lifetime,
        )
        with self._lock:
            for stale in [k for k, s in self._sessions.items() if s.expires_at <= now]:
                del self._sessions[stale]
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> WebSession | None:
        """The live session with this id, or None (unknown, expired or signed out)."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires_at <= self._clock():
                del self._sessions[session_id]
                return None
            return session

    def delete(self, session_id: str | None) -> None:
        """End a session (idempotent)."""
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)
