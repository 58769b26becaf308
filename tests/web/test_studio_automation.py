"""Admin studio, approval processes and workflow rules (issue 15, "Rules"): the forms write
`approval_process` and `workflow_rule` documents through the metadata apply — the dry-run diff
first, then the apply with the version the form loaded (stale → 409) —, every shipped document
comes back from its form unchanged, bad input is shown beside its input and changes nothing, and
only admins reach the pages. Runs on SQLite and PostgreSQL (the `engine` fixture)."""

from __future__ import annotations

import html
from html.parser import HTMLParser

import pytest

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from tests.web.conftest import csrf_of, post


class _Form(HTMLParser):
    """The fields of the page's form as a browser would send them (checked boxes, selected options)."""

    def __init__(self, form_id: str):
        super().__init__(convert_charrefs=True)
        self.form_id, self.inside, self.fields = form_id, False, []
        self._select: str | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
            return
        if not self.inside:
            return
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button"):
            if a.get("type") in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields.append((name, a.get("value", "on")))
            else:
                self.fields.append((name, a.get("value") or ""))
        elif tag == "select" and name:
            self._select, self._chosen, self._first = name, [], None
        elif tag == "option" and self._select is not None:
            if self._first is None:
                self._first = a.get("value", "")
            if "selected" in a:
                self._chosen.append(a.get("value", ""))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select is not None:
            values = self._chosen or ([] if self._multiple_select() else [self._first or ""])
            self.fields.extend((self._select, v) for v in values)
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.fields.append((self._textarea, self._text.removeprefix("\n")))
            self._textarea = None

    def _multiple_select(self) -> bool:
        return self._select.endswith((".users", ".to_users"))

    def handle_data(self, data):
        if self._textarea is not None:
            self._text += data


def form_of(response, form_id: str) -> list[tuple[str, str]]:
    parser = _Form(form_id)
    parser.feed(response.get_data(as_text=True))
    return parser.fields


def send(client, url: str, fields: list[tuple[str, str]], action: str, **changes):
    """POST the form's fields with `changes` (name -> value or list of values) and `_action`."""
    body = [(k, v) for k, v in fields if k not in changes and k != "_action"]
    for key, value in changes.items():
        body.extend((key, v) for v in (value if isinstance(value, list) else [value]))
    from werkzeug.datastructures import MultiDict

    data = MultiDict(body + [("_action", action)])
    if "_csrf" not in data:
        data["_csrf"] = csrf_of(client)
    return client.post(url, data=data)


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def doc(runtime, kind: str, name: str) -> dict | None:
    return runtime.registry().get(kind, name)


def set_locale(system, locale: str) -> None:
    admin_id = system.list("user", filter={"username": "admin"})[0][0]["id"]
    system.update("user", admin_id, {"locale": locale})


# --- access -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/admin/studio/approvals", "/admin/studio/approvals/new?object=quote",
                                 "/admin/studio/approvals/quote_discount", "/admin/studio/workflows",
                                 "/admin/studio/workflows/new?object=lead", "/admin/studio/workflows/key_lead_alert"])
def test_only_admins_reach_the_pages(admin_client, rep_client, url):
    assert admin_client.get(url).status_code == 200
    assert rep_client.get(url).status_code == 403
    if "/new" in url or url.count("/") == 4:
        path = url.split("?")[0]
        assert post(rep_client, path, {"object": "quote", "_action": "apply", "label_en": "X"}).status_code == 403


def test_the_lists_show_labels_in_both_languages(admin_client, system):
    page = text(admin_client.get("/admin/studio/approvals"))
    assert "Quote discount approval" in page and "Quote" in page and 'href="/admin/studio/approvals/quote_discount"' in page
    rules = text(admin_client.get("/admin/studio/workflows"))
    assert "Stalled opportunity reminder" in rules and "14 days after" in rules
    nav = text(admin_client.get("/admin"))
    assert 'href="/admin/studio/approvals"' in nav and 'href="/admin/studio/workflows"' in nav
    set_locale(system, "zh-CN")
    zh = text(admin_client.get("/admin/studio/approvals"))
    assert "报价折扣审批" in zh and "审批流程" in zh
    zh_rules = text(admin_client.get("/admin/studio/workflows"))
    assert "商机停滞提醒" in zh_rules and "之后 14 天" in zh_rules
    form = text(admin_client.get("/admin/studio/approvals/quote_discount"))
    assert "审批把关" in form and "关键字段" in form


# --- every shipped document survives its form ----------------------------------------------------------


def test_every_shipped_document_comes_back_from_its_form_unchanged(admin_client, runtime):
    registry = runtime.registry()
    for kind, base in (("approval_process", "/admin/studio/approvals"), ("workflow_rule", "/admin/studio/workflows")):
        for item in registry.of_kind(kind):
            url = f"{base}/{item['name']}"
            page = admin_client.get(url)
            assert page.status_code == 200, url
            preview = send(admin_client, url, form_of(page, "approval-form" if kind == "approval_process"
                                                    else "workflow-form"), "preview")
            body = text(preview)
            import re
            assert preview.status_code == 200, (url, re.findall(r'class="field-error" id="([^"]+)"[^>]*>([^<]*)', body))
            if "No changes" not in body:
                pytest.fail(url + "\n" + "\n".join(re.findall(r'<span class="diff-[a-z]+">(.*?)</span>', body)))


def test_the_form_shows_labels_and_the_guards_of_a_process(admin_client):
    page = text(admin_client.get("/admin/studio/approvals/quote_discount"))
    assert "Supervisor" in page and "VP of sales" in page
    assert 'value="manager_of" selected' in page and 'value="roles" selected' in page
    assert ">Presented</label>" in page.replace(" Presented", "Presented") or "Presented" in page
    assert "Quote line › Quote" in page and "Contract › Quote" in page  # children and made-from pickers


# --- create, edit, bad input --------------------------------------------------------------------------


def test_an_admin_builds_a_two_step_approval_diff_first(admin_client, runtime):
    url = "/admin/studio/approvals/new"
    page = admin_client.get(url + "?object=opportunity")
    fields = form_of(page, "approval-form")
    grown = send(admin_client, url, fields, "add_step", label_en="Big deal approval")
    assert grown.status_code == 200 and 'id="step-1"' in text(grown)
    fields = form_of(grown, "approval-form")
    changes = {"label_zh": "大单审批", "s0.label_en": "Supervisor", "s0.approver": "manager_of", "s0.field": "owner",
               "s1.label_en": "VP", "s1.approver": "roles", "s1.roles": ["vp_sales"], "s1.mode": "all",
               "s1w.0.field": "amount", "s1w.0.op": "gte", "s1w.0.value": "100000",
               "s1.t_action": "remind", "s1.t_amount": "2", "s1.t_unit": "days",
               "entry.0.field": "amount", "entry.0.op": "gte", "entry.0.value": "50000",
               "material": ["amount", "close_date"]}
    preview = send(admin_client, url, fields, "preview", **changes)
    body = text(preview)
    assert preview.status_code == 200, body[:4000]
    assert "approval_process/big_deal_approval" in body and 'id="apply"' in body
    assert doc(runtime, "approval_process", "big_deal_approval") is None  # a dry run only
    applied = send(admin_client, url, form_of(preview, "approval-form"), "apply")
    assert applied.status_code == 303 and applied.headers["Location"] == "/admin/studio/approvals/big_deal_approval"
    saved = doc(runtime, "approval_process", "big_deal_approval")
    assert saved["label"] == {"en": "Big deal approval", "zh-CN": "大单审批"}
    assert saved["entry"] == {"amount": {"gte": "50000"}} or saved["entry"] == {"amount": {"gte": 50000}}
    assert saved["steps"][0] == {"name": "supervisor", "label": "Supervisor", "approver": {"manager_of": "owner"}}
    vp = saved["steps"][1]
    assert vp["approver"] == {"role": "vp_sales"} and vp["mode"] == "all" and vp["name"] == "vp"
    assert vp["timeout"] == {"days": 2, "action": "remind"} and "amount" in vp["when"]
    assert saved["guards"] == {"material_fields": ["amount", "close_date"]}

    # edit: move the VP step up, then back; remove it; the version the form loaded is checked
    page = admin_client.get("/admin/studio/approvals/big_deal_approval")
    moved = send(admin_client, "/admin/studio/approvals/big_deal_approval", form_of(page, "approval-form"), "up_step:1")
    assert text(moved).index('value="VP"') < text(moved).index('value="Supervisor"')
    removed = send(admin_client, "/admin/studio/approvals/big_deal_approval", form_of(moved, "approval-form"),
                   "remove_step:0")
    applied = send(admin_client, "/admin/studio/approvals/big_deal_approval", form_of(removed, "approval-form"), "apply")
    assert applied.status_code == 303
    assert [s["name"] for s in doc(runtime, "approval_process", "big_deal_approval")["steps"]] == ["supervisor"]


def test_a_step_without_approver_and_a_bad_guard_are_shown_beside_their_inputs(admin_client, runtime, system):
    url = "/admin/studio/approvals/new"
    fields = form_of(admin_client.get(url + "?object=quote"), "approval-form")
    bad = send(admin_client, url, fields, "apply", label_en="Broken", **{"s0.approver": "roles", "s0.roles": []})
    body = text(bad)
    assert bad.status_code == 400 and 'id="err-s0-approver"' in body and "Say who approves this step." in body
    assert doc(runtime, "approval_process", "broken") is None
    set_locale(system, "zh-CN")
    zh = send(admin_client, url, fields, "apply", label_en="Broken",
              **{"s0.approver": "users", "s0.users": []})
    assert zh.status_code == 400 and 'id="err-s0-approver"' in text(zh) and "请指定此步骤的审批人。" in text(zh)
    set_locale(system, "en")
    # a guarded transition without values, and a chain of managers 0 levels up
    grown = send(admin_client, url, fields, "add_transition", label_en="Broken")
    fields = form_of(grown, "approval-form")
    bad = send(admin_client, url, fields, "preview", **{"g0.field": "status", "s0.approver": "manager_chain",
                                                         "s0.levels": "0"})
    body = text(bad)
    assert bad.status_code == 400 and 'id="err-g0-to"' in body and 'id="err-s0-levels"' in body
    assert doc(runtime, "approval_process", "broken") is None


def test_a_workflow_rule_that_notifies_on_a_field_change(admin_client, runtime):
    url = "/admin/studio/workflows/new"
    fields = form_of(admin_client.get(url + "?object=opportunity"), "workflow-form")
    changes = {"label_en": "Big deal won", "label_zh": "大单赢单", "on": "field_changed", "changed_field": "stage",
               "changed_to": "won", "c.0.field": "amount", "c.0.op": "gte", "c.0.value": "100000",
               "a0.kind": "notify", "a0.to": ["owner", "owner.manager"], "a0.to_roles": ["vp_sales"],
               "a0.template": "{{ record.name }} was won", "a0.channels": ["in_app", "email"]}
    grown = send(admin_client, url, fields, "add_action", **changes)
    fields = form_of(grown, "workflow-form")
    preview = send(admin_client, url, fields, "preview", **{"a1.kind": "update_field", "a1.field": "next_step",
                                                            "a1.value": "Kick-off with delivery"})
    body = text(preview)
    assert preview.status_code == 200, body[:4000]
    assert "workflow_rule/big_deal_won" in body and 'id="apply"' in body
    applied = send(admin_client, url, form_of(preview, "workflow-form"), "apply")
    assert applied.status_code == 303
    saved = doc(runtime, "workflow_rule", "big_deal_won")
    assert saved["trigger"] == {"on": "update"}
    assert saved["condition"] == {"all": [{"amount": {"gte": "100000"}}, {"stage": {"eq": "won", "changed": True}}]} \
        or saved["condition"]["all"][1] == {"stage": {"eq": "won", "changed": True}}
    assert saved["actions"][0] == {"action": "notify", "to": ["owner", "owner.manager", "role:vp_sales"],
                                   "template": "{{ record.name }} was won", "channels": ["in_app", "email"]}
    assert saved["actions"][1] == {"action": "update_field", "field": "next_step", "value": "Kick-off with delivery"}
    # the form reads it back as "when a field changes"
    page = text(admin_client.get("/admin/studio/workflows/big_deal_won"))
    assert 'value="field_changed" selected' in page and 'value="won"' in page


def test_a_scheduled_rule_and_bad_actions(admin_client, runtime):
    url = "/admin/studio/workflows/new"
    fields = form_of(admin_client.get(url + "?object=opportunity"), "workflow-form")
    bad = send(admin_client, url, fields, "apply", label_en="Bad rule", on="schedule", sched_field="name",
               sched_days="-1", **{"a0.kind": "update_field", "a0.field": "no_such_field"})
    body = text(bad)
    assert bad.status_code == 400
    assert 'id="err-sched_field"' in body and 'id="err-sched_days"' in body and 'id="err-a0-field"' in body
    bad = send(admin_client, url, fields, "apply", label_en="Bad rule",
               **{"a0.kind": "update_field", "a0.field": "amount", "a0.value": "lots"})
    assert bad.status_code == 400 and 'id="err-a0-value"' in text(bad)
    bad = send(admin_client, url, fields, "apply", label_en="Bad rule", **{"a0.kind": "notify", "a0.to": [],
                                                                             "a0.template": ""})
    assert 'id="err-a0-to"' in text(bad) and 'id="err-a0-template"' in text(bad)
    bad = send(admin_client, url, fields, "apply", label_en="Bad rule", **{"a0.kind": "webhook", "a0.url": "ftp://x"})
    assert 'id="err-a0-url"' in text(bad)
    assert doc(runtime, "workflow_rule", "bad_rule") is None
    good = send(admin_client, url, fields, "apply", label_en="Close date nears", on="schedule", sched_field="close_date",
                sched_days="7", sched_dir="before", **{"a0.kind": "email", "a0.to": ["owner"],
                                                       "a0.template": "{{ record.name }} closes in a week"})
    assert good.status_code == 303, text(good)[:3000]
    saved = doc(runtime, "workflow_rule", "close_date_nears")
    assert saved["trigger"] == {"on": "schedule", "field": "close_date", "before_days": 7}
    assert saved["actions"] == [{"action": "notify", "to": "owner", "template": "{{ record.name }} closes in a week",
                                 "channels": ["email"]}]


def test_a_change_applied_meanwhile_is_refused_with_409(admin_client, runtime):
    url = "/admin/studio/workflows/stalled_opportunity"
    fields = form_of(admin_client.get(url), "workflow-form")
    live = dict(doc(runtime, "workflow_rule", "stalled_opportunity"), description="changed elsewhere")
    apply_change(runtime, documents_bundle([live]))
    stale = send(admin_client, url, fields, "apply", label_en="Renamed")
    assert stale.status_code == 409 and "changed" in text(stale).lower()
    assert doc(runtime, "workflow_rule", "stalled_opportunity")["label"]["en"] == "Stalled opportunity reminder"


def test_what_approving_does_is_an_action_list_with_typed_values(admin_client, runtime):
    url = "/admin/studio/approvals/new"
    fields = form_of(admin_client.get(url + "?object=quote"), "approval-form")
    grown = send(admin_client, url, fields, "add_on_approve", label_en="Quote sign-off")
    assert grown.status_code == 200 and 'id="on_approve-0"' in text(grown)
    fields = form_of(grown, "approval-form")
    bad = send(admin_client, url, fields, "apply", **{"on_approve0.kind": "update_field",
                                                      "on_approve0.field": "approval_status",
                                                      "on_approve0.value": "bogus"})
    assert bad.status_code == 400 and 'id="err-on_approve0-value"' in text(bad)
    assert doc(runtime, "approval_process", "quote_sign_off") is None
    good = send(admin_client, url, fields, "apply", **{"on_approve0.kind": "update_field",
                                                       "on_approve0.field": "approval_status",
                                                       "on_approve0.value": "approved"})
    assert good.status_code == 303, text(good)[:2000]
    assert doc(runtime, "approval_process", "quote_sign_off")["on_approve"] == [
        {"action": "update_field", "field": "approval_status", "value": "approved"}]
