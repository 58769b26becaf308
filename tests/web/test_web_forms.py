"""Web-to-lead: public forms (`web_form` metadata) at /f/<name>: the signed form token instead of
the session CSRF token (forgery, expiry, replay), the honeypot, the per-address throttle, size
limits, errors beside the input, duplicates never revealed, and the admin's list of submissions
and editor (dry-run diff, then apply)."""

from __future__ import annotations

import html
import re
import time

import pytest

from metacrm.platform.webforms import public, tokens
from tests.web.conftest import post

FORM = "contact_sales"


def token_of(page: str) -> str:
    return re.search(r'name="_form_token" value="([^"]+)"', page).group(1)


def fill(client, name: str = FORM, lang: str | None = None, **values) -> dict:
    page = client.get(f"/f/{name}" + (f"?lang={lang}" if lang else ""))
    assert page.status_code == 200, page.text
    data = {"_form_token": token_of(page.text), "company": "Acme Web", "contact_name": "Ann Lee",
            "email": "ann@acmeweb.example"}
    data.update(values)
    return data


def leads(system, company: str) -> list[dict]:
    return system.list("lead", filter={"company": company})[0]


@pytest.fixture
def anon(app):
    return app.test_client()


def test_public_form_needs_no_login_and_may_be_framed(anon):
    page = anon.get(f"/f/{FORM}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "Talk to our sales team" in text and 'name="website"' in text and 'name="_csrf"' not in text
    assert "frame-ancestors *" in page.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in page.headers
    zh = html.unescape(anon.get(f"/f/{FORM}?lang=zh-CN").text)
    assert "联系我们的销售团队" in zh and "提交" in zh
    # every other page still refuses to be framed
    login = anon.get("/login")
    assert login.headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in login.headers["Content-Security-Policy"]


def test_submission_creates_a_lead_through_the_record_service(anon, system):
    response = anon.post(f"/f/{FORM}", data=fill(anon, phone="13800000000"))
    assert response.status_code == 303 and response.headers["Location"].startswith(f"/f/{FORM}/thanks")
    thanks = anon.get(response.headers["Location"])
    assert "Our sales team will contact you shortly" in html.unescape(thanks.text)
    [lead] = leads(system, "Acme Web")
    assert lead["source"] == "web" and lead["email"] == "ann@acmeweb.example"
    assert any(h["action"] == "create" for h in system.history("lead", lead["id"]))
    assert lead.get("pool") or lead.get("owner")  # the assignment rule placed it


def test_forged_expired_and_replayed_tokens_are_refused(anon, system, app):
    data = fill(anon)
    forged = dict(data, _form_token=data["_form_token"][:-4] + "0000")
    refused = anon.post(f"/f/{FORM}", data=forged)
    assert refused.status_code == 400 and "could not be verified" in html.unescape(refused.text)
    # a token for another form is forged for this one
    other = dict(data, _form_token=tokens.issue(app.secret_key, "another_form"))
    assert anon.post(f"/f/{FORM}", data=other).status_code == 400
    old = dict(data, _form_token=tokens.issue(app.secret_key, FORM, now=time.time() - tokens.MAX_AGE - 5))
    expired = anon.post(f"/f/{FORM}", data=old)
    assert expired.status_code == 400 and "open too long" in html.unescape(expired.text)
    # the refused page offers a fresh token and keeps what was typed
    assert token_of(expired.text) != old["_form_token"] and "Acme Web" in expired.text
    no_token = {k: v for k, v in data.items() if k != "_form_token"}
    assert anon.post(f"/f/{FORM}", data=no_token).status_code == 400
    assert leads(system, "Acme Web") == []
    assert anon.post(f"/f/{FORM}", data=data).status_code == 303
    replay = anon.post(f"/f/{FORM}", data=data)
    assert replay.status_code == 400 and "sent already" in html.unescape(replay.text)
    assert len(leads(system, "Acme Web")) == 1


def test_honeypot_gets_the_thank_you_and_creates_nothing(anon, system, admin_client):
    response = anon.post(f"/f/{FORM}", data=fill(anon, company="Robot Co", website="http://spam.example"))
    assert response.status_code == 303 and "/thanks" in response.headers["Location"]
    assert leads(system, "Robot Co") == []
    page = html.unescape(admin_client.get(f"/admin/web-forms/{FORM}/submissions").text)
    assert "1 caught as spam" in page


def test_throttle_answers_429_after_too_many_posts(anon, monkeypatch):
    monkeypatch.setattr(public, "POLICY", public.Policy(free_attempts=2, base_seconds=60, max_seconds=60,
                                                        forget_seconds=3600))
    for _ in range(2):
        anon.post(f"/f/{FORM}", data={"company": "x"})
    limited = anon.post(f"/f/{FORM}", data=fill(anon))
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert "Too many submissions" in html.unescape(limited.text)
    # another address is not affected
    other = anon.post(f"/f/{FORM}", data=fill(anon), environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert other.status_code == 303


def test_oversize_and_overlong_values_are_refused(anon, system):
    huge = anon.post(f"/f/{FORM}", data=fill(anon, project_name="x" * (public.MAX_BODY + 10)))
    assert huge.status_code == 413
    long_value = anon.post(f"/f/{FORM}", data=fill(anon, company="Long Co", project_name="y" * (public.MAX_VALUE + 1)))
    assert long_value.status_code == 400
    assert leads(system, "Long Co") == []


def test_bad_and_missing_values_show_beside_their_input(anon, system):
    bad = anon.post(f"/f/{FORM}", data=fill(anon, company="Bad Mail Co", email="not-an-email"))
    assert bad.status_code == 400
    text = html.unescape(bad.text)
    err = re.search(r'data-field="email".*?<p class="field-error" id="f-email-err">([^<]+)</p>', text, re.DOTALL)
    assert err, text
    assert 'value="Bad Mail Co"' in text  # what the visitor typed is kept
    missing = anon.post(f"/f/{FORM}", data=fill(anon, company="", contact_name="Nobody"))
    assert missing.status_code == 400
    assert re.search(r'data-field="company".*?id="f-company-err"', missing.text, re.DOTALL)
    unknown = anon.post(f"/f/{FORM}", data=fill(anon, owner="someone", company="Owner Co"))
    assert unknown.status_code == 400 and leads(system, "Owner Co") == []
    assert leads(system, "Bad Mail Co") == []


def test_a_blocked_duplicate_gets_the_same_thank_you(anon, system, admin_client):
    first = anon.post(f"/f/{FORM}", data=fill(anon, company="Twice Ltd", email="a@twice.example"))
    assert first.status_code == 303
    again = anon.post(f"/f/{FORM}", data=fill(anon, company="Twice Ltd", email="a@twice.example"))
    assert again.status_code == 303 and again.headers["Location"] == first.headers["Location"]
    thanks = html.unescape(anon.get(again.headers["Location"]).text)
    assert "Twice" not in thanks and "duplicate" not in thanks.lower()
    [lead] = leads(system, "Twice Ltd")  # the rule blocked the second one
    detail = html.unescape(admin_client.get(f"/admin/web-forms/{FORM}/submissions").text)
    assert "Matched an existing record" in detail and detail.count(f"/records/lead/{lead['id']}") == 2


def test_admin_lists_forms_and_submissions_with_links(anon, system, admin_client, rep_client):
    anon.post(f"/f/{FORM}", data=fill(anon, company="Listed Co"))
    [lead] = leads(system, "Listed Co")
    page = html.unescape(admin_client.get("/admin/web-forms").text)
    assert "Talk to our sales team" in page and 'data-form="contact_sales"' in page
    detail = html.unescape(admin_client.get(f"/admin/web-forms/{FORM}/submissions").text)
    assert f"/records/lead/{lead['id']}" in detail and "Listed Co" in detail and "<iframe" in detail
    assert "New record" in detail
    assert 'href="/admin/web-forms"' in admin_client.get("/").text  # in the admin navigation
    assert 'href="/admin/web-forms"' not in rep_client.get("/").text
    assert rep_client.get("/admin/web-forms").status_code == 403
    assert rep_client.get(f"/admin/web-forms/{FORM}/submissions").status_code == 403


def test_admin_creates_a_form_through_the_dry_run_diff(admin_client, anon, system):
    new = admin_client.get("/admin/web-forms/new")
    assert new.status_code == 200 and 'id="use-company"' in new.text and 'id="use-owner"' not in new.text
    data = {"label_en": "Event signup", "label_zh": "活动报名", "object": "lead", "fields": ["company", "email"],
            "required": ["company"], "stamp_source": "offline_event", "thanks_en": "See you there!",
            "active": "on", "_action": "preview"}
    preview = post(admin_client, "/admin/web-forms/new", data)
    assert preview.status_code == 200, preview.text
    assert 'id="meta-diff"' in preview.text and system.registry.get("web_form", "event_signup") is None
    versions = re.search(r'name="versions" value="([^"]*)"', preview.text).group(1)
    applied = post(admin_client, "/admin/web-forms/new", dict(data, _action="apply", versions=html.unescape(versions)))
    assert applied.status_code == 303, applied.text
    response = anon.post("/f/event_signup", data={"_form_token": token_of(anon.get("/f/event_signup").text),
                                                    "company": "Event Co", "email": "e@event.example"})
    assert response.status_code == 303
    assert "See you there!" in anon.get(response.headers["Location"]).text
    [lead] = leads(system, "Event Co")
    assert lead["source"] == "offline_event"


def test_editor_shows_validation_errors_beside_the_input(admin_client, system):
    data = {"label_en": "Bad", "object": "lead", "fields": ["company"], "redirect": "javascript:alert(1)",
            "_action": "preview", "active": "on"}
    response = post(admin_client, "/admin/web-forms/new", data)
    assert response.status_code == 400
    text = html.unescape(response.text)
    assert re.search(r'id="w-redirect-err">[^<]*not an http\(s\) address', text), text
    none = post(admin_client, "/admin/web-forms/new", dict(data, fields=[], redirect=""))
    assert none.status_code == 400 and "at least one input" in html.unescape(none.text)
    assert system.registry.get("web_form", "bad") is None


def test_apply_refuses_fields_a_visitor_cannot_type(runtime):
    from metacrm.metadata.bundle import documents_bundle
    from metacrm.platform.apply import apply_change
    from metacrm.platform.errors import MetadataInvalid

    doc = {"kind": "web_form", "name": "sneaky", "object": "lead",
           "fields": [{"field": "company"}, {"field": "owner"}, {"field": "campaign"}, {"field": "score"}],
           "stamp": {"source": "nowhere"}}
    with pytest.raises(MetadataInvalid) as caught:
        apply_change(runtime, documents_bundle([doc]), dry_run=True)
    paths = {issue.as_dict()["path"] if hasattr(issue, "as_dict") else issue["path"] for issue in caught.value.issues}
    assert {"/fields/1/field", "/fields/2/field", "/fields/3/field", "/stamp/source"} <= paths, paths
    assert runtime.compiled().registry.get("web_form", "sneaky") is None


def test_an_untouched_form_saves_no_change(admin_client):
    raw = admin_client.get(f"/admin/web-forms/{FORM}/edit").text
    page = html.unescape(raw)
    fields = re.findall(r'name="fields" value="([a-z_]+)" id="use-[a-z_]+"[^>]*checked', page)
    assert fields[:3] == ["company", "contact_name", "email"]
    required = re.findall(r'name="required" value="([a-z_]+)" id="req-[a-z_]+"[^>]*checked', page)
    data = {"label_en": "Talk to our sales team", "label_zh": "联系我们的销售团队", "fields": fields,
            "required": required, "stamp_source": "web", "active": "on", "_action": "preview",
            "intro_en": re.search(r'id="w-intro_en" name="intro_en" value="([^"]*)"', page).group(1),
            "intro_zh": re.search(r'id="w-intro_zh" name="intro_zh" value="([^"]*)"', page).group(1),
            "thanks_en": re.search(r'id="w-thanks_en" name="thanks_en" value="([^"]*)"', page).group(1),
            "thanks_zh": re.search(r'id="w-thanks_zh" name="thanks_zh" value="([^"]*)"', page).group(1),
            "versions": html.unescape(re.search(r'name="versions" value="([^"]*)"', raw).group(1))}
    preview = post(admin_client, f"/admin/web-forms/{FORM}/edit", data)
    assert preview.status_code == 200, preview.text
    assert 'id="apply"' not in preview.text


def test_api_lists_forms_and_submissions_for_admins(anon, client, admin_headers, runtime):
    from tests.conftest import make_user

    anon.post(f"/f/{FORM}", data=fill(anon, company="Api Co"))
    forms = client.get("/api/v1/web_forms", headers=admin_headers).get_json()["data"]
    [entry] = [f for f in forms if f["name"] == FORM]
    assert entry["submissions"] == 1 and entry["url"].endswith(f"/f/{FORM}") and entry["last_submission_at"]
    subs = client.get(f"/api/v1/web_forms/{FORM}/submissions", headers=admin_headers).get_json()["data"]
    assert subs[0]["outcome"] == "created" and subs[0]["object"] == "lead" and subs[0]["id"]
    rep = make_user(runtime, client, "api_rep", ["sales_rep"])
    assert client.get("/api/v1/web_forms", headers=rep.headers).status_code == 403
    assert client.get("/api/v1/web_forms/nope/submissions", headers=admin_headers).status_code == 404
