"""CSRF protection: one random token per session, sent back by every form and by the
browser's API calls (header X-CSRF-Token), compared in constant time.

The session cookie is signed by Flask, so the token cannot be forged by a third site;
SameSite=Lax keeps the cookie off cross-site POSTs as a second line. A small module of
our own rather than Flask-WTF: the whole mechanism is these few lines, and the forms
here are generated from metadata rather than declared as WTForms classes.
"""

from __future__ import annotations

import hmac
import secrets

from flask import request, session

SESSION_KEY = "csrf"
FORM_FIELD = "_csrf"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def token() -> str:
    """The session's token, created on first use."""
    value = session.get(SESSION_KEY)
    if not isinstance(value, str) or len(value) < 32:
        value = secrets.token_urlsafe(32)
        session[SESSION_KEY] = value
    return value


def rotate() -> str:
    """A fresh token (at login and logout, so a token seen before does not carry over)."""
    session[SESSION_KEY] = secrets.token_urlsafe(32)
    return session[SESSION_KEY]


def matches(candidate: object) -> bool:
    expected = session.get(SESSION_KEY)
    if not isinstance(expected, str) or not expected or not isinstance(candidate, str) or not candidate:
        return False
    return hmac.compare_digest(expected.encode(), candidate.encode())


def request_is_valid() -> bool:
    """True for safe methods; otherwise the form field or the header must carry the token."""
    if request.method in SAFE_METHODS:
        return True
    candidate = request.headers.get(HEADER) or request.form.get(FORM_FIELD)
    return matches(candidate)
