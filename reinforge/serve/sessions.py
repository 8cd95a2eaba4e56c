"""Web-UI sessions: the login form trades an API key for a session cookie, so that the key sits in no
URL and in no browser storage.

The cookie (``reinforge_session``) is HttpOnly (page scripts cannot read it) and SameSite=Strict (no
other site's page sends it). The server stores only its hash, with the key it stands for, a CSRF token
and an expiry. A request with the cookie acts as that key while the key is valid, so revoking the key
(or its expiry) ends its sessions at once. A state change (POST, DELETE, ...) made with the cookie must
also carry the session's CSRF token in ``X-CSRF-Token`` and, when the browser sends ``Origin``, come
from this server's own origin. ``Authorization: Bearer`` requests need none of this.

>>> from reinforge.serve.db import create_key, make_engine
>>> eng = make_engine("sqlite://")
>>> key_id, key = create_key(eng, "alice")
>>> token, csrf = start_session(eng, key_id)
>>> session_key(eng, token)[0].id == key_id
True
>>> end_session(eng, token)
>>> session_key(eng, token) is None
True
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Mapping

from sqlalchemy import Float, ForeignKey, String, delete
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from reinforge.serve.db import ApiKey, Base, hash_key, usable_key

COOKIE = "reinforge_session"
CSRF_HEADER = "x-csrf-token"
SESSION_TTL_S = 12 * 3600.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class UiSession(Base):
    __tablename__ = "ui_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie; never the cookie
    key_id: Mapped[str] = mapped_column(String(64), ForeignKey("api_keys.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


def start_session(engine: Engine, key_id: str, ttl_s: float = SESSION_TTL_S) -> tuple[str, str]:
    """A new session for the key ``key_id``: (the cookie's value, the CSRF token)."""
    token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(24), time.time()
    with Session(engine) as s:
        s.add(UiSession(id=hash_key(token), key_id=key_id, csrf=csrf, created_at=now, expires_at=now + ttl_s))
        s.commit()
    return token, csrf


def session_key(engine: Engine, token: str) -> tuple[ApiKey, str] | None:
    """The valid key a session cookie stands for and the session's CSRF token; None (and the session is
    removed) once the session has expired or its key is revoked, expired or gone."""
    with Session(engine, expire_on_commit=False) as s:
        row = s.get(UiSession, hash_key(token))
        if row is None:
            return None
        key = usable_key(s.get(ApiKey, row.key_id)) if row.expires_at > time.time() else None
        if key is None:
            s.delete(row)
            s.commit()
            return None
        return key, row.csrf


def end_session(engine: Engine, token: str) -> None:
    with Session(engine) as s:
        s.execute(delete(UiSession).where(UiSession.id == hash_key(token)))
        s.commit()


def csrf_problem(method: str, headers: Mapping[str, str], csrf: str, own_origin: str) -> str | None:
    """Why a cookie-authenticated request may not change state (None: it may).

    >>> csrf_problem("POST", {"x-csrf-token": "t"}, "t", "http://h:1")
    >>> csrf_problem("POST", {"x-csrf-token": "t", "origin": "http://evil"}, "t", "http://h:1")
    "origin 'http://evil' is not this server's ('http://h:1')"
    >>> csrf_problem("DELETE", {}, "t", "http://h:1")
    'missing or wrong X-CSRF-Token header'
    """
    if method.upper() in SAFE_METHODS:
        return None
    origin = headers.get("origin")
    if origin is not None and origin.rstrip("/") != own_origin.rstrip("/"):
        return f"origin {origin!r} is not this server's ({own_origin!r})"
    if not hmac.compare_digest(headers.get(CSRF_HEADER, "").encode(), csrf.encode()):
        return "missing or wrong X-CSRF-Token header"
    return None
