"""Notification pages through the Flask test client: the bell's unread count, the list,
mark one / all read, someone else's notification, and the CSRF check."""

from __future__ import annotations

import html

from metacrm.platform import notifications
from metacrm.platform.clock import utcnow
from tests.web.conftest import post


def text(response) -> str:
    return html.unescape(response.text)


def notify(runtime, user_id: str, subject: str, **values) -> int:
    with runtime.transaction() as tx:
        return tx.conn.execute(notifications.notification.insert().values(
            key=f"test:{user_id}:{subject}", user_id=user_id, created_at=utcnow(), subject=subject,
            body=f"About {subject}", **values)).inserted_primary_key[0]


def bell(page: str) -> str:
    start = page.index('id="bell"')
    return page[start:page.index("</a>", start)]


def test_bell_list_and_mark_read(runtime, rep_client, rep, system):
    lead = system.create("lead", {"company": "Bell Co", "source": "web", "owner": rep.id})
    first = notify(runtime, rep.id, "First news", object="lead", record_id=lead["id"])
    notify(runtime, rep.id, "Second news")
    home = text(rep_client.get("/"))
    assert 'href="/notifications"' in bell(home) and '<span class="bell-count">2</span>' in bell(home)
    page = text(rep_client.get("/notifications"))
    assert "First news" in page and "About Second news" in page and f'/records/lead/{lead["id"]}' in page
    assert page.count("Mark read") == 2
    response = post(rep_client, f"/notifications/{first}/read")
    assert response.status_code == 303
    assert notifications.list_for(runtime, rep.id)["unread"] == 1
    page = text(rep_client.get("/notifications"))
    assert page.count("Mark read") == 1 and '<span class="bell-count">1</span>' in bell(page)
    after = text(rep_client.get(post(rep_client, "/notifications/read_all").headers["Location"]))
    assert "1 notification(s) marked read." in after and "bell-count" not in bell(after)
    assert notifications.list_for(runtime, rep.id)["unread"] == 0


def test_someone_elses_notification_and_csrf(runtime, rep_client, admin_client, rep):
    mine = notify(runtime, rep.id, "Private")
    assert post(admin_client, f"/notifications/{mine}/read").status_code == 404
    refused = rep_client.post(f"/notifications/{mine}/read")
    assert refused.status_code == 400 and "security token" in text(refused)
    assert rep_client.post("/notifications/read_all").status_code == 400
    assert notifications.list_for(runtime, rep.id)["unread"] == 1
    assert "No notifications." in text(admin_client.get("/notifications"))
