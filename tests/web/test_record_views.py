"""The generated record pages through the Flask test client: lists, detail, forms,
validation, tampering, conflicts, the recycle bin, field access and escaping."""

from __future__ import annotations

import html
import re

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from tests.conftest import make_user
from tests.web.conftest import form_values, login, new_lead, post

LEAD_FORM = {"company": "Form Co", "source": "web", "email": "form@example.com", "status": "new"}


def text(response) -> str:
    return html.unescape(response.text)


def lead_ids(page: str) -> list[str]:
    return re.findall(r'href="/records/lead/([0-9a-f]{32})"', page)


# --- list -----------------------------------------------------------------------------------------


def test_list_shows_the_layouts_columns_in_order(admin_client, system):
    new_lead(system, "Columns Co", contact_name="Li Wei", status="working")
    page = text(admin_client.get("/records/lead"))
    headers = re.findall(r'<th scope="col"><a [^>]*>([^<]+)</a></th>', page)
    assert headers == ["Company", "Contact name", "Status", "Product line", "Key lead", "Owner", "Created at"]
    assert "Columns Co" in page and "Li Wei" in page and "Working" in page


def test_list_filters_by_picklist_search_owner_and_date(admin_client, system, rep):
    new_lead(system, "Alpha Web", source="web", owner=rep.id)
    new_lead(system, "Beta Mail", source="email")
    new_lead(system, "Gamma Web", source="web", status="qualified")
    by_source = text(admin_client.get("/records/lead?f.source=web"))
    assert "Alpha Web" in by_source and "Gamma Web" in by_source and "Beta Mail" not in by_source
    both = text(admin_client.get("/records/lead?f.source=web&f.status=qualified"))
    assert "Gamma Web" in both and "Alpha Web" not in both
    search = text(admin_client.get("/records/lead?q=beta"))
    assert "Beta Mail" in search and "Alpha Web" not in search
    owned = text(admin_client.get(f"/records/lead?owner={rep.id}"))
    assert "Alpha Web" in owned and "Beta Mail" not in owned
    assert "Alpha Web" not in text(admin_client.get("/records/lead?owner=me"))
    assert "Beta Mail" not in text(admin_client.get("/records/lead?f.created_at.to=2000-01-01"))
    assert "Beta Mail" in text(admin_client.get("/records/lead?f.created_at.from=2000-01-01"))
    ignored = admin_client.get("/records/lead?f.source=not-an-option&f.created_at.from=garbage&sort=password")
    assert ignored.status_code == 200 and "Beta Mail" in text(ignored)


def test_list_sorts_by_a_column(admin_client, system):
    for name in ("Mango", "Apple", "Kiwi"):
        new_lead(system, name)
    ascending = text(admin_client.get("/records/lead?sort=company"))
    assert ascending.index("Apple") < ascending.index("Kiwi") < ascending.index("Mango")
    descending = text(admin_client.get("/records/lead?sort=-company"))
    assert descending.index("Mango") < descending.index("Kiwi") < descending.index("Apple")


def test_keyset_paging_walks_every_record_once_both_ways(admin_client, system):
    for i in range(12):
        new_lead(system, f"Page {i:02d}")
    seen, pages = [], []
    url = "/records/lead?sort=company&limit=5"
    while url:
        page = admin_client.get(url).text
        ids = lead_ids(page)
        pages.append((url, ids))
        seen += ids
        match = re.search(r'href="([^"]+)" rel="next"', page)
        url = html.unescape(match.group(1)) if match else None
    assert len(seen) == 12 and len(set(seen)) == 12
    assert [len(ids) for _, ids in pages] == [5, 5, 2]
    last = admin_client.get(pages[-1][0]).text
    newer = html.unescape(re.search(r'href="([^"]+)" rel="prev"', last).group(1))
    assert "before=" in newer
    assert lead_ids(admin_client.get(newer).text) == pages[1][1]
    first = admin_client.get(pages[0][0]).text
    assert 'rel="prev"' not in first


def test_bad_cursor_starts_over(admin_client, system):
    new_lead(system, "Cursor Co")
    response = admin_client.get("/records/lead?after=not-a-cursor")
    assert response.status_code == 303 and "after" not in response.headers["Location"]


def test_unknown_object_is_404(admin_client):
    assert admin_client.get("/records/nothing").status_code == 404


# --- detail -----------------------------------------------------------------------------------------


def test_detail_shows_sections_related_list_and_history(admin_client, system):
    lead = new_lead(system, "Detail Co", budget="1234567.5")
    system.create("activity", {"subject": "Call the CTO", "related_to": lead["id"], "type": "call"})
    system.update("lead", lead["id"], {"status": "working"})
    page = text(admin_client.get(f"/records/lead/{lead['id']}"))
    assert "Qualification" in page and "Lead" in page
    assert "1,234,567.50" in page
    assert "Follow-ups" in page and "Call the CTO" in page
    assert f'/records/activity/new?related_to={lead["id"]}' in page
    assert "History" in page and "Changed" in page and "New" in page and "Working" in page


def test_related_list_links_to_the_filtered_child_list(admin_client, system):
    lead = new_lead(system, "Busy Co")
    other = new_lead(system, "Quiet Co")
    for i in range(7):
        system.create("activity", {"subject": f"Touch {i}", "related_to": lead["id"]})
    system.create("activity", {"subject": "Elsewhere", "related_to": other["id"]})
    page = admin_client.get(f"/records/lead/{lead['id']}").text
    more = html.unescape(re.search(r'href="(/records/activity\?[^"]+)">Show all', page).group(1))
    listing = text(admin_client.get(more))
    assert listing.count(">Touch ") == 7 and "Elsewhere" not in listing  # row links (checkbox labels name rows too)


# --- create -------------------------------------------------------------------------------------------


def test_create_through_the_form(admin_client, system):
    page = text(admin_client.get("/records/lead/new"))
    assert page.index('name="company"') < page.index('name="email"') < page.index('name="product_line"')
    assert 'type="email"' in page and 'name="budget"' in page and 'step="0.01"' in page
    response = post(admin_client, "/records/lead/new", dict(LEAD_FORM, budget="1234567890123456.78",
                                                           product_line="software", _record_type="channel"))
    assert response.status_code == 303, response.text
    record_id = response.headers["Location"].rsplit("/", 1)[1]
    stored = system.get("lead", record_id)
    assert stored["company"] == "Form Co" and stored["budget"] == "1234567890123456.78"
    assert stored["record_type"] == "channel" and stored["product_line"] == "software"
    detail = text(admin_client.get(response.headers["Location"]))
    assert "Lead created." in detail and "1,234,567,890,123,456.78" in detail


def test_a_form_create_nobody_owns_is_routed_by_the_lead_assignment_rule(admin_client, system, runtime):
    # the shipped lead_routing rule: solutions leads from banks and government go straight to a
    # solutions rep (load balanced) instead of waiting in the solutions pool
    solutions = system.create("department", {"name": "solutions", "code": "solutions"})["id"]
    reps = sorted(system.create("user", {"username": f"sol{n}", "display_name": f"Sol {n}", "roles": ["sales_rep"],
                                         "department": solutions})["id"] for n in range(2))
    runtime.directory_changed()
    owners = []
    for n, industry in enumerate(("finance", "government", "retail")):
        response = post(admin_client, "/records/lead/new", dict(LEAD_FORM, company=f"Routed {n}",
                                                               email=f"r{n}@example.com", product_line="solutions",
                                                               industry=industry))
        assert response.status_code == 303, response.text
        stored = system.list("lead", filter={"company": f"Routed {n}"})[0][0]
        owners.append((stored["owner"], stored["pool"]))
    assert owners == [(reps[0], None), (reps[1], None), (None, "solutions_leads")]  # retail: the pool, as before
    history = system.history("lead", system.list("lead", filter={"company": "Routed 0"})[0][0]["id"])
    assert any("assignment rule lead_routing" in (e["note"] or "") for e in history)


def test_layout_required_field_missing_is_an_error_beside_it_with_the_input_kept(admin_client, system):
    response = post(admin_client, "/records/lead/new", dict(LEAD_FORM, email="", contact_name="Keep Me",
                                                           phone="not a phone"))
    assert response.status_code == 400
    page = text(response)
    email_block = re.search(r'data-field="email".*?</div>\s*</div>|data-field="email".*?field-error[^<]*<', page, re.DOTALL)
    assert email_block and "This field is required." in email_block.group(0)
    assert re.search(r'data-field="phone".*?Not a valid phone number', page, re.DOTALL)
    assert 'value="Keep Me"' in page and 'value="Form Co"' in page and 'value="not a phone"' in page
    assert system.list("lead", filter={"company": "Form Co"})[0] == []


def test_validation_errors_show_in_chinese_for_chinese_users(runtime, app, client, system):
    user = make_user(runtime, client, "wang", ["sales_rep"])
    system.update("user", user.id, {"locale": "zh-CN"})
    web = app.test_client()
    login(web, "wang", user.password)
    page = text(post(web, "/records/lead/new", dict(LEAD_FORM, email="")))
    assert "此字段为必填项。" in page and "公司名称" in page


def test_tampered_create_forms_are_refused_and_change_nothing(app, runtime, client, system):
    user = make_user(runtime, client, "tina", ["sales_rep"])
    web = app.test_client()
    login(web, "tina", user.password)
    for extra, message in (({"favourite": "x"}, "unknown field favourite"),
                           ({"score": "99"}, "read-only field score"),
                           ({"is_key_lead": "on"}, "read-only field is_key_lead"),
                           ({"owner": "someone"}, "read-only field owner"),
                           ({"id": "f" * 32}, "read-only field id")):
        response = post(web, "/records/lead/new", dict(LEAD_FORM, **extra))
        assert response.status_code == 400, extra
        assert message in text(response) and "Nothing was saved" in text(response)
    assert web.post("/records/lead/new", data=LEAD_FORM).status_code == 400  # no CSRF token
    assert system.list("lead", filter={"company": "Form Co"})[0] == []


# --- edit -----------------------------------------------------------------------------------------------


def test_edit_shows_version_and_saves(admin_client, system):
    lead = new_lead(system, "Edit Co")
    page = admin_client.get(f"/records/lead/{lead['id']}/edit").text
    hidden = form_values(page)
    assert hidden["_version"] == "1" and hidden["_id"] == lead["id"]
    response = post(admin_client, f"/records/lead/{lead['id']}/edit",
                    {"_id": lead["id"], "_version": "1", "company": "Edit Co", "source": "web",
                     "email": lead["email"], "status": "working"})
    assert response.status_code == 303
    assert system.get("lead", lead["id"])["status"] == "working"


def test_stale_edit_shows_a_conflict_with_the_current_values(admin_client, system):
    lead = new_lead(system, "Stale Co", contact_name="First")
    hidden = form_values(admin_client.get(f"/records/lead/{lead['id']}/edit").text)
    system.update("lead", lead["id"], {"contact_name": "Changed meanwhile"})
    form = {"_id": lead["id"], "_version": hidden["_version"], "company": "Stale Co", "source": "web",
            "email": lead["email"], "contact_name": "My edit"}
    response = post(admin_client, f"/records/lead/{lead['id']}/edit", form)
    assert response.status_code == 409
    page = text(response)
    assert "Someone else changed this record" in page
    assert "Now: Changed meanwhile" in page and 'value="My edit"' in page
    assert system.get("lead", lead["id"])["contact_name"] == "Changed meanwhile"
    again = post(admin_client, f"/records/lead/{lead['id']}/edit", dict(form, _version=form_values(page)["_version"]))
    assert again.status_code == 303
    assert system.get("lead", lead["id"])["contact_name"] == "My edit"


def test_tampered_edit_forms_are_refused(admin_client, system):
    lead = new_lead(system, "Target Co")
    other = new_lead(system, "Other Co")
    base = {"_id": lead["id"], "_version": "1", "company": "Hacked", "source": "web", "email": lead["email"]}
    cases = [(dict(base, _id=other["id"]), "another record"), (dict(base, _version="x"), "version"),
             (dict(base, created_by="me"), "read-only field created_by"), (dict(base, bogus="1"), "unknown field")]
    for form, message in cases:
        response = post(admin_client, f"/records/lead/{lead['id']}/edit", form)
        assert response.status_code == 400 and message in text(response), form
    assert system.get("lead", lead["id"])["company"] == "Target Co"
    assert system.get("lead", other["id"])["company"] == "Other Co"


def test_read_only_fields_are_shown_not_editable(rep_client, rep, system):
    lead = new_lead(system, "Mine Co", owner=rep.id, score=42)
    page = rep_client.get(f"/records/lead/{lead['id']}/edit").text
    assert 'name="score"' not in page and 'name="is_key_lead"' not in page
    assert re.search(r'data-field="score".*?class="readonly"[^>]*>42<', page, re.DOTALL)
    assert 'name="company"' in page


# --- delete and restore ----------------------------------------------------------------------------------


def test_delete_goes_to_the_recycle_bin_and_can_be_undone(admin_client, system):
    lead = new_lead(system, "Bin Co")
    response = post(admin_client, f"/records/lead/{lead['id']}/delete")
    assert response.status_code == 303
    listing = text(admin_client.get(response.headers["Location"]))
    assert "moved to the recycle bin" in listing and f"/records/lead/{lead['id']}/restore" in listing
    assert "Bin Co" not in listing.split("moved to the recycle bin")[1]
    assert admin_client.get(f"/records/lead/{lead['id']}").status_code == 404
    assert "Bin Co" in text(admin_client.get("/records/lead/recycle-bin"))
    assert admin_client.post(f"/records/lead/{lead['id']}/restore").status_code == 400  # no CSRF token
    restored = post(admin_client, f"/records/lead/{lead['id']}/restore")
    assert restored.status_code == 303
    assert system.get("lead", lead["id"])["company"] == "Bin Co"
    assert "Bin Co" not in text(admin_client.get("/records/lead/recycle-bin"))


def test_delete_button_only_for_those_allowed(rep_client, rep, system):
    lead = new_lead(system, "Keep Co", owner=rep.id)
    page = rep_client.get(f"/records/lead/{lead['id']}").text
    assert "delete-record" not in page and "edit-record" in page
    assert post(rep_client, f"/records/lead/{lead['id']}/delete").status_code == 403
    assert system.get("lead", lead["id"])


# --- access and escaping -----------------------------------------------------------------------------------


def test_a_rep_sees_only_their_own_records(rep_client, rep, runtime, client, system):
    other = make_user(runtime, client, "oscar", ["sales_rep"])
    mine = new_lead(system, "Rita Co", owner=rep.id)
    theirs = new_lead(system, "Oscar Co", owner=other.id)
    listing = text(rep_client.get("/records/lead"))
    assert "Rita Co" in listing and "Oscar Co" not in listing
    assert rep_client.get(f"/records/lead/{mine['id']}").status_code == 200
    for url in (f"/records/lead/{theirs['id']}", f"/records/lead/{theirs['id']}/edit"):
        assert rep_client.get(url).status_code == 404
    response = post(rep_client, f"/records/lead/{theirs['id']}/edit",
                    {"_id": theirs["id"], "_version": "1", "company": "Stolen", "source": "web"})
    assert response.status_code == 404
    assert system.get("lead", theirs["id"])["company"] == "Oscar Co"


def test_hidden_fields_never_appear_and_cannot_be_posted(runtime, app, client, system):
    role = {"kind": "role", "name": "no_email", "objects": {"lead": {"create": "all", "read": "own", "edit": "own"}},
            "fields": {"lead": {"email": "hidden"}}}
    apply_change(runtime, documents_bundle([role]))
    user = make_user(runtime, client, "hugo", ["no_email"])
    lead = new_lead(system, "Hidden Co", owner=user.id, email="secret-address@example.com")
    web = app.test_client()
    login(web, "hugo", user.password)
    for url in ("/records/lead", f"/records/lead/{lead['id']}", f"/records/lead/{lead['id']}/edit",
                "/records/lead/new"):
        page = web.get(url).text
        assert "secret-address" not in page and 'name="email"' not in page, url
        assert 'data-field="email"' not in page and ">Email</a></th>" not in page, url
    assert "Hidden Co" in web.get("/records/lead?f.email=no-match@example.com").text  # no filtering oracle
    response = post(web, "/records/lead/new", {"company": "H2", "source": "web", "email": "x@example.com"})
    assert response.status_code == 400 and "unknown field email" in text(response)


def test_a_script_in_a_name_is_escaped_everywhere(admin_client, system):
    evil = "<script>alert(1)</script>"
    lead = new_lead(system, evil, contact_name='"><img src=x onerror=alert(1)>', email="xss@example.com")
    system.create("activity", {"subject": evil, "related_to": lead["id"]})
    for url in ("/records/lead", f"/records/lead/{lead['id']}", f"/records/lead/{lead['id']}/edit",
                f"/records/lead?q={evil}", "/records/activity"):
        page = admin_client.get(url).text
        assert "<script>alert" not in page and "<img src=x" not in page, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, url


def test_labels_in_chinese_for_chinese_users(runtime, app, client, system):
    user = make_user(runtime, client, "zhao", ["sales_rep"])
    system.update("user", user.id, {"locale": "zh-CN"})
    new_lead(system, "Zhao Co", owner=user.id, status="working")
    web = app.test_client()
    login(web, "zhao", user.password)
    page = web.get("/records/lead").text
    assert "<h1>线索</h1>" in page and "公司名称" in page and "新建" in page and "首页" in page
    form = web.get("/records/lead/new").text
    assert "线索信息" in form and "保存" in form and "线索来源" in form


def test_a_new_record_the_user_can_no_longer_see_leads_back_to_the_list(runtime, rep_client, rep, system):
    def hand_over(ctx):  # like a pool taking the record on entry
        ctx.record["owner"] = None

    runtime.hooks.register("before_save", hand_over, name="test.hand_over", objects=["lead"], ops=["create"])
    response = post(rep_client, "/records/lead/new", {"company": "Gone Co", "source": "web", "email": "gone@example.com"})
    assert response.status_code == 303 and response.headers["Location"] == "/records/lead"
    assert "Lead created." in text(rep_client.get("/records/lead"))
    assert system.list("lead", filter={"company": "Gone Co"})[0][0]["owner"] is None


def test_new_child_from_a_related_list_is_prefilled_with_the_parent(admin_client, system):
    lead = new_lead(system, "Parent Co")
    page = text(admin_client.get(f"/records/activity/new?related_to={lead['id']}"))
    assert f'value="{lead["id"]}"' in page and 'data-current="Parent Co"' in page
    response = post(admin_client, "/records/activity/new", {"subject": "Visit", "related_to": lead["id"]})
    assert response.status_code == 303
    assert "Visit" in text(admin_client.get(f"/records/lead/{lead['id']}"))


# --- record types ---------------------------------------------------------------------------------


def test_record_types_show_their_labels_in_both_languages(admin_client, system, runtime):
    """A record type is declared with a label per locale; pages and the describe API show the label."""
    account = system.create("account", {"name": "Typed Co", "record_type": "channel_partner"})
    page = text(admin_client.get(f"/records/account/{account['id']}"))
    assert '<span class="badge">Channel partner</span>' in page
    form = text(admin_client.get("/records/account/new"))
    assert ">Channel partner</a>" in form and "channel_partner</a>" not in form
    described = admin_client.get("/api/v1/meta/objects/account?locale=zh-CN").get_json()
    assert described["record_types"] == ["enterprise", "channel_partner", "government"]
    admin = system.list("user", filter={"username": "admin"})[0][0]
    system.update("user", admin["id"], {"locale": "zh-CN"})
    zh = text(admin_client.get(f"/records/account/{account['id']}"))
    assert '<span class="badge">渠道伙伴</span>' in zh


def test_a_record_type_listed_twice_is_refused(runtime):
    import json
    from pathlib import Path

    from metacrm.platform.errors import MetadataInvalid

    path = Path(__file__).parents[2] / "metacrm/default_schemas/objects/lead.object.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["record_types"] = ["standard", {"name": "standard", "label": {"en": "Again", "zh-CN": "重复"}}]
    try:
        apply_change(runtime, documents_bundle([doc]))
    except MetadataInvalid as exc:
        assert any(i.path == "/record_types/1" for i in exc.issues), exc.issues
    else:
        raise AssertionError("a duplicated record type was accepted")


# --- duplicates -----------------------------------------------------------------------------------


def test_a_blocked_duplicate_names_the_rule_and_links_the_record_the_user_may_see(admin_client, system):
    existing = new_lead(system, "Dup Co", project_name="Roll-out", owner=None, email="dup@example.com")
    response = post(admin_client, "/records/lead/new", {**LEAD_FORM, "company": "Dup Co", "project_name": "Roll-out",
                                                        "email": "other@example.com"})
    assert response.status_code == 409, response.text
    page = text(response)
    assert "Not saved: it matches 1 existing Lead record(s) (duplicate rule: Same company and project, or same contact)." in page
    assert f'href="/records/lead/{existing["id"]}"' in page and "Open Dup Co" in page
    assert "lead_same_company_or_contact" not in page
    admin = system.list("user", filter={"username": "admin"})[0][0]
    system.update("user", admin["id"], {"locale": "zh-CN"})
    zh = text(post(admin_client, "/records/lead/new", {**LEAD_FORM, "company": "Dup Co", "project_name": "Roll-out",
                                                       "email": "other@example.com"}))
    assert "未保存：与已有的 1 条线索记录重复（查重规则：同公司同项目或同联系人）。" in zh and "查看 Dup Co" in zh


def test_a_total_the_database_cannot_add_up_is_a_422_page_not_a_500(admin_client, monkeypatch):
    import sqlalchemy as sa

    from metacrm.platform.records import RecordService

    def overflowing(*args, **kwargs):
        raise sa.exc.OperationalError("SELECT sum(amount)", {}, Exception("integer overflow"))

    monkeypatch.setattr(RecordService, "list", overflowing)
    response = admin_client.get("/records/lead")
    assert response.status_code == 422 and "Total too large" in response.text
