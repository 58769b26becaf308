"""Pool pages through the Flask test client: the pool list, claim (one and several), a
limit failure shown with its code, assign by a pool admin, release from the detail page
and the CSRF check."""

from __future__ import annotations

import html
import json
from pathlib import Path

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from tests.web.conftest import new_lead, post

POOL_FILE = Path(__file__).parents[2] / "metacrm/default_schemas/pools/general_leads.pool.json"


def text(response) -> str:
    return html.unescape(response.text)


def pooled(system, company: str) -> dict:
    record = new_lead(system, company)
    assert (record["pool"], record["owner"]) == ("general_leads", None), record
    return record


def follow(client, response) -> str:
    assert response.status_code == 303, response.text
    return text(client.get(response.headers["Location"]))


def test_pool_list_shows_the_members_pools_with_counts(rep_client, system, rep):
    pooled(system, "Waiting One")
    pooled(system, "Waiting Two")
    home = text(rep_client.get("/"))
    assert 'href="/pools"' in home and "Pools" in home
    page = text(rep_client.get("/pools"))
    assert "General lead pool" in page and 'href="/pools/general_leads"' in page
    row = page[page.index('data-pool="general_leads"'):]
    assert '<span class="count">2</span>' in row[:row.index("</tr>")]
    system.update("user", rep.id, {"locale": "zh-CN"})
    zh = text(rep_client.get("/pools"))
    assert "公共线索池" in zh and "待领取" in zh


def test_claim_one_and_claim_selected_through_the_page(rep_client, system, rep):
    first, second, third = (pooled(system, name) for name in ("Claim Alpha", "Claim Beta", "Claim Gamma"))
    page = text(rep_client.get("/pools/general_leads"))
    assert "Claim Alpha" in page and "Claim selected" in page and 'name="one"' in page
    assert 'id="assign-selected"' not in page  # a member, not an admin
    after = follow(rep_client, post(rep_client, "/pools/general_leads/claim", {"one": first["id"]}))
    waiting = after.split('id="pool-held-card"')[0]
    assert "1 record(s) claimed." in after and "Claim Alpha" not in waiting
    assert system.get("lead", first["id"])["owner"] == rep.id
    after = follow(rep_client, post(rep_client, "/pools/general_leads/claim", {"ids": [second["id"], third["id"]]}))
    assert "2 record(s) claimed." in after
    assert {system.get("lead", r["id"])["owner"] for r in (second, third)} == {rep.id}
    again = follow(rep_client, post(rep_client, "/pools/general_leads/claim", {"one": first["id"]}))
    assert "no longer in this pool" in again and "[not_in_pool]" not in again  # no raw codes
    assert "Select at least one record." in follow(rep_client, post(rep_client, "/pools/general_leads/claim", {}))


def test_a_limit_failure_is_shown_in_words(runtime, rep_client, system, rep):
    doc = json.loads(POOL_FILE.read_text(encoding="utf-8"))
    doc["claim"] = {"max_per_day": 1}
    apply_change(runtime, documents_bundle([doc]))
    runtime.compiled(force=True)
    first, second = pooled(system, "Limit One"), pooled(system, "Limit Two")
    assert "1 per day." in text(rep_client.get("/pools/general_leads"))
    after = follow(rep_client, post(rep_client, "/pools/general_leads/claim", {"ids": [first["id"], second["id"]]}))
    assert "1 record(s) claimed." in after
    assert "Not done: you reached today's claim limit (1 per day)." in after and "[max_per_day]" not in after
    assert system.get("lead", second["id"])["owner"] is None
    system.update("user", rep.id, {"locale": "zh-CN"})
    zh = follow(rep_client, post(rep_client, "/pools/general_leads/claim", {"one": second["id"]}))
    assert "每天 1 条" in zh and "已达上限" in zh and "[max_per_day]" not in zh


def test_a_pool_admin_assigns_to_a_user(admin_client, system, rep):
    first, second = pooled(system, "Assign One"), pooled(system, "Assign Two")
    page = text(admin_client.get("/pools/general_leads"))
    assert 'id="assign-selected"' in page and f'<option value="{rep.id}">Rita (rita)</option>' in page
    after = follow(admin_client, post(admin_client, "/pools/general_leads/assign",
                                      {"ids": [first["id"], second["id"]], "user": rep.id}))
    assert "2 record(s) assigned to Rita (rita)." in after
    assert {system.get("lead", r["id"])["owner"] for r in (first, second)} == {rep.id}
    missing = follow(admin_client, post(admin_client, "/pools/general_leads/assign", {"ids": [first["id"]]}))
    assert "Select records and a user" in missing


def test_a_member_may_not_assign(rep_client, system):
    record = pooled(system, "Not Yours")
    response = post(rep_client, "/pools/general_leads/assign", {"ids": [record["id"]], "user": "admin"})
    assert response.status_code == 403
    assert system.get("lead", record["id"])["owner"] is None


def test_release_from_the_detail_page(rep_client, system, rep):
    record = pooled(system, "Release Me")
    follow(rep_client, post(rep_client, "/pools/general_leads/claim", {"one": record["id"]}))
    detail = text(rep_client.get(f"/records/lead/{record['id']}"))
    assert f'href="/records/lead/{record["id"]}/release"' in detail
    form = text(rep_client.get(f"/records/lead/{record['id']}/release"))
    assert "General lead pool" in form and 'name="reason"' in form and 'name="_csrf"' in form
    response = post(rep_client, f"/records/lead/{record['id']}/release", {"reason": "not my region"})
    assert response.status_code == 303
    after = text(rep_client.get(response.headers["Location"]))
    assert "Released to General lead pool." in after
    again = system.get("lead", record["id"])
    assert (again["owner"], again["pool"]) == (None, "general_leads")


def test_no_release_button_on_a_record_of_someone_else(admin_client, system, rep):
    record = new_lead(system, "Someone Else", owner=rep.id)
    assert "/release" not in admin_client.get(f"/records/lead/{record['id']}").text


def test_a_post_without_csrf_is_refused(rep_client, system):
    record = pooled(system, "No Token")
    response = rep_client.post("/pools/general_leads/claim", data={"one": record["id"]})
    assert response.status_code == 400 and "security token" in text(response)
    assert system.get("lead", record["id"])["owner"] is None
    assert rep_client.post(f"/records/lead/{record['id']}/release", data={}).status_code == 400


def test_pool_rows_open_a_preview_the_member_may_claim_from(rep_client, system, rep):
    record = pooled(system, "Preview Me")
    page = text(rep_client.get("/pools/general_leads"))
    href = f'/pools/general_leads/records/{record["id"]}'
    assert f'href="{href}"' in page
    preview = text(rep_client.get(href))
    assert "Preview Me" in preview and "Waiting in the pool" in preview and 'id="claim-record"' in preview
    assert 'name="_csrf"' in preview and 'id="assign-record"' not in preview  # a member, not an admin
    after = post(rep_client, "/pools/general_leads/claim", {"one": record["id"], "after": "record"})
    assert after.status_code == 303 and after.headers["Location"].endswith(f"/records/lead/{record['id']}")
    assert system.get("lead", record["id"])["owner"] == rep.id
    assert rep_client.get(href).status_code == 404  # no longer waiting
    assert rep_client.get("/pools/general_leads/records/not-an-id").status_code == 404


def test_the_pool_page_states_its_recycle_rules_and_when_held_records_return(rep_client, system, rep):
    record = pooled(system, "Held From Pool")
    follow(rep_client, post(rep_client, "/pools/general_leads/claim", {"one": record["id"]}))
    page = text(rep_client.get("/pools/general_leads"))
    rules = page[page.index('id="pool-rules"'):]
    assert "When records return to this pool" in rules
    assert "Returns when not followed up for 3 days" in rules
    held = page[page.index('id="pool-held"'):]
    row = held[held.index(f'data-id="{record["id"]}"'):]
    row = row[:row.index("</tr>")]
    assert "in 3 days" in row and "Returns when not followed up for 3 days" in row
    assert "You hold 1 record(s) from this pool" in page
    system.update("user", rep.id, {"locale": "zh-CN"})
    zh = text(rep_client.get("/pools/general_leads"))
    assert "记录何时退回此公海池" in zh and "3 天后" in zh
