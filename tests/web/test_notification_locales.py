"""Every notification and email in its reader's language (the user's `locale`): workflow notify
actions (a message map, the default subject), approval requests and outcomes, pool recycle
warnings; on the inbox page, in /api/v1/notifications and in the email."""

from __future__ import annotations

import email
import html
from email import policy

import pytest

from metacrm.platform import notifications
from metacrm.platform.api import forget_all_tokens
from metacrm.platform.outbox import enqueue, outbox
from tests.conftest import make_user
from tests.test_outbox import SmtpSink
from tests.web.conftest import login, post


def text(response) -> str:
    return html.unescape(response.text)


def drain(runtime) -> None:
    outbox(runtime).drain()


def speak(runtime, system, user, locale: str) -> None:
    system.update("user", user.id, {"locale": locale})
    runtime.directory_changed()
    forget_all_tokens()  # the API keeps a token's principal a few seconds


def web(app, user):
    client = app.test_client()
    assert login(client, user.username, user.password).status_code == 303
    return client


def api_items(client, user) -> list[dict]:
    response = client.get("/api/v1/notifications", headers=user.headers)
    assert response.status_code == 200
    return response.get_json()["items"]


def test_a_workflow_notification_reads_in_each_recipients_language(runtime, app, client, system):
    zh = make_user(runtime, client, "lin", ["sales_rep"])
    en = make_user(runtime, client, "emma", ["sales_rep"])
    speak(runtime, system, zh, "zh-CN")
    for user, company in ((zh, "Lin Co"), (en, "Emma Co")):  # key_lead_alert: a message map, no subject
        system.create("lead", {"company": company, "source": "web", "owner": user.id, "is_key_lead": True})
    drain(runtime)
    zh_items = [n for n in api_items(client, zh) if "Lin Co" in n["body"]]
    assert len(zh_items) == 1, api_items(client, zh)
    assert zh_items[0]["subject"] == "线索：Lin Co" and zh_items[0]["body"].startswith("重点线索：Lin Co")
    assert zh_items[0]["locale"] == "zh-CN" and set(zh_items[0]) >= {"id", "subject", "body", "object", "record",
                                                                       "created_at", "read_at", "read"}
    en_items = [n for n in api_items(client, en) if "Emma Co" in n["body"]]
    assert en_items[0]["subject"] == "Lead: Emma Co" and en_items[0]["body"].startswith("Key lead: Emma Co")
    page = text(web(app, zh).get("/notifications"))
    assert "线索：Lin Co" in page and "重点线索：Lin Co" in page and "Key lead" not in page
    page = text(web(app, en).get("/notifications"))
    assert "Lead: Emma Co" in page and "Key lead: Emma Co" in page
    speak(runtime, system, en, "zh-CN")  # read when shown: a user who switches reads the old ones anew
    assert [n["subject"] for n in api_items(client, en) if "Emma Co" in n["body"]] == ["线索：Emma Co"]
    assert "重点线索：Emma Co" in text(web(app, en).get("/notifications"))


@pytest.fixture
def team(app, runtime, client, system):
    boss = make_user(runtime, client, "bea", ["sales_manager"])
    rep = make_user(runtime, client, "sam", ["sales_rep"], manager=boss.id)
    account = system.create("account", {"name": "Registered Co", "owner": rep.id})
    return boss, rep, account


def test_an_approval_request_and_its_outcome_read_in_the_readers_language(team, runtime, app, client, system):
    boss, rep, account = team
    speak(runtime, system, boss, "zh-CN")
    rep_web = web(app, rep)
    response = post(rep_web, f"/records/account/{account['id']}/submit")
    assert response.status_code == 303, response.text
    drain(runtime)
    asked = [n for n in api_items(client, boss) if n["record"] == account["id"]]
    assert asked and "审批" in asked[0]["subject"] and "Registered Co" in asked[0]["subject"]
    assert "Approval requested" not in asked[0]["subject"] and "asks for your approval" not in asked[0]["body"]
    page = text(web(app, boss).get("/notifications"))
    assert "Approval requested" not in page and "Registered Co" in page
    speak(runtime, system, boss, "en")  # read when shown: the same notification, now in English
    assert api_items(client, boss)[0]["subject"] == "Approval requested: Account Registered Co"
    request_id = response.headers["Location"].rsplit("/", 1)[1]
    assert client.post(f"/api/v1/approvals/{request_id}/approve", headers=boss.headers,
                       json={"comment": "ok"}).status_code == 200
    drain(runtime)
    outcome = [n for n in api_items(client, rep) if n["record"] == account["id"]]
    assert outcome and outcome[0]["subject"].startswith("Approval approved")
    speak(runtime, system, rep, "zh-CN")
    outcome = [n for n in api_items(client, rep) if n["record"] == account["id"]]
    assert "Approval" not in outcome[0]["subject"] and "Registered Co" in outcome[0]["subject"]


def test_a_pool_warning_reads_in_the_owners_language(runtime, app, client, system):
    zh = make_user(runtime, client, "lin", ["sales_rep"])
    speak(runtime, system, zh, "zh-CN")
    account = system.create("account", {"name": "Sleepy Co", "owner": zh.id})
    with runtime.transaction() as tx:  # what pools.sweep.warn_owners writes
        enqueue(tx, "notify", {
            "users": [zh.id], "object": "account", "record_id": account["id"], "pool": "customer_pool",
            "subject": "Account Sleepy Co returns to the pool soon",
            "body": "Sleepy Co will go back to the pool customer_pool within 7 day(s) unless it is followed up: "
                    "no follow-up in 90 days.",
        }, key=f"pool_warn:customer_pool:{account['id']}:x", runtime=runtime)
    drain(runtime)
    item = api_items(client, zh)[0]
    assert "Sleepy Co" in item["subject"] and "returns to the pool" not in item["subject"]
    assert "客户公海池" in item["body"] and "customer_pool" not in item["body"]
    page = text(web(app, zh).get("/notifications"))
    assert "returns to the pool" not in page and "客户公海池" in page


def test_an_email_goes_to_each_language_in_its_own_words(runtime, client, system):
    zh = make_user(runtime, client, "lin", ["sales_rep"])
    en = make_user(runtime, client, "emma", ["sales_rep"])
    system.update("user", zh.id, {"locale": "zh-CN", "email": "lin@example.com"})
    system.update("user", en.id, {"email": "emma@example.com"})
    runtime.directory_changed()
    sink = SmtpSink()
    runtime.config.smtp_url = sink.url
    try:
        with runtime.transaction() as tx:
            enqueue(tx, "email", {
                "users": [zh.id, en.id], "subject": "Overdue: I-1", "body": "I-1 is overdue.",
                "texts": {"en": {"subject": "Overdue: I-1", "body": "I-1 is overdue."},
                          "zh-CN": {"subject": "已逾期：I-1", "body": "I-1 已逾期。"}},
            }, key="mail-locales", runtime=runtime)
            enqueue(tx, "email", {"users": [zh.id], "subject": "Approval requested: Account Bell Co",
                                  "body": "The system asks for your approval of Account Bell Co "
                                          "(Customer registration, step Manager review)."},
                    key="mail-approval", runtime=runtime)
        drain(runtime)
    finally:
        runtime.config.smtp_url = None
        sink.close()
    messages = [email.message_from_bytes(m.encode(), policy=policy.default) for m in sink.messages]
    by_to = {(m["To"], m["Subject"]): m.get_content().strip() for m in messages}
    assert sorted(m["Content-Language"] for m in messages) == ["en", "zh-CN", "zh-CN"]
    assert by_to[("emma@example.com", "Overdue: I-1")] == "I-1 is overdue."
    assert by_to[("lin@example.com", "已逾期：I-1")] == "I-1 已逾期。"
    approval = [(s, body) for (to, s), body in by_to.items() if to == "lin@example.com" and "Bell Co" in s]
    assert approval and "Approval requested" not in approval[0][0] and "审批" in approval[0][1]
    assert notifications.texts_for({"subject": "s", "body": "b"}, "zh-CN") == ("s", "b")


def test_a_notify_message_map_is_checked_at_apply(runtime):
    from metacrm.metadata.bundle import documents_bundle
    from metacrm.platform.apply import apply_change
    from metacrm.platform.errors import MetadataInvalid

    rule = {"kind": "workflow_rule", "name": "two_languages", "object": "lead", "trigger": {"on": "create"},
            "actions": [{"action": "notify", "to": "owner", "subject": {"en": "New: {{ record.company }}",
                                                                       "zh-CN": "新：{{ record.company"},
                         "template": {"en": "Hi", "zh-CN": "你好"}}]}
    with pytest.raises(MetadataInvalid) as caught:
        apply_change(runtime, documents_bundle([rule]))
    assert [i.path for i in caught.value.issues] == ["/actions/0/subject/zh-CN"]
    rule["actions"][0]["subject"]["zh-CN"] = "新：{{ record.company }}"
    rule["actions"][0]["template"] = {"fr": ""}
    with pytest.raises(MetadataInvalid) as caught:
        apply_change(runtime, documents_bundle([rule]))
    assert any(i.path.startswith("/actions/0/template") for i in caught.value.issues)
    rule["actions"][0]["template"] = {"en": "Hi", "zh-CN": "你好"}
    assert apply_change(runtime, documents_bundle([rule])).applied


def test_the_automation_studio_edits_a_message_in_both_languages(runtime):
    from metacrm.studio.automation import actions as studio

    action = {"action": "notify", "to": "owner", "subject": {"en": "Overdue: {{ record.name }}",
                                                            "zh-CN": "已逾期：{{ record.name }}"},
              "template": {"en": "Due", "zh-CN": "到期"}}
    values = studio._action_values(action)
    assert (values["kind"], values["subject"], values["subject_zh"], values["template_zh"]) == \
        ("notify", "Overdue: {{ record.name }}", "已逾期：{{ record.name }}", "到期")
    assert studio._action_values({**action, "template": {"fr": "x"}})["kind"] == "other"  # kept as written
