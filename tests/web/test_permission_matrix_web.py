"""The permission matrix through the web pages (session login with the form and CSRF): every
default role (and admin) x lead, account, opportunity x the owners of tests/test_permission_matrix.py
(own, subordinates by department / reporting line / role, other departments) x list page, detail
page, edit form (GET and POST), delete (POST) and the list page's Export link and download.

The expected answers come from the same role-document oracle as the REST matrix (never from
metacrm.platform.security): list shows the record iff the read scope reaches its owner; detail
200 / 404; edit 404 unless readable, then 200 (form) / 303 (saved) or 403; delete 404 unless
readable, then 303 or 403; the Export link is shown iff the export scope is not none, and the
download holds exactly the reached records (403 / 404 otherwise).
"""

from __future__ import annotations

import csv
import io
import re
import uuid

import pytest

from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.test_permission_matrix import (
    OBJECT_DOCS,
    PKG,
    ROLES,
    SCOPE_OF_OWNER,
    Tally,
    _value,
    build_org,
    reaches,
    scope_of,
    touch,
)
from tests.web.conftest import form_values, login, post

WEB_OBJECTS = ("lead", "account", "opportunity")


def layout_required(obj: str) -> list[dict]:
    """The fields the default layout makes required (the form refuses to save without them)."""
    import json

    layout = json.loads((PKG / "default_schemas" / "layouts" / f"{obj}_default.layout.json").read_text())
    names = set(layout.get("required") or [])
    return [f for f in OBJECT_DOCS[obj]["fields"] if f["name"] in names]


@pytest.fixture
def quick_passwords(monkeypatch):
    from tests.test_dedup import fast_hash

    monkeypatch.setattr("metacrm.platform.security.hash_password", fast_hash)
    monkeypatch.setattr("metacrm.platform.records.hash_password", fast_hash)


def _denied(role: str, obj: str) -> int:
    return 404 if scope_of(role, obj, "read") == "none" else 403


@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix_web(role, runtime, app, client, quick_passwords):
    org = build_org(runtime, client, role, WEB_OBJECTS)
    browser = app.test_client()
    assert login(browser, org.caller.username, org.caller.password).status_code == 303
    system = RecordService(runtime, Principal.system(), source="test")
    tally = Tally()
    for obj in WEB_OBJECTS:
        read, edit = scope_of(role, obj, "read"), scope_of(role, obj, "edit")
        export = scope_of(role, obj, "export")
        page = browser.get(f"/records/{obj}?limit=100&view=_all")  # the "All records" view, not a role default
        if read == "none":
            tally.check(f"list page {obj} as {role}", 404, page.status_code)
        else:
            tally.check(f"list page {obj} as {role}", 200, page.status_code)
            html = page.get_data(as_text=True)
            for owner_key, person in org.people.items():
                record = org.records[(obj, owner_key)]
                tally.check(f"list page {obj} as {role} shows {owner_key}'s record ({SCOPE_OF_OWNER[owner_key]})",
                            reaches(org, read, person.id), f"/records/{obj}/{record['id']}" in html)
            tally.check(f"list page {obj} as {role}: Export link", export != "none",
                        f"/records/{obj}/export" in html)
        download = browser.get(f"/records/{obj}/export")
        if export == "none":
            tally.check(f"export download {obj} as {role}", _denied(role, obj), download.status_code)
        else:
            tally.check(f"export download {obj} as {role}", 200, download.status_code)
            rows = list(csv.DictReader(io.StringIO(download.get_data(as_text=True).lstrip("\ufeff"))))
            ids = {row.get("id") for row in rows}
            for owner_key, person in org.people.items():
                record = org.records[(obj, owner_key)]
                tally.check(f"export download {obj} as {role} holds {owner_key}'s record",
                            reaches(org, export, person.id), record["id"] in ids)
        name = touch(obj)
        for owner_key, person in org.people.items():
            record = org.records[(obj, owner_key)]
            what = f"{obj} as {role}, {owner_key}'s record ({SCOPE_OF_OWNER[owner_key]})"
            readable = reaches(org, read, person.id)
            detail = browser.get(f"/records/{obj}/{record['id']}")
            tally.check(f"detail page {what}", 200 if readable else 404, detail.status_code)
            form = browser.get(f"/records/{obj}/{record['id']}/edit")
            expected = 404 if not readable else 200 if reaches(org, edit, person.id) else 403
            tally.check(f"edit form {what}", expected, form.status_code)
            hidden = form_values(form.get_data(as_text=True)) if form.status_code == 200 else {}
            data = {"_id": record["id"], "_version": hidden.get("_version", str(record["version"]))}
            value = f"web {uuid.uuid4().hex[:8]}"
            if name:
                data[name] = value
            for fdef in layout_required(obj):
                data.setdefault(fdef["name"], record.get(fdef["name"]) or _value(fdef, uuid.uuid4().hex[:8]))
            saved = post(browser, f"/records/{obj}/{record['id']}/edit", data)
            expected = 404 if not readable else 303 if reaches(org, edit, person.id) else 403
            tally.check(f"edit POST {what}", expected, saved.status_code,
                        re.sub(r"\s+", " ", saved.get_data(as_text=True))[:300] if expected != saved.status_code
                        else "")
            if name:
                tally.check(f"edit POST {what}: stored", expected == 303,
                            system.get(obj, record["id"]).get(name) == value)
    for obj in reversed(WEB_OBJECTS):
        read, delete = scope_of(role, obj, "read"), scope_of(role, obj, "delete")
        for owner_key, person in org.people.items():
            record = org.records[(obj, owner_key)]
            readable = reaches(org, read, person.id)
            expected = 404 if not readable else 303 if reaches(org, delete, person.id) else 403
            response = post(browser, f"/records/{obj}/{record['id']}/delete")
            tally.check(f"delete POST {obj} as {role}, {owner_key}'s record ({SCOPE_OF_OWNER[owner_key]})",
                        expected, response.status_code)
    print(f"web {role}: {tally.cases} cases")
    assert not tally.problems, f"{len(tally.problems)} of {tally.cases} cases wrong:\n" + "\n".join(tally.problems)
