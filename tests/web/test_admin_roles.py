"""Admin → Roles (issue 15, permissions): the object × action grid and the field-access grid
write role documents through the metadata apply (diff first, the loaded version checked), the
create-object form grants roles access in the same apply, and an administrator always has full
access. Every case runs on SQLite and PostgreSQL (the `engine` fixture)."""

from __future__ import annotations

import copy
import html
import re

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from metacrm.platform.security import SCOPES
from metacrm.platform.web.admin_roles import role_actions
from tests.web.conftest import post


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def grid_form(response) -> dict:
    """Every cell of a grid page as the browser would send it (selected options, checked radios)."""
    page = response if isinstance(response, str) else response.get_data(as_text=True)
    form = {"versions": html.unescape(re.search(r'name="versions" value="([^"]*)"', page).group(1))}
    for name, body in re.findall(r'<select name="(scope:[^"]+)"[^>]*>(.*?)</select>', page, re.DOTALL):
        chosen = re.search(r'<option value="([^"]*)" selected', body)
        form[name] = chosen.group(1) if chosen else ""
    for name, value in re.findall(r'<input type="radio" name="(field:[^"]+)" value="([^"]+)"[^>]*checked', page):
        form[name] = value
    return form


def role_doc(runtime, name: str) -> dict:
    return runtime.registry().get("role", name)


def test_the_grid_has_a_column_per_schema_action_and_labels_not_names(admin_client):
    listing = text(admin_client.get("/admin/roles"))
    assert "Sales rep" in listing and "Administrator" in listing and "Full access (administrator)" in listing
    page = text(admin_client.get("/admin/roles/sales_rep"))
    header = re.search(r"<thead>(.*?)</thead>", page, re.DOTALL).group(1)
    for label in ("Create", "Read", "Edit", "Delete", "Export", "Report", "Claim", "Approve"):
        assert f">{label}</th>" in header
    assert len(role_actions()) == 8 and set(role_actions()) >= {"read", "claim", "approve"}
    assert re.search(r'<th scope="row" class="perm-object">Lead\s', page)  # the label, not the name
    form = grid_form(page)
    assert form["scope:lead:read"] == "own" and form["scope:lead:create"] == "all"
    assert form["scope:payment:claim"] == ""  # unset: as read
    options = re.search(r'<select name="scope:lead:read"[^>]*>(.*?)</select>', page, re.DOTALL).group(1)
    assert re.findall(r'value="([^"]*)"', options) == list(SCOPES)
    zh = admin_client.get("/admin/roles/sales_rep", headers={"Accept-Language": "zh-CN"})
    assert zh.status_code == 200


def test_saving_an_untouched_grid_changes_nothing(admin_client, runtime):
    before = role_doc(runtime, "sales_rep")
    form = grid_form(admin_client.get("/admin/roles/sales_rep"))
    preview = post(admin_client, "/admin/roles/sales_rep", {**form, "_action": "preview"})
    assert preview.status_code == 200 and "No changes" in text(preview)
    assert role_doc(runtime, "sales_rep") == before


def test_a_change_shows_the_diff_first_then_applies(admin_client, runtime, rep_client):
    form = grid_form(admin_client.get("/admin/roles/sales_rep"))
    assert rep_client.get("/records/product/new").status_code == 403
    form["scope:product:create"] = "own"
    form["scope:lead:delete"] = "own"
    preview = post(admin_client, "/admin/roles/sales_rep", {**form, "_action": "preview"})
    body = text(preview)
    assert preview.status_code == 200 and "role/sales_rep" in body and 'id="apply"' in body
    assert '"create": "own"' in body and 'class="diff-add"' in preview.get_data(as_text=True)
    assert role_doc(runtime, "sales_rep")["objects"]["product"] == {"read": "all"}  # not applied yet
    # the preview page keeps the values and the version the grid was loaded with
    again = grid_form(preview)
    assert again["scope:product:create"] == "own" and again["versions"] == form["versions"]
    applied = post(admin_client, "/admin/roles/sales_rep", {**again, "_action": "apply"})
    assert applied.status_code == 303 and applied.headers["Location"] == "/admin/roles/sales_rep"
    doc = role_doc(runtime, "sales_rep")
    assert doc["objects"]["product"] == {"read": "all", "create": "own"}
    assert doc["objects"]["lead"]["delete"] == "own"
    assert doc["fields"] == {"account": {"credit_limit": "read_only"}, "quote": {"approval_status": "read_only"}}
    assert rep_client.get("/records/product/new").status_code == 200  # live at once


def test_bad_scope_is_refused_beside_the_cell_and_nothing_changes(admin_client, runtime):
    before = role_doc(runtime, "sales_rep")
    form = grid_form(admin_client.get("/admin/roles/sales_rep"))
    form["scope:lead:edit"] = "everyone"
    form["scope:payment:claim"] = "galaxy"
    response = post(admin_client, "/admin/roles/sales_rep", {**form, "_action": "apply"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    cell = re.search(r'<td class="perm-cell has-error">\s*<select name="scope:lead:edit".*?</td>', page, re.DOTALL)
    assert cell and "Choose one of the scopes in the list." in cell.group(0) and 'aria-invalid="true"' in cell.group(0)
    assert re.search(r'<td class="perm-cell has-error">\s*<select name="scope:payment:claim"', page)
    assert "nothing was saved" in text(response)
    unknown = post(admin_client, "/admin/roles/sales_rep", {**grid_form(admin_client.get(
        "/admin/roles/sales_rep")), "scope:nosuch:read": "all", "_action": "apply"})
    assert unknown.status_code == 400 and "nosuch:read" in text(unknown)
    assert role_doc(runtime, "sales_rep") == before


def test_a_stale_grid_is_refused_and_shows_the_live_values(admin_client, runtime):
    form = grid_form(admin_client.get("/admin/roles/sales_rep"))
    # someone else changes the role after the grid was loaded
    other = copy.deepcopy(role_doc(runtime, "sales_rep"))
    other["objects"]["lead"]["export"] = "none"
    apply_change(runtime, documents_bundle([other]))
    form["scope:lead:delete"] = "own"
    response = post(admin_client, "/admin/roles/sales_rep", {**form, "_action": "apply"})
    assert response.status_code == 409
    assert "Someone else changed this document after you loaded it" in text(response)
    assert role_doc(runtime, "sales_rep")["objects"]["lead"] == {**other["objects"]["lead"]}  # theirs kept
    assert grid_form(response)["scope:lead:export"] == "none"  # the page now shows their change
    zh = post(admin_client, "/profile", {"_action": "locale", "locale": "zh-CN"})
    assert zh.status_code in (200, 303)
    form["scope:lead:delete"] = "all"
    refused = post(admin_client, "/admin/roles/sales_rep", {**form, "_action": "apply"})
    assert refused.status_code == 409 and "其他人" in text(refused)


def test_only_admins_reach_the_roles_pages(rep_client, runtime):
    before = role_doc(runtime, "sales_rep")
    for url in ("/admin/roles", "/admin/roles/sales_rep", "/admin/roles/sales_rep/fields/lead"):
        assert rep_client.get(url).status_code == 403, url
    assert post(rep_client, "/admin/roles/sales_rep", {"scope:lead:read": "all", "_action": "apply"}).status_code == 403
    assert post(rep_client, "/admin/roles/sales_rep/fields/lead",
                {"field:email": "hidden", "_action": "apply"}).status_code == 403
    assert post(rep_client, "/admin/roles", {"label_en": "Sneaky"}).status_code == 403
    assert role_doc(runtime, "sales_rep") == before and role_doc(runtime, "sneaky") is None


def test_the_roles_forms_need_csrf(admin_client, runtime):
    before = role_doc(runtime, "sales_rep")
    form = grid_form(admin_client.get("/admin/roles/sales_rep"))
    form["scope:lead:read"] = "all"
    assert admin_client.post("/admin/roles/sales_rep", data={**form, "_action": "apply"}).status_code == 400
    assert admin_client.post("/admin/roles", data={"label_en": "Sneaky"}).status_code == 400
    assert role_doc(runtime, "sales_rep") == before and role_doc(runtime, "sneaky") is None


def test_the_administrator_has_full_access_and_no_grid(admin_client, runtime):
    page = text(admin_client.get("/admin/roles/admin"))
    assert 'id="admin-full-access"' in page and "<select" not in page
    assert page.count("Full access (administrator)") > 5  # one per object row
    refused = post(admin_client, "/admin/roles/admin", {"scope:lead:read": "none", "_action": "apply",
                                                        "versions": "{}"})
    assert refused.status_code == 400 and "cannot be edited" in text(refused)
    assert role_doc(runtime, "admin").get("objects") is None


def test_field_grid_hides_a_field_for_the_role(admin_client, runtime, rep_client, system):
    lead = system.create("lead", {"company": "Grid Co", "source": "web", "email": "grid@example.com",
                                  "phone": "+86 10 1234 5678", "owner": _user_id(system, "rita")})
    assert "+86 10 1234 5678" in text(rep_client.get(f"/records/lead/{lead['id']}"))
    form = grid_form(admin_client.get("/admin/roles/sales_rep/fields/lead"))
    assert form["field:phone"] == "edit" and "field:id" not in form
    form["field:phone"] = "hidden"
    form["field:email"] = "read_only"
    preview = post(admin_client, "/admin/roles/sales_rep/fields/lead", {**form, "_action": "preview"})
    assert preview.status_code == 200 and '"phone": "hidden"' in text(preview)
    applied = post(admin_client, "/admin/roles/sales_rep/fields/lead", {**grid_form(preview), "_action": "apply"})
    assert applied.status_code == 303
    assert role_doc(runtime, "sales_rep")["fields"]["lead"] == {"phone": "hidden", "email": "read_only"}
    detail = text(rep_client.get(f"/records/lead/{lead['id']}"))
    assert "Grid Co" in detail and "+86 10 1234 5678" not in detail
    edit = rep_client.get(f"/records/lead/{lead['id']}/edit").get_data(as_text=True)
    assert 'name="phone"' not in edit and 'name="email"' not in edit.replace('name="email" value', "")
    # back to editable: the entry disappears from the document
    form = grid_form(admin_client.get("/admin/roles/sales_rep/fields/lead"))
    form.update({"field:phone": "edit", "field:email": "edit"})
    assert post(admin_client, "/admin/roles/sales_rep/fields/lead", {**form, "_action": "apply"}).status_code == 303
    assert "lead" not in role_doc(runtime, "sales_rep")["fields"]


def test_field_grid_refuses_bad_input_beside_the_row(admin_client, runtime):
    before = role_doc(runtime, "sales_rep")
    form = grid_form(admin_client.get("/admin/roles/sales_rep/fields/lead"))
    form["field:phone"] = "invisible"
    response = post(admin_client, "/admin/roles/sales_rep/fields/lead", {**form, "_action": "apply"})
    assert response.status_code == 400
    row = re.search(r'<tr data-field="phone" class="has-error">.*?</tr>', response.get_data(as_text=True), re.DOTALL)
    assert row and "Choose editable, read-only or hidden." in html.unescape(row.group(0))
    bad = post(admin_client, "/admin/roles/sales_rep/fields/lead", {**form, "field:phone": "hidden",
                                                                     "field:nosuch": "hidden", "_action": "apply"})
    assert bad.status_code == 400 and "no field nosuch" in text(bad)
    assert admin_client.get("/admin/roles/sales_rep/fields/nosuch").status_code == 404
    assert admin_client.get("/admin/roles/nosuch").status_code == 404
    assert role_doc(runtime, "sales_rep") == before


def test_create_a_role_from_the_web(admin_client, runtime):
    response = post(admin_client, "/admin/roles", {"label_en": "Support agent", "label_zh": "客服专员",
                                                   "parent": "sales_manager", "copy_from": "sales_rep"})
    assert response.status_code == 303 and response.headers["Location"] == "/admin/roles/support_agent"
    doc = role_doc(runtime, "support_agent")
    assert doc["label"] == {"en": "Support agent", "zh-CN": "客服专员"} and doc["parent"] == "sales_manager"
    assert doc["objects"]["lead"]["read"] == "own"
    assert "Support agent" in text(admin_client.get("/admin/roles"))
    again = post(admin_client, "/admin/roles", {"name": "support_agent", "label_en": "Again"})
    assert again.status_code == 400 and "A role with this name exists already." in text(again)
    bad = post(admin_client, "/admin/roles", {"name": "Bad Name", "label_en": "Bad", "parent": "nosuch"})
    body = text(bad)
    assert bad.status_code == 400 and "lowercase" in body and "Choose one of the listed roles." in body
    nolabel = post(admin_client, "/admin/roles", {"name": "quiet"})
    assert nolabel.status_code == 400 and role_doc(runtime, "quiet") is None


def test_a_new_object_asks_who_can_use_it(admin_client, runtime, rep_client):
    page = text(admin_client.get("/admin"))
    section = re.search(r'<fieldset class="who-can".*?</fieldset>', page, re.DOTALL).group(0)
    assert "Sales rep" in section and "Administrator: full access, always." in section
    assert re.search(r'<select id="g-sales_rep" name="grant:sales_rep">.*?value="own" selected', section, re.DOTALL)
    assert re.search(r'<select id="g-sales_manager" name="grant:sales_manager">.*?value="subtree" selected',
                     section, re.DOTALL)
    assert re.search(r'<select id="g-finance" name="grant:finance">.*?value="none" selected', section, re.DOTALL)
    bad = post(admin_client, "/admin/objects", {"label_en": "Project", "grant:sales_rep": "galaxy"})
    assert bad.status_code == 400 and "Choose one of the scopes in the list." in text(bad)
    assert not runtime.registry().has_object("project")
    choices = {"label_en": "Project", "label_zh": "项目", "grant:sales_rep": "own", "grant:finance": "all",
               "grant:marketing": "none"}
    preview = post(admin_client, "/admin/objects", {**choices, "_action": "preview"})
    body = text(preview)
    assert preview.status_code == 200 and "object/project" in body and "role/sales_rep" in body
    assert "role/finance" in body and "role/marketing" not in body and "rec_project" in body
    assert 'value="Project"' in body and re.search(r'name="grant:finance">.*?value="all" selected', body, re.DOTALL)
    assert not runtime.registry().has_object("project")  # a review saves nothing
    response = post(admin_client, "/admin/objects", {"label_en": "Project", "label_zh": "项目",
                                                     "grant:sales_rep": "own", "grant:finance": "all",
                                                     "grant:marketing": "none"})
    assert response.status_code == 303
    registry = runtime.registry()
    assert registry.get("role", "sales_rep")["objects"]["project"] == {
        "create": "own", "read": "own", "edit": "own", "delete": "own", "export": "own"}
    assert registry.get("role", "finance")["objects"]["project"]["read"] == "all"
    assert "project" not in (registry.get("role", "marketing").get("objects") or {})
    assert registry.get("role", "sales_manager")["objects"]["project"]["read"] == "subtree"
    assert rep_client.get("/records/project").status_code == 200
    created = post(rep_client, "/records/project/new", {"name": "Apollo"})
    assert created.status_code == 303, text(created)
    assert "Apollo" in text(rep_client.get("/records/project"))
    assert "Apollo" in text(admin_client.get("/records/project"))  # the admin always sees it
    grid = grid_form(admin_client.get("/admin/roles/sales_rep"))
    assert grid["scope:project:read"] == "own"


def test_a_new_object_with_a_stale_role_is_refused_whole(admin_client, runtime, monkeypatch):
    from metacrm.platform.web import admin_roles

    real = admin_roles.grant_documents

    def racing(object_name, values, errors):
        documents, expected = real(object_name, values, errors)
        other = copy.deepcopy(runtime.registry().get("role", "sales_rep"))
        other["description"] = "changed by someone else"
        apply_change(runtime, documents_bundle([other]))  # lands between the form's read and its apply
        return documents, expected

    monkeypatch.setattr(admin_roles, "grant_documents", racing)
    response = post(admin_client, "/admin/objects", {"label_en": "Racing"})
    assert response.status_code == 400 and "Someone else changed this document" in text(response)
    assert not runtime.registry().has_object("racing")


def test_a_new_field_is_editable_for_roles_that_edit_the_object(admin_client, runtime, rep_client):
    page = admin_client.get("/admin/objects/lead")
    assert "Every role that may edit this object can edit the new field" in text(page)
    assert post(admin_client, "/admin/objects/lead/fields", {
        "versions": grid_form(page)["versions"],
        "label_en": "Sub region", "type": "text", "add_layout": "on"}).status_code == 303
    form = grid_form(admin_client.get("/admin/roles/sales_rep/fields/lead"))
    assert form["field:sub_region"] == "edit"
    assert 'name="sub_region"' in rep_client.get("/records/lead/new").get_data(as_text=True)


def _user_id(service, username: str) -> str:
    return service.list("user", filter={"username": username})[0][0]["id"]
