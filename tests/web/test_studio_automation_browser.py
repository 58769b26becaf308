"""Admin studio, approval processes and workflow rules, in Chromium (English and Chinese, 1366 and
390 px): an admin builds a two-step approval on opportunities (the owner's manager, then the VP
role) and a workflow rule that notifies the owner's manager when the stage changes, sees a step
without an approver refused beside its input, reviews the diff and applies; a rep then submits an
opportunity (after a stage change the rule tells their manager about) and the manager finds it in
the approval inbox."""

from __future__ import annotations

import re

from metacrm.platform.outbox import outbox
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.web.test_browser import PASSWORD, PHONE, browser, server, session_for  # noqa: F401

DESKTOP = {"width": 1366, "height": 800}
RUNS = (("en", DESKTOP, "desktop"), ("en", PHONE, "phone"), ("zh-CN", DESKTOP, "desktop"), ("zh-CN", PHONE, "phone"))
WORDS = {"en": {"approver_required": "Say who approves this step.", "applied": "Applied: metadata version",
                "no_changes": "No changes", "submitted": "Submitted"},
         "zh-CN": {"approver_required": "请指定此步骤的审批人。", "applied": "已应用", "no_changes": "没有变化",
                   "submitted": "已提交审批"}}
SLOW = 45_000  # a click that runs a metadata dry run or apply, on a server shared with earlier tests


def _fits(page, viewport) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"] + 1


def _people(srv) -> dict:
    runtime = srv["runtime"]
    system = RecordService(runtime, Principal.system(), source="test")
    found = system.list("user", filter={"username": "mia"})[0]
    if found:
        return {"mia": found[0]["id"]}
    mia = system.create("user", {"username": "mia", "display_name": "Mia Zhou", "roles": ["sales_manager"],
                                 "password": PASSWORD})["id"]
    system.create("user", {"username": "vera", "display_name": "Vera Sun", "roles": ["vp_sales"], "password": PASSWORD})
    system.update("user", srv["users"]["rosa"], {"manager": mia})
    runtime.directory_changed()
    return {"mia": mia}


def _build_approval(admin, viewport, locale, tag) -> None:
    page = admin.page
    admin.go("/admin/studio/approvals")
    _fits(page, viewport)
    admin.shot(f"studio-approvals-{locale}-{tag}.png")
    page.select_option("#n-object", "opportunity")
    page.click("#start-approval")
    page.wait_for_selector("#approval-form #a-label_en")
    page.fill("#a-label_en", "Deal approval")
    page.fill("#a-label_zh", "商机审批")
    page.fill("#s0-label_en", "Supervisor")
    page.fill("#s0-label_zh", "直属上级")
    assert page.locator("#s0-approver").input_value() == "manager_of"
    page.click("#add-step", timeout=SLOW)
    page.wait_for_selector("#step-1")
    page.fill("#s1-label_en", "VP")
    page.fill("#s1-label_zh", "副总裁")
    page.select_option("#s1-approver", "roles")
    assert page.locator("#s1-field").is_hidden()  # only the inputs of the chosen approver kind
    page.click("#review", timeout=SLOW)  # no role ticked: refused beside the step's approver
    error = page.locator("#err-s1-approver")
    assert error.inner_text() == WORDS[locale]["approver_required"]
    page.locator("#step-1").scroll_into_view_if_needed()
    _fits(page, viewport)
    admin.shot(f"studio-approval-error-{locale}-{tag}.png")
    page.check("#s1-roles input[value=vp_sales]")
    page.select_option("#s1-mode", "any")
    page.click("#review", timeout=SLOW)
    diff = page.locator("#meta-diff").inner_text()
    assert "approval_process/deal_approval" in diff and '"role": "vp_sales"' in diff
    page.locator("#meta-diff").scroll_into_view_if_needed()
    _fits(page, viewport)
    admin.shot(f"studio-approval-diff-{locale}-{tag}.png")
    page.click("#apply", timeout=SLOW)
    page.wait_for_url(re.compile(r"/admin/studio/approvals/deal_approval$"), timeout=SLOW)
    assert WORDS[locale]["applied"] in page.inner_text(".notice")


def _build_rule(admin, viewport, locale, tag) -> None:
    page = admin.page
    admin.go("/admin/studio/workflows")
    page.select_option("#n-object", "opportunity")
    page.click("#start-workflow")
    page.wait_for_selector("#workflow-form #w-label_en")
    page.fill("#w-label_en", "Stage changed")
    page.fill("#w-label_zh", "阶段变更")
    page.select_option("#w-on", "field_changed")
    assert page.locator("#w-sched_field").is_hidden()
    page.select_option("#w-changed_field", "stage")
    page.uncheck("#a0-to-0")  # owner
    page.check("#a0-to-1")  # the owner's manager
    page.fill("#a0-template", "{{ record.name }} moved to {{ record.stage }}")
    assert page.locator("#a0-url").is_hidden()
    page.locator("#action-0").scroll_into_view_if_needed()
    _fits(page, viewport)
    admin.shot(f"studio-workflow-form-{locale}-{tag}.png")
    page.click("#review", timeout=SLOW)
    diff = page.locator("#meta-diff").inner_text()
    assert "workflow_rule/stage_changed" in diff and '"changed": true' in diff
    admin.shot(f"studio-workflow-diff-{locale}-{tag}.png")
    page.click("#apply", timeout=SLOW)
    page.wait_for_url(re.compile(r"/admin/studio/workflows/stage_changed$"), timeout=SLOW)


def test_an_admin_builds_an_approval_and_a_rule_and_a_manager_gets_the_request(session_for, server):  # noqa: F811
    people = _people(server)
    system = RecordService(server["runtime"], Principal.system(), source="test")
    for index, (locale, viewport, tag) in enumerate(RUNS):
        admin = session_for(viewport=viewport)
        admin.use_locale(locale)
        page = admin.page
        if index == 0:
            _build_approval(admin, viewport, locale, tag)
            _build_rule(admin, viewport, locale, tag)
        else:  # the saved documents come back in their forms, in this language and width
            admin.go("/admin/studio/approvals/deal_approval")
            assert page.locator("#s1-approver").input_value() == "roles"
            assert page.locator("#s1-roles input[value=vp_sales]").is_checked()
            _fits(page, viewport)
            admin.shot(f"studio-approval-form-{locale}-{tag}.png")
            page.locator("#guards").scroll_into_view_if_needed()
            admin.shot(f"studio-approval-guards-{locale}-{tag}.png")
            page.click("#add-on_approve", timeout=SLOW)  # what approving does: an action list
            page.wait_for_selector("#on_approve-0")
            page.select_option("#on_approve0-kind", "notify")
            assert page.locator("#on_approve0-field").is_hidden() and page.locator("#on_approve0-template").is_visible()
            page.locator("#events").scroll_into_view_if_needed()
            _fits(page, viewport)
            admin.shot(f"studio-approval-events-{locale}-{tag}.png")
            page.click("#remove-on_approve-0", timeout=SLOW)
            page.wait_for_selector("#on_approve-0", state="detached")
            page.click("#review", timeout=SLOW)
            assert WORDS[locale]["no_changes"] in page.inner_text("#meta-diff")
            admin.go("/admin/studio/workflows/stage_changed")
            assert page.locator("#w-on").input_value() == "field_changed"
            assert page.locator("#w-changed_field").input_value() == "stage"
            _fits(page, viewport)
            admin.shot(f"studio-workflow-form-{locale}-{tag}.png")
            page.locator("#trigger").scroll_into_view_if_needed()
            admin.shot(f"studio-workflow-trigger-{locale}-{tag}.png")
            page.locator("#action-0").scroll_into_view_if_needed()
            admin.shot(f"studio-workflow-action-{locale}-{tag}.png")
            admin.go("/admin/studio/workflows")
            _fits(page, viewport)
            admin.shot(f"studio-workflows-{locale}-{tag}.png")

        system = RecordService(server["runtime"], Principal.system(), source="test")  # the metadata as applied now
        deal = system.create("opportunity", {"name": f"Studio deal {locale} {tag}", "stage": "qualification",
                                             "amount": "120000", "owner": server["users"]["rosa"]})
        system.update("opportunity", deal["id"], {"stage": "research"})  # the rule: the owner's manager hears
        outbox(server["runtime"]).drain(max_seconds=20)
        rep = session_for("rosa", PASSWORD, viewport=viewport)
        rep.use_locale(locale)
        rep.go(f"/records/opportunity/{deal['id']}")
        rep.page.click("#submit-approval", timeout=SLOW)
        rep.page.wait_for_url(re.compile(r"/approvals/[0-9a-f]+$"), timeout=SLOW)
        assert WORDS[locale]["submitted"] in rep.page.inner_text(".notice")
        rep.shot(f"studio-rep-submitted-{locale}-{tag}.png")

        manager = session_for("mia", PASSWORD, viewport=viewport)
        manager.use_locale(locale)
        manager.go("/notifications")
        assert f"Studio deal {locale} {tag} moved to research" in manager.page.inner_text("main")
        manager.shot(f"studio-manager-notified-{locale}-{tag}.png")
        manager.go("/approvals")
        inbox = manager.page.inner_text("main")
        assert f"Studio deal {locale} {tag}" in inbox and ("Deal approval" in inbox or "商机审批" in inbox)
        _fits(manager.page, viewport)
        manager.shot(f"studio-manager-inbox-{locale}-{tag}.png")
    assert people["mia"]
