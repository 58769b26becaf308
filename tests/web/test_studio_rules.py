"""Admin → Pools & duplicate rules (issue 15, rules): the pool form and the duplicate-rule form
build their documents, show the dry-run diff, apply with the version the form loaded (a change in
between is a 409), put bad input beside its field and change nothing, are for admins only, and the
duplicate-rule form tests the unsaved rule on the existing data. SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from tests.web.conftest import post


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def problems(response) -> list[str]:
    """The messages a page shows beside fields and on top (for assertion messages)."""
    page = text(response)
    return re.findall(r'class="field-error"[^>]*>([^<]*)<', page) + re.findall(r"<td>([^<]*)</td></tr>", page)


def hidden(response, name: str) -> str:
    raw = response if isinstance(response, str) else response.get_data(as_text=True)
    return html.unescape(re.search(rf'name="{re.escape(name)}" value="([^"]*)"', raw).group(1))


class _Form(HTMLParser):
    """The values a browser would send for a page's form (inputs, checked boxes, selected options)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, list[str]] = {}
        self.select: tuple[str, bool] | None = None
        self.textarea: str | None = None

    def add(self, name: str, value: str) -> None:
        self.values.setdefault(name, []).append(value)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and name != "_csrf":
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.add(name, a.get("value", "on"))
            elif kind not in ("submit", "button"):
                self.add(name, a.get("value", ""))
        elif tag == "select" and name:
            self.select = (name, "multiple" in a)
            self.values.setdefault(name, []) if "multiple" in a else None
        elif tag == "option" and self.select and "selected" in a:
            self.add(self.select[0], a.get("value", ""))
        elif tag == "textarea" and name:
            self.textarea = name
            self.add(name, "")

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None
        elif tag == "textarea":
            self.textarea = None

    def handle_data(self, data):
        if self.textarea:
            self.values[self.textarea][-1] += data


def form_of(page: str) -> dict:
    parser = _Form()
    parser.feed(page)
    return {k: (v if len(v) != 1 or k.endswith((".roles", ".users", ".departments")) or k == "compare" else v[0])
            for k, v in parser.values.items()}


def doc(runtime, kind: str, name: str):
    return runtime.registry().get(kind, name)


POOL = {
    "object": "lead", "label_en": "Trade show leads", "label_zh": "展会线索", "name": "",
    "priority": "5", "entry.0.field": "source", "entry.0.op": "eq", "entry.0.value": "offline_event",
    "members.roles": ["sales_rep", "sales_manager"], "admins.roles": ["sales_manager"],
    "claim.max_per_day": "10", "claim.max_held": "50", "claim.reclaim_cooldown_days": "7",
    "protection.default_days": "30", "protection.extend_days": "", "protection.max_days": "",
    "strategy": "round_robin", "assign.roles": ["sales_rep"],
    "rc.0.age_field": "last_activity_at", "rc.0.age": "2", "rc.0.unit": "weeks",
    "rc.0.reason": "no follow-up for 14 days", "rc.0.label_en": "Back after 14 days without follow-up",
    "rc.0.label_zh": "14 天未跟进即退回", "rc.0.name": "",
    "rc.1.age_field": "last_activity_at", "rc.1.age": "", "rc.1.unit": "days", "rc.1.reason": "",
    "warn_before_recycle_days": "2",
    "ov.0.who": "role:sales_manager", "ov.0.max_per_day": "20", "ov.0.max_held": "",
}


def test_the_pool_form_creates_a_pool_through_the_diff(admin_client, runtime):
    listing = text(admin_client.get("/admin/rules"))
    assert "General lead pool" in listing and "Same company" in listing
    form = text(admin_client.get("/admin/rules/pools/new?object=lead"))
    assert "Back to the pool when" in form and "Round robin" in form and "Sales rep" in form
    preview = post(admin_client, "/admin/rules/pools/new", {**POOL, "_action": "preview"})
    body = text(preview)
    assert preview.status_code == 200, body
    assert "pool/trade_show_leads" in body and 'id="apply"' in body and '"older_than_days": 14' in body
    assert doc(runtime, "pool", "trade_show_leads") is None  # a preview changes nothing
    applied = post(admin_client, "/admin/rules/pools/new", {**POOL, "_action": "apply"})
    assert applied.status_code == 303 and applied.headers["Location"] == "/admin/rules/pools/trade_show_leads"
    pool = doc(runtime, "pool", "trade_show_leads")
    assert pool["entry"] == {"source": "offline_event"}
    assert pool["members"] == {"roles": ["sales_rep", "sales_manager"]} and pool["admins"] == {"roles": ["sales_manager"]}
    assert pool["claim"] == {"max_per_day": 10, "max_held": 50, "reclaim_cooldown_days": 7,
                             "overrides": [{"role": "sales_manager", "max_per_day": 20}]}
    assert pool["protection"] == {"default_days": 30}
    assert pool["assignment"] == {"strategy": "round_robin", "users": {"roles": ["sales_rep"]}}
    assert pool["recycle"] == [{"when": {"last_activity_at": {"older_than_days": 14}},
                                "reason": "no follow-up for 14 days",
                                "label": {"en": "Back after 14 days without follow-up", "zh-CN": "14 天未跟进即退回"}}]
    assert pool["warn_before_recycle_days"] == 2 and pool["priority"] == 5
    # the edit form shows it back: 2 weeks, the labels, the people chosen
    edit = text(admin_client.get("/admin/rules/pools/trade_show_leads"))
    assert re.search(r'name="rc.0.age"[^>]*value="2"', edit)
    assert re.search(r'<option value="weeks" selected', edit)
    assert re.search(r'<option value="sales_manager" selected>', edit)


def test_editing_a_pool_keeps_what_the_form_does_not_show_and_refuses_a_stale_version(admin_client, runtime):
    before = doc(runtime, "pool", "general_leads")
    raw = admin_client.get("/admin/rules/pools/general_leads").get_data(as_text=True)
    page = html.unescape(raw)
    assert 'value="no follow-up in 3 days"' in page
    assert re.search(r'name="rc.0.age"[^>]*value="3"', page)
    assert 'id="kept-rc0"' in page  # "status is new or working" is more than a row: kept as it is
    form = form_of(raw)
    untouched = post(admin_client, "/admin/rules/pools/general_leads", {**form, "_action": "preview"})
    assert untouched.status_code == 200 and "No changes" in text(untouched), text(untouched)
    form["claim.max_per_day"] = "12"
    changed = dict(before, claim={**before["claim"], "max_per_day": 31})
    apply_change(runtime, documents_bundle([changed]))  # someone else, in between
    stale = post(admin_client, "/admin/rules/pools/general_leads", {**form, "_action": "apply"})
    assert stale.status_code == 409
    assert doc(runtime, "pool", "general_leads")["claim"]["max_per_day"] == 31
    again = post(admin_client, "/admin/rules/pools/general_leads",
                 {**form, "versions": hidden(stale, "versions"), "_action": "apply"})
    assert again.status_code == 303, problems(again)
    after = doc(runtime, "pool", "general_leads")
    assert after["claim"]["max_per_day"] == 12 and after["recycle"] == before["recycle"]
    assert after["entry"] == before["entry"] and after["description"] == before["description"]


def test_bad_pool_input_is_beside_its_field_and_changes_nothing(admin_client, runtime):
    bad = {**POOL, "claim.max_held": "-3", "claim.max_per_day": "many", "rc.0.reason": "",
           "entry.0.field": "no_such_field", "members.roles": ["sales_rep", "no_such_role"], "_action": "apply"}
    response = post(admin_client, "/admin/rules/pools/new", bad)
    page = text(response)
    assert response.status_code == 400
    assert "Enter a number of at least 0." in page and "Enter a whole number." in page
    assert "Not one of the choices: no_such_role." in page
    assert re.search(r'class="field has-error">\s*<label class="field-label" for="f-claim-max_held"', page)
    reason = page[page.index('for="f-rc-0-reason"'):]
    assert reason[:reason.index("</div>")].count("This field is required.") == 1
    assert "There is no field no_such_field you may use." in page
    assert doc(runtime, "pool", "trade_show_leads") is None
    assert admin_client.get("/admin/rules/pools/new?object=nothing").status_code == 404
    assert admin_client.get("/admin/rules/pools/nothing").status_code == 404


def test_the_forms_are_for_admins_only(rep_client):
    for url in ("/admin/rules", "/admin/rules/pools/new?object=lead", "/admin/rules/pools/general_leads",
                "/admin/rules/duplicates/new?object=lead", "/admin/rules/duplicates/account_same_name"):
        assert rep_client.get(url).status_code == 403, url
    assert post(rep_client, "/admin/rules/pools/new", {**POOL, "_action": "apply"}).status_code == 403
    assert post(rep_client, "/admin/rules/duplicates/account_same_name", {"_action": "test"}).status_code == 403


DEDUP = {
    "object": "contact", "label_en": "Same mobile and name", "label_zh": "同手机同姓名", "name": "contact_mobile",
    "active": "1", "compare": ["contact"],
    "g.0.0.field": "name", "g.0.0.method": "normalized", "g.0.1.field": "phone", "g.0.1.method": "phone",
    "g.0.1.region": "cn",
    "on_create": "warn", "on_update": "", "on_import": "report",
}


def test_test_on_existing_data_counts_the_groups_of_the_unsaved_rule(admin_client, system, runtime):
    for name, mobile in (("Wang Fang", "13800000001"), ("wang  fang", "+86 138 0000 0001"), ("Wang Fang", "13800000009"),
                         ("Li Na", "13900000002"), ("LI NA", "139-0000-0002"), ("Li Na", "139 0000 0002"),
                         ("Zhou Jie", "13700000003")):
        system.create("contact", {"name": name, "phone": mobile})
    tested = post(admin_client, "/admin/rules/duplicates/new", {**DEDUP, "_action": "test"})
    page = text(tested)
    assert tested.status_code == 200, page
    assert "2 duplicate group(s) now, 5 Contacts in all." in page
    examples = re.search(r'<ol class="studio-examples">(.*?)</ol>', page, re.DOTALL).group(1)
    assert "Li Na" in examples and "Wang Fang" in examples and "Zhou Jie" not in examples
    assert doc(runtime, "dedup_rule", "contact_mobile") is None  # nothing saved
    admin_id = system.list("user", filter={"username": "admin"})[0][0]["id"]
    system.update("user", admin_id, {"locale": "zh-CN"})
    zh = post(admin_client, "/admin/rules/duplicates/new", {**DEDUP, "_action": "test"})
    assert "当前有 2 个重复组，共 5 条联系人。" in text(zh), text(zh)
    system.update("user", admin_id, {"locale": "en"})
    applied = post(admin_client, "/admin/rules/duplicates/new", {**DEDUP, "_action": "apply"})
    assert applied.status_code == 303, text(applied)
    rule = doc(runtime, "dedup_rule", "contact_mobile")
    assert rule["match_any"] == [{"all": [{"field": "name", "method": "normalized"},
                                          {"field": "phone", "method": "phone", "region": "CN"}]}]
    assert rule["on_create"] == "warn" and rule["on_import"] == "report" and "on_update" not in rule
    # applied: the same count from the key columns
    again = post(admin_client, "/admin/rules/duplicates/contact_mobile",
                 {**DEDUP, "versions": hidden(admin_client.get("/admin/rules/duplicates/contact_mobile"), "versions"), "_action": "test"})
    assert "2 duplicate group(s) now, 5 Contacts in all." in text(again), problems(again)


def test_fuzzy_and_cross_object_rules_and_bad_dedup_input(admin_client, system, runtime):
    system.create("account", {"name": "Shanghai Bright Star Trading"})
    system.create("account", {"name": "Shanghai Brigth Star Trading"})
    system.create("account", {"name": "Shanghai Bright Star Tradin"})
    fuzzy = {"object": "account", "label_en": "Similar company", "name": "similar_company", "active": "1",
             "compare": ["account", "lead"], "g.0.0.field": "name", "g.0.0.method": "fuzzy", "g.0.0.threshold": "80",
             "g.0.0.other_field": "company", "on_create": "warn", "_action": "test"}
    page = text(post(admin_client, "/admin/rules/duplicates/new", fuzzy))
    assert "1 duplicate group(s) now, 3 Accounts in all." in page, page
    preview = text(post(admin_client, "/admin/rules/duplicates/new", {**fuzzy, "_action": "preview"}))
    assert '"threshold": 0.8' in preview and '"other_field": "company"' in preview and '"lead"' in preview
    bad = {**fuzzy, "g.0.0.threshold": "250", "g.0.1.field": "nope", "g.0.1.method": "exact",
           "g.1.0.field": "phone", "g.1.0.method": "email", "g.1.0.region": "China", "_action": "apply"}
    response = post(admin_client, "/admin/rules/duplicates/new", bad)
    body = text(response)
    assert response.status_code == 400
    assert "Enter a percentage between 1 and 100." in body and "A two-letter region" in body
    assert "There is no field nope you may use." in body
    assert doc(runtime, "dedup_rule", "similar_company") is None
    empty = post(admin_client, "/admin/rules/duplicates/new", {"object": "account", "label_en": "Nothing",
                                                               "_action": "preview"})
    assert empty.status_code == 400 and "Give at least one condition." in text(empty)


def test_editing_a_duplicate_rule_keeps_its_options(admin_client, runtime):
    before = doc(runtime, "dedup_rule", "lead_matches_account")
    raw = admin_client.get("/admin/rules/duplicates/lead_matches_account").get_data(as_text=True)
    page = html.unescape(raw)
    assert "Lead of an existing customer" in page and "Field on the other object" in page
    assert 'id="kept-ignore"' in page  # "status is one of converted, disqualified" is kept as it is
    form = form_of(raw)
    assert form["g.0.0.other_field"] == "name" and form["compare"] == ["account"]
    form.update({"on_create": "block", "_action": "apply"})
    applied = post(admin_client, "/admin/rules/duplicates/lead_matches_account", form)
    assert applied.status_code == 303, text(applied)
    after = doc(runtime, "dedup_rule", "lead_matches_account")
    assert after == {**before, "on_create": "block"}


def test_the_pools_and_duplicates_pages_link_to_the_forms_for_admins(admin_client, rep_client):
    assert 'id="manage-pools"' in admin_client.get("/pools").text
    assert 'id="manage-dedup"' in admin_client.get("/duplicates").text
    groups = admin_client.get("/duplicates/account_same_name").text
    assert "/admin/rules/duplicates/account_same_name" in groups
    pool = admin_client.get("/pools/general_leads")
    if pool.status_code == 200:  # the admin is a member of the pool
        assert "/admin/rules/pools/general_leads" in pool.text
    assert "Pools &amp; duplicate rules" in admin_client.get("/").text  # in the admin navigation
    assert 'id="manage-pools"' not in rep_client.get("/pools").text
    assert 'id="manage-dedup"' not in rep_client.get("/duplicates").text
    assert "/admin/rules" not in rep_client.get("/").text


def test_a_new_form_without_an_object_goes_to_the_list(admin_client):
    for url in ("/admin/rules/pools/new", "/admin/rules/duplicates/new"):
        response = admin_client.get(url)
        assert response.status_code == 303 and response.headers["Location"] == "/admin/rules"


def test_a_duplicate_rule_changed_in_between_is_refused(admin_client, runtime):
    raw = admin_client.get("/admin/rules/duplicates/account_same_name").get_data(as_text=True)
    form = form_of(raw)
    live = doc(runtime, "dedup_rule", "account_same_name")
    apply_change(runtime, documents_bundle([{**live, "on_import": "warn"}]))  # someone else, in between
    stale = post(admin_client, "/admin/rules/duplicates/account_same_name",
                 {**form, "on_create": "warn", "_action": "apply"})
    assert stale.status_code == 409, problems(stale)
    assert doc(runtime, "dedup_rule", "account_same_name")["on_create"] == "block"
    again = post(admin_client, "/admin/rules/duplicates/account_same_name",
                 {**form_of(stale.get_data(as_text=True)), "_action": "apply"})
    assert again.status_code == 303, problems(again)
    assert doc(runtime, "dedup_rule", "account_same_name")["on_create"] == "warn"
