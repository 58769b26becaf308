"""History notes in the reader's language: the notes the product writes (approvals, pools, hand-over)
are matched to their catalogue templates and shown in Chinese with labels and names, not ids."""

from __future__ import annotations

import html

import pytest

from metacrm.platform import notes, outbox
from tests.conftest import make_user
from tests.web.conftest import login, new_lead, post


def text(response) -> str:
    return html.unescape(response.text)


@pytest.fixture
def team(app, runtime, client, system):
    boss = make_user(runtime, client, "bea", ["sales_manager"])
    rep = make_user(runtime, client, "sam", ["sales_rep"], manager=boss.id)
    webs = {}
    for user in (boss, rep):
        web = app.test_client()
        assert login(web, user.username, user.password).status_code == 303
        webs[user.username] = web
    return boss, rep, webs


def test_every_note_the_approval_and_pool_flows_write_has_a_template(team, system):
    """If a writer's wording drifts from its catalogue template, this fails (the note would stay English)."""
    _boss, rep, webs = team
    account = system.create("account", {"name": "Noted Co", "owner": rep.id})
    response = post(webs["sam"], f"/records/account/{account['id']}/submit", {"comment": "please"})
    request_id = response.headers["Location"].rsplit("/", 1)[1]
    post(webs["bea"], f"/approvals/{request_id}/decide", {"decision": "approve", "comment": "ok"})
    lead = new_lead(system, "Pool Noted")
    post(webs["sam"], f"/pools/{lead['pool']}/claim", {"one": lead["id"]})
    entries = system.history("account", account["id"]) + system.history("lead", lead["id"])
    written = [e["note"] for e in entries if e.get("note")]
    assert len(written) >= 4, written
    unmatched = [n for n in written if notes.parse(n) is None]
    assert unmatched == []


def test_the_record_page_shows_notes_in_chinese(team, system):
    _boss, rep, webs = team
    account = system.create("account", {"name": "Chinese Notes Co", "owner": rep.id})
    response = post(webs["sam"], f"/records/account/{account['id']}/submit")
    request_id = response.headers["Location"].rsplit("/", 1)[1]
    post(webs["bea"], f"/approvals/{request_id}/decide", {"decision": "reject", "comment": "not ours"})
    english = text(webs["sam"].get(f"/records/account/{account['id']}"))
    assert "Submitted for approval" in english and "rejected by Bea" in english
    system.update("user", rep.id, {"locale": "zh-CN"})
    page = text(webs["sam"].get(f"/records/account/{account['id']}"))
    history = page[page.index('class="card history"'):]
    assert "提交了审批" in history and "Bea 已驳回。审批未通过。 意见：not ours" in history
    assert "Submitted for approval" not in history and "rejected by" not in history
    assert "审批" in history  # the action name too


def test_a_hand_over_note_names_people_and_the_parent_not_ids(team, system, runtime, client):
    boss, rep, webs = team
    other = make_user(runtime, client, "olga", ["sales_rep"], manager=boss.id)
    account = system.create("account", {"name": "Handed Co", "owner": rep.id})
    contact = system.create("contact", {"name": "Moved Contact", "account": account["id"], "owner": rep.id})
    system.update("account", account["id"], {"owner": other.id})
    raw = [e["note"] for e in system.history("contact", contact["id"]) if e.get("action") == "transfer"]
    assert raw and rep.id in raw[0]  # stored as written: ids
    page = text(webs["bea"].get(f"/records/contact/{contact['id']}"))
    history = page[page.index('class="card history"'):]
    assert "Handed Co" in history and rep.id not in history and other.id not in history
    assert "Sam" in history and "Olga" in history


def test_approval_notifications_read_in_chinese(team, system, runtime):
    boss, rep, webs = team
    account = system.create("account", {"name": "Bell Co", "owner": rep.id})
    response = post(webs["sam"], f"/records/account/{account['id']}/submit")
    request_id = response.headers["Location"].rsplit("/", 1)[1]
    outbox.outbox(runtime).drain(max_seconds=30)
    english = text(webs["bea"].get("/notifications"))
    assert "Approval requested: Account Bell Co" in english
    assert "Sam asks for your approval of Account Bell Co (Customer registration (报备), step Supervisor)." in english
    system.update("user", boss.id, {"locale": "zh-CN"})
    page = text(webs["bea"].get("/notifications"))
    assert "待你审批：客户 Bell Co" in page and "Sam 请你审批 客户 Bell Co（客户报备审批，步骤「直属上级」）。" in page
    assert "asks for your approval" not in page
    post(webs["bea"], f"/approvals/{request_id}/decide", {"decision": "reject", "comment": "no"})
    outbox.outbox(runtime).drain(max_seconds=30)
    system.update("user", rep.id, {"locale": "zh-CN"})
    mine = text(webs["sam"].get("/notifications"))
    assert "审批驳回：客户 Bell Co" in mine and "你提交的 客户 Bell Co 审批已被 Bea 驳回。 意见：no" in mine
