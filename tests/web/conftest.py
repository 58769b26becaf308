"""Helpers for the web UI's view tests (Flask test client) and browser tests."""

from __future__ import annotations

import re
import sys
import threading
import traceback

import pytest

from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.conftest import ADMIN_PASSWORD, make_user


def csrf_of(client) -> str:
    """The session's CSRF token (visiting the login page creates one if needed)."""
    with client.session_transaction() as session:
        token = session.get("csrf")
    if token:
        return token
    client.get("/login")
    with client.session_transaction() as session:
        return session["csrf"]


def post(client, url: str, data: dict | None = None, **kwargs):
    """POST a form the way the page would: with the session's CSRF token."""
    body = dict(data or {})
    body.setdefault("_csrf", csrf_of(client))
    return client.post(url, data=body, **kwargs)


def login(client, username: str, password: str):
    client.get("/login")
    return post(client, "/login", {"username": username, "password": password})


def form_values(html: str) -> dict:
    """The hidden inputs of a page (version, id, ...)."""
    return dict(re.findall(r'<input type="hidden" name="(_[a-z_]+)" value="([^"]*)"', html))


@pytest.fixture
def system(runtime) -> RecordService:
    return RecordService(runtime, Principal.system(), source="test")


@pytest.fixture
def admin_client(app):
    client = app.test_client()
    response = login(client, "admin", ADMIN_PASSWORD)
    assert response.status_code == 303, response.text
    return client


@pytest.fixture
def rep(runtime, client):
    return make_user(runtime, client, "rita", ["sales_rep"])


@pytest.fixture
def rep_client(app, rep):
    client = app.test_client()
    assert login(client, rep.username, rep.password).status_code == 303
    return client


def new_lead(service: RecordService, company: str, **values) -> dict:
    data = {"company": company, "source": "web", "email": f"{re.sub(r'[^a-z0-9]', '', company.lower())}@example.com"}
    data.update(values)
    return service.create("lead", data)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """When a browser test times out waiting for the in-process server, show where every thread
    of this process is at that moment (a request stuck on a lock, a busy thread an earlier test
    left running), so a timeout in a full run says why instead of only that it happened."""
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is None or "TimeoutError" not in call.excinfo.typename:
        return
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    stacks = []
    for ident, frame in sys._current_frames().items():
        stacks.append(f"--- thread {names.get(ident, ident)} ---\n" + "".join(traceback.format_stack(frame)[-12:]))
    report.sections.append(("threads at the timeout", "\n".join(stacks)))
