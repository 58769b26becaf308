"""The notification inbox in Chromium, English and Chinese, at 1366 and 390 px: a workflow
notification (a message map and the default subject) and an approval-style sentence, each in
the reader's language."""

from __future__ import annotations

import sqlalchemy as sa

from metacrm.platform.outbox import enqueue, outbox
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.web.test_browser import PHONE, browser, server, session_for  # noqa: F401

SCREEN_DESKTOP = {"width": 1366, "height": 800}
RUNS = (("en", SCREEN_DESKTOP, "desktop"), ("en", PHONE, "phone"),
        ("zh-CN", SCREEN_DESKTOP, "desktop"), ("zh-CN", PHONE, "phone"))
WORDS = {"en": ("Lead: Inbox Co", "Key lead: Inbox Co", "Approval requested: Account Inbox Co"),
         "zh-CN": ("线索：Inbox Co", "重点线索：Inbox Co", "待你审批：客户 Inbox Co")}


def test_the_inbox_reads_in_the_readers_language(session_for, server):  # noqa: F811
    runtime = server["runtime"]
    users = runtime.compiled().tables["user"]
    with runtime.engine.connect() as conn:
        admin_id = conn.execute(sa.select(users.c.id).where(users.c.username == "admin")).scalar()
    system = RecordService(runtime, Principal.system(), source="test")
    system.create("lead", {"company": "Inbox Co", "source": "web", "owner": admin_id, "is_key_lead": True})
    with runtime.transaction() as tx:  # the sentence an approval request writes
        enqueue(tx, "notify", {"users": [admin_id], "subject": "Approval requested: Account Inbox Co",
                               "body": "The system asks for your approval of Account Inbox Co "
                                       "(Customer registration, step Manager review)."},
                key="browser-inbox-approval", runtime=runtime)
    outbox(runtime).drain()
    for locale, viewport, tag in RUNS:
        s = session_for(viewport=viewport)
        s.use_locale(locale)
        s.go("/notifications")
        body = s.page.inner_text("main")
        for words in WORDS[locale]:
            assert words in body, (locale, words, body)
        assert s.page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        s.shot(f"notifications-{locale}-{tag}.png")
    session_for().use_locale("en")
