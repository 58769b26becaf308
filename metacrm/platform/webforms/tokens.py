"""Signed form tokens: what a public form carries instead of the session's CSRF token.

A token is `<issued>.<nonce>.<signature>`: the epoch second it was issued, 16 random bytes, and
an HMAC-SHA256 (the app's secret key) over the form's name, the time and the nonce. It proves
the post comes from a page this server rendered for this form, within MAX_AGE; the nonce is
stored with the submission (mc_web_form_submission.nonce, unique), so a token is used once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

MAX_AGE = 2 * 3600  # seconds a rendered form stays valid
CLOCK_SKEW = 60  # a token "from the future" by less than this is accepted (several servers)


def _signature(secret: str, form: str, issued: int, nonce: str) -> str:
    message = f"web_form|{form}|{issued}|{nonce}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def issue(secret: str, form: str, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    nonce = secrets.token_urlsafe(16)
    return f"{issued}.{nonce}.{_signature(secret, form, issued, nonce)}"


def check(secret: str, form: str, token: object, now: float | None = None) -> tuple[str | None, str | None]:
    """(nonce, None) for a good token; (None, why) with why in "forged", "expired"."""
    if not isinstance(token, str) or len(token) > 200 or token.count(".") != 2:
        return None, "forged"
    issued_text, nonce, signature = token.split(".")
    if not issued_text.isdigit() or not nonce:
        return None, "forged"
    issued = int(issued_text)
    if not hmac.compare_digest(_signature(secret, form, issued, nonce), signature):
        return None, "forged"
    age = (time.time() if now is None else now) - issued
    if age > MAX_AGE or age < -CLOCK_SKEW:
        return None, "expired"
    return nonce, None
