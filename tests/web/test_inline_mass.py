"""Inline edit, mass actions and recent items through the Flask test client: an inline save
goes through the record service with the page's version (stale: 409 and the stored value back;
an approval lock: 423; a hidden or read-only field: no input and 403); a mass update reports
the records outside the user's scope as refused and changes nothing there; over the configured
threshold it runs as a background job with the same per-record report; recent items and the
greeting use display names."""

from __future__ import annotations

import html
import re
from urllib.parse import urlencode

from metacrm.platform.web.quick import mass
from tests.conftest import make_user
from tests.web.conftest import login, new_lead, post
from tests.web.test_approval_pages import submit, team  # noqa: F401  (a rep with an account to submit)

FETCH = {"X-Requested-With": "fetch"}


def _web(app, user):
    web = app.test_client()
    assert login(web, user.username, user.password).status_code == 303
    return web


def test_inline_edit_saves_with_the_version_and_a_stale_one_is_refused(app, runtime, client, system):
    rep = make_user(runtime, client, "ina", ["sales_rep"])
    lead = new_lead(system, "Inline Co", owner=rep.id)
    web = _web(app, rep)
    page = web.get("/records/lead").text
    assert f'data-inline="/records/lead/{lead["id"]}/inline/company"' in page
    assert f'data-version="{lead["version"]}"' in page
    fragment = web.get(f"/records/lead/{lead['id']}/inline/company", headers=FETCH)
    assert fragment.status_code == 200 and 'name="company"' in fragment.text and 'name="_csrf"' in fragment.text
    url = f"/records/lead/{lead['id']}/inline/company"
    saved = post(web, url, {"company": "Inline Renamed", "_version": lead["version"]}, headers=FETCH)
    assert saved.status_code == 200, saved.text
    body = saved.get_json()
    assert body["ok"] and "Inline Renamed" in body["html"]
    stored = system.get("lead", lead["id"])
    assert stored["company"] == "Inline Renamed" and stored["version"] == body["version"]
    # The page's old version: refused, nothing changes, the stored value comes back.
    stale = post(web, url, {"company": "Too Late", "_version": lead["version"]}, headers=FETCH)
    assert stale.status_code == 409
    body = stale.get_json()
    assert not body["ok"] and "Inline Renamed" in body["html"] and "changed this record" in body["error"]
    assert system.get("lead", lead["id"])["company"] == "Inline Renamed"
    # A validation error comes back for the cell, the record unchanged.
    bad = post(web, f"/records/lead/{lead['id']}/inline/email", {"email": "not an email", "_version": stored["version"]},
               headers=FETCH)
    assert bad.status_code == 400 and bad.get_json()["field_error"]
    assert system.get("lead", lead["id"])["email"] == stored["email"]
    # The detail page offers the same inline edit and remembers the record for "recently viewed".
    detail = web.get(f"/records/lead/{lead['id']}").text
    assert f'data-inline="/records/lead/{lead["id"]}/inline/company"' in detail
    home = html.unescape(web.get("/").text)
    assert "Welcome, Ina" in home and "Inline Renamed" in home and 'id="recent-items"' in home


def test_inline_edit_refuses_read_only_hidden_and_locked_fields(app, runtime, client, system, team):  # noqa: F811
    _boss_web, rep_web, account = team
    detail = rep_web.get(f"/records/account/{account['id']}").text
    assert "/inline/name" in detail
    # System and computed fields offer no edit; a field the service refuses gets 403, no input.
    assert "/inline/created_at" not in detail and "/inline/registration_status" not in detail
    refused = rep_web.get(f"/records/account/{account['id']}/inline/registration_status", headers=FETCH)
    assert refused.status_code == 403 and "form" not in refused.text
    refused = post(rep_web, f"/records/account/{account['id']}/inline/created_at",
                   {"created_at": "2020-01-01T00:00", "_version": account["version"]}, headers=FETCH)
    assert refused.status_code == 403
    # Under a pending approval the record is locked: 423 with the reason, the value back.
    submit(rep_web, account)
    assert "/inline/name" not in rep_web.get(f"/records/account/{account['id']}").text  # no pencil while locked
    opened = rep_web.get(f"/records/account/{account['id']}/inline/name", headers=FETCH)
    assert opened.status_code == 423 and "locked" in opened.get_json()["error"]
    current = system.get("account", account["id"])
    locked = post(rep_web, f"/records/account/{account['id']}/inline/name",
                  {"name": "Renamed Co", "_version": current["version"]}, headers=FETCH)
    assert locked.status_code == 423, locked.text
    body = locked.get_json()
    assert "locked" in body["error"] and "Registered Co" in body["html"]
    assert system.get("account", account["id"])["name"] == "Registered Co"


def test_a_hidden_field_has_no_inline_edit(app, runtime, client, system):
    from metacrm.platform.records import RecordService

    rep = make_user(runtime, client, "hid", ["sales_rep"])
    lead = new_lead(system, "Hidden Co", owner=rep.id)
    service = RecordService(runtime, rep.principal, source="test")
    hidden = service.access.hidden_fields("lead")
    web = _web(app, rep)
    for name in hidden or []:
        assert web.get(f"/records/lead/{lead['id']}/inline/{name}", headers=FETCH).status_code == 403
    assert web.get(f"/records/lead/{lead['id']}/inline/no_such_field", headers=FETCH).status_code == 403


def _mass_query(ids, **extra) -> str:
    pairs = [("_ids", i) for i in ids] + list(extra.items())
    return urlencode(pairs)


def test_mass_update_refuses_records_outside_the_scope_and_changes_nothing_there(app, runtime, client, system):
    rep = make_user(runtime, client, "massy", ["sales_rep"])
    other = make_user(runtime, client, "otto", ["sales_rep"])
    mine = [new_lead(system, f"Mine {n}", owner=rep.id) for n in range(3)]
    theirs = new_lead(system, "Theirs", owner=other.id)
    web = _web(app, rep)
    ids = [lead["id"] for lead in mine] + [theirs["id"]]
    listing = html.unescape(web.get("/records/lead").text)
    assert 'id="mass-form"' in listing and "All 3 matching this view" in listing
    choose = web.get(f"/records/lead/mass?{_mass_query(ids, _action='update', _field='status')}")
    assert choose.status_code == 200 and 'name="status"' in choose.text
    review = web.get(f"/records/lead/mass/review?{_mass_query(ids, _action='update', _field='status', status='working')}")
    text = html.unescape(review.text)
    assert review.status_code == 200 and "4 records" in text and "Status → Working" in text
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', review.text)
    data = {}
    for key, value in hidden:
        data.setdefault(key, []).append(html.unescape(value))
    response = post(web, "/records/lead/mass/run", data)
    assert response.status_code == 303, response.text
    report = html.unescape(web.get(response.headers["Location"]).text)
    assert 'id="mass-refused-table"' in report and "No permission" in report
    assert re.search(r'id="mass-done">3<', report) and re.search(r'id="mass-refused">1<', report)
    for lead in mine:
        assert system.get("lead", lead["id"])["status"] == "working"
    assert system.get("lead", theirs["id"])["status"] == theirs["status"]
    assert system.get("lead", theirs["id"])["version"] == theirs["version"]


def test_mass_actions_over_the_threshold_run_as_a_job(app, runtime, client, system, monkeypatch, admin_client):
    monkeypatch.setattr(runtime.config, "mass_job_threshold", 2)
    rep = make_user(runtime, client, "jobby", ["sales_rep"])
    leads = [new_lead(system, f"Job {n}", owner=rep.id) for n in range(4)]
    web = _web(app, rep)
    query = {"_all": "1", "_query": "view=_all", "_action": "owner", "_owner": rep.id}
    review = html.unescape(web.get(f"/records/lead/mass/review?{urlencode(query)}").text)
    assert "4 records" in review and 'id="mass-background"' in review
    response = post(web, "/records/lead/mass/run", query)
    assert response.status_code == 303
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    mass.wait_for(job_id, 30)
    status = web.get(f"/records/lead/mass/jobs/{job_id}?format=json").get_json()
    assert status["status"] == "done" and status["total"] == 4
    report = html.unescape(web.get(response.headers["Location"]).text)
    assert "Every record was changed." in report
    # Someone else cannot read the job.
    other = make_user(runtime, client, "nosy", ["sales_rep"])
    assert _web(app, other).get(response.headers["Location"]).status_code == 404
    # A rep may not delete leads: no delete for them; an admin's delete goes straight to the
    # summary, then to the recycle bin.
    ids = [lead["id"] for lead in leads[:2]]
    assert web.get(f"/records/lead/mass?{_mass_query(ids, _action='delete')}").status_code == 403
    web = admin_client
    review = web.get(f"/records/lead/mass?{_mass_query(ids, _action='delete')}")
    assert review.status_code == 303 and "/mass/review" in review.headers["Location"]
    page = html.unescape(web.get(review.headers["Location"]).text)
    assert "Delete (to the recycle bin)" in page and "2 records" in page
    done = post(web, "/records/lead/mass/run", {"_ids": ids, "_action": "delete"})
    assert done.status_code == 303
    assert [lead["company"] for lead in system.list("lead", filter={"id": {"in": ids}})[0]] == []
    # Export of a selection is a download; an empty selection says what to do.
    export = web.get(f"/records/lead/mass?{_mass_query([leads[2]['id']], _action='export')}")
    assert export.status_code == 200 and "Job 2" in export.get_data(as_text=True)
    empty = web.get("/records/lead/mass?_action=update")
    assert empty.status_code == 200 and 'id="mass-empty"' in empty.text


def test_mass_update_over_the_api_reports_each_record_and_is_in_openapi(app, runtime, client, system, monkeypatch):
    rep = make_user(runtime, client, "apimass", ["sales_rep"])
    other = make_user(runtime, client, "apiother", ["sales_rep"])
    mine = [new_lead(system, f"Api {n}", owner=rep.id) for n in range(2)]
    theirs = new_lead(system, "Api theirs", owner=other.id)
    headers = rep.headers
    ids = [lead["id"] for lead in mine] + [theirs["id"]]
    response = client.post("/api/v1/records/lead/mass-update", json={"ids": ids, "data": {"status": "working"}},
                           headers=headers)
    assert response.status_code == 200, response.text
    body = response.get_json()
    assert body["summary"] == {"done": 2, "refused": 1}
    refused = [r for r in body["results"] if r["status"] == "refused"]
    assert refused[0]["id"] == theirs["id"] and refused[0]["reason"] == "permission"
    assert system.get("lead", theirs["id"])["version"] == theirs["version"]
    assert client.post("/api/v1/records/lead/mass-update", json={"ids": ids, "data": {"created_at": "x"}},
                       headers=headers).status_code == 400
    assert client.post("/api/v1/records/lead/mass-update", json={"data": {"status": "new"}},
                       headers=headers).status_code == 400
    monkeypatch.setattr(runtime.config, "mass_job_threshold", 1)
    queued = client.post("/api/v1/records/lead/mass-update",
                         json={"filter": {"owner": rep.id}, "data": {"status": "nurturing"}}, headers=headers)
    assert queued.status_code == 202
    mass.wait_for(queued.get_json()["job"], 30)
    job = client.get(queued.get_json()["url"], headers=headers).get_json()
    assert job["status"] == "done" and job["summary"] == {"done": 2, "refused": 0}
    spec = client.get("/api/v1/openapi.json", headers=headers).get_json()
    assert "/records/{object}/mass-update" in spec["paths"]
