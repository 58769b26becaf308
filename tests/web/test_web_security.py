"""Web security across every route the app has (enumerated from app.url_map, with real ids
from a seeded database): CSRF on every state-changing web rule, the session cookie's flags,
security headers on every GET page, and escaping of hostile record values on every page
that shows them. test_auth_views.py covers login, logout, the throttle and the API cookie."""

from __future__ import annotations

import csv
import hashlib
import io
import re

import pytest
import sqlalchemy as sa

from metacrm.platform import notifications
from metacrm.platform.clock import utcnow
from tests.conftest import ADMIN_PASSWORD, make_user
from tests.test_dedup import fast_hash
from tests.web.conftest import csrf_of, login, post

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
SSTI = "X{{7*7}}X"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture(autouse=True)
def quick_passwords(monkeypatch):
    monkeypatch.setattr("metacrm.platform.records.hash_password", fast_hash)


def notify(runtime, user_id: str, subject: str, **values) -> int:
    with runtime.transaction() as tx:
        return tx.conn.execute(notifications.notification.insert().values(
            key=f"test:{user_id}:{subject}", user_id=user_id, created_at=utcnow(), subject=subject,
            body=f"About {subject} {IMG}", **values)).inserted_primary_key[0]


@pytest.fixture
def seeded(runtime, app, client, system):
    """A rep with a manager; hostile text in a lead, an account (renamed: history), an
    opportunity, a pooled lead (released with a hostile reason), an approval request with a
    hostile comment and a notification. Returns the ids the URL rules need."""
    boss = make_user(runtime, client, "bea", ["sales_manager"])
    rep = make_user(runtime, client, "sam", ["sales_rep"], manager=boss.id)
    lead = system.create("lead", {"company": f"Lead {SCRIPT}", "contact_name": IMG, "project_name": SSTI,
                                  "source": "web", "product_line": "software", "owner": rep.id,
                                  "email": "hostile@example.com"})
    pooled = system.create("lead", {"company": f"Pooled {SCRIPT}", "contact_name": IMG, "project_name": SSTI,
                                    "source": "web", "owner": rep.id,
                                    "email": "pooled@example.com"})
    released = client.post(f"/api/v1/records/lead/{pooled['id']}/release", json={"reason": f"bye {SCRIPT} {SSTI}"},
                           headers=rep.headers)
    assert released.status_code == 200, released.get_json()
    assert system.get("lead", pooled["id"])["pool"] == "general_leads"
    account = system.create("account", {"name": f"Acct {IMG}", "owner": rep.id, "address": SSTI})
    system.update("account", account["id"], {"name": f"Acct {SCRIPT} {SSTI}"}, version=account["version"])
    submitted = client.post(f"/api/v1/records/account/{account['id']}/submit", json={"comment": f"{SCRIPT} {SSTI}"},
                            headers=rep.headers)
    assert submitted.status_code == 201, submitted.get_json()
    opportunity = system.create("opportunity", {"name": f"Opp {SCRIPT}", "account": account["id"], "stage":
                                                "qualification", "amount": "1000.00", "next_step": IMG,
                                                "competitor": SSTI, "owner": rep.id})
    admin_id = next(u["id"] for u in system.list("user")[0] if u["username"] == "admin")
    note = notify(runtime, admin_id, f"News {SCRIPT} {SSTI}", object="lead", record_id=lead["id"])
    web = app.test_client()
    assert login(web, "admin", ADMIN_PASSWORD).status_code == 303
    from metacrm.metadata.bundle import documents_bundle
    from metacrm.platform import db
    from metacrm.platform.apply import apply_change

    app_doc = dict(runtime.registry().get("app", "sales"))  # a revertible metadata change for the log pages
    app_doc["order"] = int(app_doc.get("order", 0)) + 1
    apply_change(runtime, documents_bundle([app_doc]))
    with runtime.engine.connect() as conn:  # the metadata change log's newest entry
        change = conn.execute(sa.select(sa.func.max(db.meta_change.c.id))).scalar()
    upload_id, job_id = _import_upload_and_job(web)
    from metacrm.platform.files import store as file_store

    task = system.create("activity", {"subject": f"Call {SCRIPT}", "type": "call", "related_to": lead["id"],
                                      "owner": admin_id, "due_date": "2026-12-24"})
    attached = file_store.add_file(system, "lead", lead["id"], file_store.Upload("notes.txt", "text/plain", b"hello"))
    mass_run = post(web, "/records/lead/mass/run", {"_ids": lead["id"], "_action": "update", "_field": "product_line",
                                                    "product_line": "hardware"})
    assert mass_run.status_code == 303, mass_run.text[:2000]
    return {"upload": upload_id, "job": job_id, "mass_job": mass_run.headers["Location"].rsplit("/", 1)[1], "lead": lead["id"], "pooled": pooled["id"], "account": account["id"], "opportunity": opportunity["id"],
            "request": submitted.get_json()["id"], "notification": note, "rep": rep, "boss": boss, "web": web,
            "change": change, "file": attached["id"], "task": task["id"]}


def _import_upload_and_job(web) -> tuple[str, str]:
    """An import wizard upload with hostile column names and values, and its finished job."""
    from metacrm.platform.imports import wait_for

    buffer = io.StringIO()
    csv.writer(buffer).writerows([["company", "source", "email", SSTI], [f"Imported {SCRIPT}", "web",
                                                                         "imp@example.com", IMG]])
    data = buffer.getvalue().encode()
    response = post(web, "/records/lead/import", {"file": (io.BytesIO(data), "x<b onmouseover=alert(1)>.csv")},
                    content_type="multipart/form-data")
    assert response.status_code == 303, response.text[response.text.find('id="main"'):][:1500]
    upload_id = response.headers["Location"].rsplit("/", 1)[1]
    base = f"/records/lead/import/{upload_id}"
    form = {"map.0": "company", "map.1": "source", "map.2": "email", "map.3": "", "mode": "insert"}
    assert post(web, base + "/preview", form).status_code == 200
    response = post(web, base + "/run")
    assert response.status_code == 303, response.text[:2000]
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    wait_for(job_id, timeout=60)
    return upload_id, job_id


def url_for_rule(rule, ids: dict) -> str:
    """The rule's path with real values for its arguments."""
    values = {"upload_id": ids["upload"], "job_id": ids["job"], "fmt": "csv", "object_name": "lead", "record_id": ids["lead"], "action_name": "convert", "pool_name": "general_leads",
              "request_id": ids["request"], "notification_id": ids["notification"], "kind": "object",
              "name": "lead", "action": "install", "filename": "app.css", "change_id": ids.get("change"), "field": "company",
              "file_id": ids["file"], "activity_id": ids["task"], "field_name": "company", "type": "formula"}
    if rule.endpoint.startswith("web.admin_plugin"):
        values["name"] = "erp_connector"
    if rule.endpoint.startswith("web.admin_role"):
        values["name"] = "sales_rep"
    if rule.endpoint.startswith("web.studio_approval"):
        values["name"] = "quote_discount"
    if rule.endpoint.startswith("web.studio_workflow"):
        values["name"] = "stalled_opportunity"
    if rule.endpoint == "web.studio_layout_designer":
        values["name"] = "lead_default"
    if rule.endpoint == "web.studio_layout_new":
        values["of_object"] = "lead"
    if rule.endpoint == "web.switch_app":
        values["name"] = "sales"
    if rule.endpoint.startswith("web.report_"):
        values["name"] = "leads_by_source_and_status"
    if rule.endpoint == "web.duplicate_rule_groups":
        values["rule_name"] = "lead_same_company_or_contact"
    if rule.endpoint == "web.record_mass_job":
        values["job_id"] = ids["mass_job"]
    if rule.endpoint.startswith(("web.web_form", "web.admin_web_form")):
        values["name"] = "contact_sales"
    if rule.endpoint == "web.create_from":  # a contract made from an opportunity
        values.update(object_name="opportunity", record_id=ids["opportunity"], target="contract")
    if rule.endpoint == "web.studio_pool_edit":
        values["name"] = "general_leads"
    if rule.endpoint == "web.studio_dedup_edit":
        values["name"] = "lead_same_company_or_contact"
    if rule.endpoint == "web.pool_record":  # a record waiting in the pool
        values["record_id"] = ids["pooled"]
    missing = set(rule.arguments) - set(values)
    assert not missing, f"add a value for {missing} ({rule.rule})"
    path = rule.rule
    for name in rule.arguments:
        path = re.sub(rf"<(?:[^:<>]+:)?{name}>", str(values[name]), path)
    return path


def web_rules(app, methods: set[str]):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") or not (rule.methods or set()) & methods:
            continue
        yield rule


def snapshot(engine) -> dict[str, str]:
    """A digest of every table's content: any write shows up as a changed digest."""
    meta = sa.MetaData()
    meta.reflect(engine)
    digests = {}
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            # when a session or token was last used is bookkeeping of every authenticated request
            # (GETs too), not a write the request made
            columns = [c for c in table.c if not (table.name in ("mc_session", "mc_token_use")
                                                  and c.name == "last_used_at")]
            query = sa.select(*columns)
            if table.name == "mc_login_failure":  # a public form's per-address count of posts
                query = query.where(~table.c.key.startswith("webform:"))
            rows = sorted(repr(tuple(row)) for row in conn.execute(query))
            digests[table.name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return digests


# --- CSRF on every state-changing web rule -------------------------------------------------------


def test_every_web_write_rule_refuses_a_post_without_a_valid_csrf_token(app, runtime, seeded, system):
    web = seeded["web"]
    token = csrf_of(web)
    rules = list(web_rules(app, WRITE_METHODS))
    assert len(rules) >= 15, [r.rule for r in rules]  # the enumeration found the app's forms
    # Form fields that would make each write do something if the check were missing.
    form = {"company": "CSRF Co", "source": "web", "email": "csrf@example.com", "name": "csrf_obj",
            "label": "CSRF", "type": "text", "decision": "approve", "comment": "csrf", "ids": seeded["pooled"],
            "one": seeded["pooled"], "user": seeded["rep"].id, "reason": "csrf", "_id": seeded["lead"],
            "_version": "1", "_action": "locale", "locale": "zh-CN", "username": "admin",
            "password": ADMIN_PASSWORD, "document": '{"kind": "object", "name": "csrf_obj", "fields": []}'}
    before = snapshot(runtime.engine)
    accepted = []
    for rule in rules:
        url = url_for_rule(rule, seeded)
        for method in sorted((rule.methods or set()) & WRITE_METHODS):
            attempts = [({}, dict(form)), ({}, {**form, "_csrf": "not-the-token"}),
                        ({"X-CSRF-Token": token[::-1]}, dict(form))]
            for headers, data in attempts:
                response = web.open(url, method=method, data=data, headers=headers)
                # a public web form checks its own signed form token instead (webforms/tokens.py)
                own_token = rule.endpoint == "web.web_form_submit"
                refused = response.status_code in (400, 403) and (
                    not rule.endpoint.startswith("web.") or "security token" in response.text
                    or (own_token and "could not be verified" in response.text))
                if not refused:
                    accepted.append(f"{method} {rule.rule} -> {response.status_code} ({sorted(headers) or 'form'})")
    assert not accepted, "accepted without a valid CSRF token:\n" + "\n".join(accepted)
    after = snapshot(runtime.engine)
    assert {name for name in before if before[name] != after.get(name)} == set()
    # the session still works and the real token still does (so the refusals above were the CSRF check)
    assert web.get("/").status_code == 200
    assert post(web, "/notifications/read_all").status_code == 303

    # the token of another (valid) session is refused too
    other = app.test_client()
    assert login(other, seeded["rep"].username, seeded["rep"].password).status_code == 303
    foreign = csrf_of(other)
    web = seeded["web"]
    assert foreign != csrf_of(web)
    response = web.post(f"/records/lead/{seeded['lead']}/delete", data={"_csrf": foreign})
    assert response.status_code == 400 and "security token" in response.text
    assert system.get("lead", seeded["lead"])["id"] == seeded["lead"]
    assert post(web, f"/records/lead/{seeded['lead']}/delete").status_code == 303  # its own token works
    assert system.list("lead", filter={"company": {"contains": "Lead "}})[0] == []


# --- the session cookie ------------------------------------------------------------------------


def session_cookie(response) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies, response.headers
    return cookies[-1]


def test_session_cookie_flags_and_secure_when_configured(runtime, client, monkeypatch):
    cookie = session_cookie(login(client, "admin", ADMIN_PASSWORD))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert "Expires" not in cookie  # a browser-session cookie; the server ends it after 12 hours

    from metacrm.platform.app import create_app
    from metacrm.platform.config import Config

    monkeypatch.setenv("METACRM_COOKIE_SECURE", "1")
    assert Config.from_env().cookie_secure is True
    monkeypatch.setenv("METACRM_COOKIE_SECURE", "0")
    assert Config.from_env().cookie_secure is False

    runtime.config.cookie_secure = True
    try:
        secure_app = create_app(runtime.config, runtime)
    finally:
        runtime.config.cookie_secure = False
    secure_app.config["TESTING"] = True
    secure_client = secure_app.test_client()
    secure_client.get("/login", base_url="https://localhost")
    token = csrf_of(secure_client)
    response = secure_client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "_csrf": token},
                                  base_url="https://localhost")
    assert response.status_code == 303
    cookie = session_cookie(response)
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


# --- security headers on every GET page ------------------------------------------------------------


def directives(csp: str) -> dict[str, list[str]]:
    out = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def check_headers(url: str, response) -> list[str]:
    problems = []
    headers = response.headers
    csp = headers.get("Content-Security-Policy")
    if not csp:
        problems.append(f"{url}: no Content-Security-Policy")
    else:
        policy = directives(csp)
        scripts = policy.get("script-src", policy.get("default-src"))
        if scripts is None or "'unsafe-inline'" in scripts or "'unsafe-eval'" in scripts or "*" in scripts:
            problems.append(f"{url}: script-src {scripts}")
        if "frame-ancestors" not in policy and "X-Frame-Options" not in headers:
            problems.append(f"{url}: framing allowed")
        if policy.get("object-src") != ["'none'"]:
            problems.append(f"{url}: object-src {policy.get('object-src')}")
    if headers.get("X-Content-Type-Options") != "nosniff":
        problems.append(f"{url}: X-Content-Type-Options {headers.get('X-Content-Type-Options')}")
    if headers.get("X-Frame-Options") not in ("DENY", "SAMEORIGIN") and "frame-ancestors" not in (csp or ""):
        problems.append(f"{url}: X-Frame-Options {headers.get('X-Frame-Options')}")
    if headers.get("Referrer-Policy") not in ("same-origin", "no-referrer", "strict-origin",
                                              "strict-origin-when-cross-origin"):
        problems.append(f"{url}: Referrer-Policy {headers.get('Referrer-Policy')}")
    return problems


def test_every_get_page_carries_the_security_headers(app, seeded):
    from tests.test_ltc_support import load_plugin

    load_plugin(app.extensions["metacrm"])  # the lead-to-cash pages (the conversion dialog) answer too
    web = seeded["web"]
    problems, statuses = [], {}
    urls = [url_for_rule(rule, seeded) for rule in web_rules(app, {"GET"})]
    urls += [f"/records/account/{seeded['account']}", f"/records/opportunity/{seeded['opportunity']}",
             "/records/lead/recycle-bin", "/records/account/export", "/no/such/page", "/records/lead/not-an-id",
             "/records/no_such_object", "/static/app.js", "/static/missing.css"]
    for url in urls:
        response = web.get(url)
        statuses[url] = response.status_code
        problems += check_headers(url, response)
    anonymous = app.test_client()
    for url in ("/login", "/", "/records/lead", "/no/such/page", "/api/v1/records/lead", "/api/v1/no-such-thing"):
        problems += check_headers(f"anonymous {url}", anonymous.get(url))
    for url in ("/api/v1/openapi.json", "/api/v1/records/lead", f"/api/v1/records/lead/{seeded['lead']}"):
        problems += check_headers(f"api {url}", anonymous.get(url, headers=seeded["rep"].headers))
    assert not problems, "\n".join(problems)
    # the enumeration reached real pages, not error pages
    broken = {u: s for u, s in statuses.items() if s >= 400 and "no" not in u and "missing" not in u}
    assert not broken, broken
    assert statuses["/no/such/page"] == 404 and statuses["/records/lead/not-an-id"] == 404


# --- escaping of hostile values ----------------------------------------------------------------


def unsafe(page: str) -> list[str]:
    found = []
    if "<script>alert" in page:
        found.append("raw <script>")
    if "<img src=x" in page:
        found.append("raw <img onerror>")
    if "X49X" in page:
        found.append("template injection evaluated")
    return found


def test_hostile_values_are_escaped_on_every_page(app, seeded):
    web = seeded["web"]
    boss = app.test_client()
    assert login(boss, seeded["boss"].username, seeded["boss"].password).status_code == 303
    ids = seeded
    pages = {  # url -> the payload that page must show (escaped), to prove the value is on it
        "/records/lead": SCRIPT,
        f"/records/lead?q={SCRIPT}": SCRIPT,
        "/records/lead?q=Lead": SCRIPT,
        f"/records/lead?q={IMG}": IMG,
        f"/records/lead/{ids['lead']}": SSTI,
        f"/records/lead/{ids['lead']}/edit": IMG,
        f"/records/lead/{ids['pooled']}": "bye",  # history: the release note
        "/records/account": SCRIPT,
        f"/records/account/{ids['account']}": IMG,  # history: the old name
        f"/records/account/{ids['account']}/edit": SSTI,
        "/records/opportunity": SCRIPT,
        f"/records/opportunity/{ids['opportunity']}": IMG,
        f"/records/opportunity/{ids['opportunity']}/edit": SSTI,
        f"/records/opportunity?f.account={ids['account']}": SCRIPT,
        "/": None,
        "/pools": None,
        "/pools/general_leads": SCRIPT,
        f"/pools/general_leads/records/{ids['pooled']}": SCRIPT,
        f"/approvals/{ids['request']}": SSTI,
        "/approvals?tab=mine": None,
        "/notifications": SCRIPT,
        f"/records/lead/{ids['lead']}/release": None,
    }
    problems = []
    for url, shown in pages.items():
        response = web.get(url)
        if response.status_code != 200:
            problems.append(f"{url}: {response.status_code}")
            continue
        problems += [f"{url}: {p}" for p in unsafe(response.text)]
        if shown is not None:
            escaped = shown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")
            if escaped not in response.text and shown not in response.text.replace("&#39;", "'"):
                problems.append(f"{url}: the value is not on the page, so this check proves nothing")
    for url in ("/approvals", f"/approvals/{ids['request']}", "/"):
        response = boss.get(url)
        problems += [f"boss {url}: {p}" for p in unsafe(response.text)]
    assert not problems, "\n".join(problems)
    assert "&lt;script&gt;" in boss.get("/approvals").text  # the queue shows the record's name, escaped
