"""Approval pages through the Flask test client: submit from the detail page, the inbox
tabs, approve / reject / recall with a comment, the record lock's message, the
"no approval needed" message and the CSRF check."""

from __future__ import annotations

import html
import re

import pytest

from tests.conftest import make_user
from tests.web.conftest import form_values, login, new_lead, post


def text(response) -> str:
    return html.unescape(response.text)


def follow(client, response) -> str:
    assert response.status_code == 303, response.text
    return text(client.get(response.headers["Location"]))


@pytest.fixture
def team(app, runtime, client, system):
    """Logged-in clients of a manager and of a rep reporting to them; an account the rep owns."""
    boss = make_user(runtime, client, "bea", ["sales_manager"])
    rep = make_user(runtime, client, "sam", ["sales_rep"], manager=boss.id)
    clients = {}
    for user in (boss, rep):
        web = app.test_client()
        assert login(web, user.username, user.password).status_code == 303
        clients[user.username] = web
    account = system.create("account", {"name": "Registered Co", "owner": rep.id})
    return clients["bea"], clients["sam"], account


def submit(web, account) -> tuple[str, str]:
    response = post(web, f"/records/account/{account['id']}/submit")
    assert response.status_code == 303, response.text
    request_id = response.headers["Location"].rsplit("/", 1)[1]
    return request_id, text(web.get(response.headers["Location"]))


def test_submit_then_approve_through_the_pages(team, system):
    boss_web, rep_web, account = team
    detail = text(rep_web.get(f"/records/account/{account['id']}"))
    assert 'id="submit-approval"' in detail and "Submit for approval" in detail
    request_id, page = submit(rep_web, account)
    assert "Submitted for approval." in page and "Pending" in page and "Registered Co" in page
    assert 'id="approve"' not in page and "Recall" in page  # the submitter may recall, not decide
    mine = text(rep_web.get("/approvals?tab=mine"))
    assert f'/approvals/{request_id}' in mine and "My requests" in mine
    assert "Approvals (1)" in text(boss_web.get("/"))
    queue = text(boss_web.get("/approvals"))
    assert f'/approvals/{request_id}' in queue and "Customer registration" in queue
    request_page = text(boss_web.get(f"/approvals/{request_id}"))
    assert 'id="approve"' in request_page and 'id="approval-record"' in request_page
    assert re.search(r'data-field="name"><dt>[^<]+</dt><dd>Registered Co</dd>', request_page)
    assert "Sam" in request_page  # the submitter by name
    done = follow(boss_web, post(boss_web, f"/approvals/{request_id}/decide",
                                 {"decision": "approve", "comment": "fine by me"}))
    assert "Approved." in done and "fine by me" in done and 'id="approve"' not in done
    assert system.get("account", account["id"])["registration_status"] == "registered"
    assert "Approvals (1)" not in text(boss_web.get("/"))
    assert "Nothing is waiting for your decision." in text(boss_web.get("/approvals"))


def test_reject_with_a_comment(team, system):
    boss_web, rep_web, account = team
    request_id, _ = submit(rep_web, account)
    done = follow(boss_web, post(boss_web, f"/approvals/{request_id}/decide",
                                 {"decision": "reject", "comment": "not ours"}))
    assert "Rejected." in done and "not ours" in done
    assert system.get("account", account["id"])["registration_status"] == "rejected"


def test_the_lock_message_while_pending_and_recall(team, system):
    boss_web, rep_web, account = team
    request_id, _ = submit(rep_web, account)
    edit = rep_web.get(f"/records/account/{account['id']}/edit").text
    response = post(rep_web, f"/records/account/{account['id']}/edit",
                    {**form_values(edit), "name": "Renamed Co"})
    assert response.status_code == 423
    assert "locked while its approval request is pending" in text(response)
    again = follow(rep_web, post(rep_web, f"/records/account/{account['id']}/submit"))
    assert "already has a pending approval request" in again
    recalled = follow(rep_web, post(rep_web, f"/approvals/{request_id}/recall", {"comment": "too early"}))
    assert "The request was recalled." in recalled and "Recalled" in recalled
    assert system.get("account", account["id"])["registration_status"] == "unregistered"
    assert post(boss_web, f"/approvals/{request_id}/decide", {"decision": "approve"}).status_code == 303


def test_a_record_that_needs_no_approval_says_so(team, system):
    _, rep_web, account = team
    system.update("account", account["id"], {"registration_status": "registered"})
    page = follow(rep_web, post(rep_web, f"/records/account/{account['id']}/submit"))
    assert "This record does not need approval" in page and "notice-warning" in page


def test_no_submit_button_without_an_approval_process(admin_client, system):
    lead = new_lead(system, "No Process Co")
    assert 'id="submit-approval"' not in admin_client.get(f"/records/lead/{lead['id']}").text


def test_outsiders_see_no_request_and_posts_need_csrf(team, runtime, client, app):
    boss_web, rep_web, account = team
    request_id, _ = submit(rep_web, account)
    outsider = make_user(runtime, client, "otto", ["sales_rep"])
    web = app.test_client()
    assert login(web, outsider.username, outsider.password).status_code == 303
    assert web.get(f"/approvals/{request_id}").status_code == 404
    refused = boss_web.post(f"/approvals/{request_id}/decide", data={"decision": "approve"})
    assert refused.status_code == 400 and "security token" in text(refused)
    assert "Pending" in text(boss_web.get(f"/approvals/{request_id}"))
    assert rep_web.post(f"/records/account/{account['id']}/submit").status_code == 400


def test_the_detail_page_shows_where_the_approval_stands(team, system):
    """A banner with process, step n of m and who decides while pending; no second "Submit"
    while pending or once approved; after a rejection the banner says so and Submit is back."""
    boss_web, rep_web, account = team
    url = f"/records/account/{account['id']}"
    assert 'id="approval-banner"' not in text(rep_web.get(url))
    request_id, _ = submit(rep_web, account)
    detail = text(rep_web.get(url))
    banner = detail[detail.index('id="approval-banner"'):]
    banner = banner[:banner.index("</div>")]
    assert "Awaiting approval: Customer registration (报备), step 1 of 1 (Supervisor), waiting for Bea." in banner
    assert f'href="/approvals/{request_id}"' in banner  # the submitter may open the request
    assert 'id="submit-approval"' not in detail
    follow(boss_web, post(boss_web, f"/approvals/{request_id}/decide", {"decision": "approve"}))
    detail = text(rep_web.get(url))
    assert "Approved: Customer registration" in detail and 'id="submit-approval"' not in detail


def test_a_rejected_record_says_so_and_may_be_submitted_again(team, system, runtime):
    boss_web, rep_web, account = team
    request_id, _ = submit(rep_web, account)
    follow(boss_web, post(boss_web, f"/approvals/{request_id}/decide", {"decision": "reject", "comment": "no"}))
    detail = text(rep_web.get(f"/records/account/{account['id']}"))
    assert "Rejected: Customer registration" in detail and 'id="submit-approval"' in detail
    rep = system.get("user", system.list("user", filter={"username": "sam"})[0][0]["id"])
    system.update("user", rep["id"], {"locale": "zh-CN"})
    zh = text(rep_web.get(f"/records/account/{account['id']}"))
    assert "已驳回" in zh and "请修改后重新提交" in zh
