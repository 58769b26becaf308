"""My tasks, the calendar, and logging a call / visit / note from a record (platform/activities)."""

from __future__ import annotations

from datetime import timedelta

from metacrm.platform.clock import utcnow
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.conftest import make_user
from tests.web.conftest import login, new_lead, post


def _client(app, user):
    web = app.test_client()
    assert login(web, user.username, user.password).status_code == 303
    return web


def test_my_tasks_buckets_overdue_today_upcoming(runtime, app, client):
    rita = make_user(runtime, client, "rita", ["sales_rep"])
    ron = make_user(runtime, client, "ron", ["sales_rep"])
    system = RecordService(runtime, Principal.system())
    today = utcnow().date()
    for subject, delta, done, owner in (("Late call", -2, False, rita.id), ("Call today", 0, False, rita.id),
                                        ("Visit next week", 5, False, rita.id), ("Finished", -1, True, rita.id),
                                        ("Ron's call", 0, False, ron.id)):
        system.create("activity", {"subject": subject, "due_date": (today + timedelta(days=delta)).isoformat(),
                                   "done": done, "owner": owner})
    system.create("activity", {"subject": "No date", "owner": rita.id})
    from metacrm.platform.activities.pages import my_tasks

    with app.test_request_context("/tasks"):
        buckets = my_tasks(RecordService(runtime, rita.principal), today)
    assert [r["subject"] for r in buckets["overdue"]] == ["Late call"]
    assert [r["subject"] for r in buckets["today"]] == ["Call today"]
    assert [r["subject"] for r in buckets["upcoming"]] == ["Visit next week"]
    web = _client(app, rita)
    html = web.get("/tasks").get_data(as_text=True)
    assert "Late call" in html and "Ron's call" not in html and "Finished" not in html and "No date" not in html
    # mark one done from the list (through the record service, with its version)
    late = buckets["overdue"][0]
    assert post(web, f"/tasks/{late['id']}/done", {"version": str(late["version"])}).status_code == 303
    assert "Late call" not in web.get("/tasks").get_data(as_text=True)
    calendar = web.get(f"/calendar?view=month&date={today.isoformat()}").get_data(as_text=True)
    assert "Call today" in calendar and "Ron's call" not in calendar
    week = web.get(f"/calendar?view=week&date={today.isoformat()}")
    assert week.status_code == 200 and "Call today" in week.get_data(as_text=True)
    assert web.get("/calendar?date=not-a-date").status_code == 200


def test_log_a_call_in_one_step_resets_the_follow_up_clock(runtime, app, client):
    rita = make_user(runtime, client, "rita", ["sales_rep"])
    ron = make_user(runtime, client, "ron", ["sales_rep"])
    system = RecordService(runtime, Principal.system())
    lead = new_lead(system, "Logged Co", owner=rita.id)
    assert lead.get("last_activity_at") is None
    web = _client(app, rita)
    page = web.get(f"/records/lead/{lead['id']}").get_data(as_text=True)
    assert 'id="log-form"' in page and 'id="log-call"' in page
    follow = (utcnow().date() + timedelta(days=3)).isoformat()
    done = post(web, f"/records/lead/{lead['id']}/log", {"type": "call", "subject": "", "notes": "Asked for a quote",
                                                          "follow_up": follow})
    assert done.status_code == 303, done.get_data(as_text=True)[:2000]
    items, _ = system.list("activity", filter={"related_to": lead["id"]}, sort="created_at")
    assert [(i["type"], i["subject"], i["done"]) for i in items] == [("call", "Call", True),
                                                                       ("task", "Follow up: Call", False)]
    assert items[1]["due_date"] == follow and items[0]["notes"] == "Asked for a quote"
    assert system.get("lead", lead["id"])["last_activity_at"] is not None  # the pool clock restarts
    assert "Follow up: Call" in web.get("/tasks").get_data(as_text=True)
    # bad input: a message beside the field, nothing saved
    bad = post(web, f"/records/lead/{lead['id']}/log", {"type": "fax", "subject": "x", "follow_up": "soon"})
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "Choose what happened." in text and "Not a date." in text
    assert len(system.list("activity", filter={"related_to": lead["id"]})[0]) == 2
    # another rep cannot log on a lead they cannot read
    other = _client(app, ron)
    assert post(other, f"/records/lead/{lead['id']}/log", {"type": "call"}).status_code == 404
    assert len(system.list("activity", filter={"related_to": lead["id"]})[0]) == 2
