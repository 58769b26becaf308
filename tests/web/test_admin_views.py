"""Admin pages: custom objects, fields added in a form (live at once), the layout and
metadata editors with validation, diff and apply."""

from __future__ import annotations

import html
import json
import re

from tests.web.conftest import new_lead, post


def text(response) -> str:
    return html.unescape(response.text)


def test_admin_pages_are_for_admins_only(rep_client):
    for url in ("/admin", "/admin/objects/lead", "/admin/metadata", "/admin/metadata/layout/lead_default"):
        assert rep_client.get(url).status_code == 403, url
    assert post(rep_client, "/admin/objects", {"name": "x", "label_en": "X"}).status_code == 403
    assert post(rep_client, "/admin/objects/lead/fields", {"label_en": "X", "type": "text"}).status_code == 403
    assert "Administration" not in rep_client.get("/").text


def test_create_a_custom_object_and_use_it_at_once(admin_client, system):
    page = text(admin_client.get("/admin"))
    assert "Leads" in page or "Lead" in page
    response = post(admin_client, "/admin/objects", {"label_en": "Project", "label_zh": "项目", "plural_en": "Projects"})
    assert response.status_code == 303 and response.headers["Location"] == "/admin/objects/project"
    assert 'href="/records/project"' in admin_client.get("/").text
    created = post(admin_client, "/records/project/new", {"name": "Apollo"})
    assert created.status_code == 303
    assert "Apollo" in text(admin_client.get("/records/project"))
    again = post(admin_client, "/admin/objects", {"name": "project", "label_en": "Again"})
    assert again.status_code == 400 and "exists already" in text(again)
    bad = post(admin_client, "/admin/objects", {"name": "Bad Name", "label_en": "Bad"})
    assert bad.status_code == 400 and "lowercase" in text(bad)
    # a plural left empty is made from the label, so lists do not read "Opportunity" for many
    for label, plural in (("Site visit", "Site visits"), ("Facility", "Facilities"), ("Box", "Boxes"),
                          ("Survey", "Surveys")):
        assert post(admin_client, "/admin/objects", {"label_en": label, "label_zh": "对象"}).status_code == 303
        doc = system.runtime.registry().get("object", label.lower().replace(" ", "_"))
        assert doc["plural_label"] == {"en": plural, "zh-CN": "对象"}


def test_add_a_field_in_a_form_and_fill_it_without_restart(admin_client, system):
    response = post(admin_client, "/admin/objects/lead/fields", {
        "label_en": "Contract value", "label_zh": "合同金额", "type": "currency",
        "add_layout": "on", "add_list": "on"})
    assert response.status_code == 303, text(response)
    assert "contract_value" in admin_client.get("/admin/objects/lead").text
    form = admin_client.get("/records/lead/new").text
    assert 'name="contract_value"' in form and 'step="0.01"' in form
    lead = post(admin_client, "/records/lead/new", {"company": "Field Co", "source": "web",
                                                    "email": "field@example.com", "contract_value": "98765.43"})
    assert lead.status_code == 303
    listing = text(admin_client.get("/records/lead"))
    assert "Contract value" in listing and "98,765.43" in listing


def test_add_a_picklist_field_with_options(admin_client, system):
    response = post(admin_client, "/admin/objects/account/fields", {
        "label_en": "Tier", "type": "picklist", "options": "gold = Gold tier\nsilver", "required": "",
        "add_layout": "on"})
    assert response.status_code == 303, text(response)
    form = text(admin_client.get("/records/account/new"))
    assert '<option value="gold">Gold tier</option>' in form and '<option value="silver">Silver</option>' in form


def test_add_field_errors_are_shown_beside_the_inputs(admin_client):
    response = post(admin_client, "/admin/objects/lead/fields", {"label_en": "Stage", "type": "picklist",
                                                                "options": ""})
    assert response.status_code == 400 and "Give at least one option." in text(response)
    assert 'value="Stage"' in response.text
    clash = post(admin_client, "/admin/objects/lead/fields", {"label_en": "Company", "type": "text"})
    assert clash.status_code == 400 and "has a field with this name already" in text(clash)
    lookup = post(admin_client, "/admin/objects/lead/fields", {"label_en": "Partner", "type": "lookup"})
    assert lookup.status_code == 400 and "Choose the object it points to." in text(lookup)
    assert post(admin_client, "/admin/objects/nothing/fields", {"label_en": "x", "type": "text"}).status_code == 404


def test_layout_editor_validates_with_json_paths(admin_client, system):
    page = text(admin_client.get("/admin/metadata/layout/lead_default"))
    doc = json.loads(re.search(r'<textarea name="document"[^>]*>(.*?)</textarea>', page, re.DOTALL).group(1))
    assert doc["name"] == "lead_default"
    broken = post(admin_client, "/admin/metadata/layout/lead_default", {"document": "{not json", "_action": "preview"})
    assert broken.status_code == 400 and "Not valid JSON" in text(broken)
    doc["sections"][0]["fields"].append("no_such_field")
    doc["sections"][0]["columns"] = 9
    bad = post(admin_client, "/admin/metadata/layout/lead_default", {"document": json.dumps(doc), "_action": "apply"})
    assert bad.status_code == 400
    issues = re.findall(r'<code class="issue-path">([^<]+)</code>', bad.text)
    assert "/sections/0/columns" in issues
    assert json.dumps(doc)[:40] in text(bad)  # the admin's text is kept
    renamed = dict(doc, name="other")
    assert "must keep" in text(post(admin_client, "/admin/metadata/layout/lead_default",
                                    {"document": json.dumps(renamed), "_action": "preview"}))


def test_layout_editor_previews_a_diff_then_applies(admin_client, system):
    page = text(admin_client.get("/admin/metadata/layout/lead_default"))
    doc = json.loads(re.search(r'<textarea name="document"[^>]*>(.*?)</textarea>', page, re.DOTALL).group(1))
    first = doc["sections"][0]["fields"]
    first.remove("email")
    first.insert(0, "email")
    preview = post(admin_client, "/admin/metadata/layout/lead_default", {"document": json.dumps(doc),
                                                                         "_action": "preview"})
    assert preview.status_code == 200
    assert "layout/lead_default" in text(preview) and 'class="diff-add"' in preview.text
    form = admin_client.get("/records/lead/new").text
    assert form.index('name="company"') < form.index('name="email"')  # not applied yet
    applied = post(admin_client, "/admin/metadata/layout/lead_default", {"document": json.dumps(doc),
                                                                         "_action": "apply"})
    assert applied.status_code == 303
    form = admin_client.get("/records/lead/new").text
    assert form.index('name="email"') < form.index('name="company"')


def test_new_layout_for_an_object_without_one(admin_client):
    post(admin_client, "/admin/objects", {"name": "gadget", "label_en": "Gadget"})
    page = admin_client.get("/admin/objects/gadget").text
    link = html.unescape(re.search(r'href="(/admin/metadata/layout/gadget_default\?new=1)"', page).group(1))
    doc = json.loads(html.unescape(re.search(r'<textarea name="document"[^>]*>(.*?)</textarea>',
                                             admin_client.get(link).text, re.DOTALL).group(1)))
    doc["sections"][0]["label"] = "Gadget details"
    assert post(admin_client, "/admin/metadata/layout/gadget_default",
                {"document": json.dumps(doc), "_action": "apply"}).status_code == 303
    assert "Gadget details" in admin_client.get("/records/gadget/new").text


def test_metadata_editor_applies_a_bundle(admin_client, system):
    bundle = [{"kind": "object", "name": "ticket", "label": "Ticket", "name_field": "title",
               "fields": [{"name": "title", "type": "text", "required": True}]}]
    preview = post(admin_client, "/admin/metadata", {"document": json.dumps(bundle), "_action": "preview"})
    assert preview.status_code == 200 and "object/ticket" in text(preview) and "rec_ticket" in text(preview)
    assert 'href="/records/ticket"' not in admin_client.get("/").text
    applied = post(admin_client, "/admin/metadata", {"document": json.dumps(bundle), "_action": "apply"})
    assert applied.status_code == 303
    assert "Applied: metadata version" in text(admin_client.get("/admin/metadata"))
    assert admin_client.get("/records/ticket/new").status_code == 200
    invalid = post(admin_client, "/admin/metadata", {"document": json.dumps([{"kind": "object", "name": "x"}]),
                                                     "_action": "apply"})
    assert invalid.status_code == 400 and "problems" in text(invalid)


def test_admin_changes_need_csrf(admin_client):
    assert admin_client.post("/admin/objects", data={"name": "sneaky", "label_en": "S"}).status_code == 400
    assert "sneaky" not in admin_client.get("/admin").text


def test_field_list_shows_every_field(admin_client, system):
    new_lead(system, "Any Co")
    page = admin_client.get("/admin/objects/lead").text
    for name in ("company", "source", "owner", "created_at"):
        assert f"<code>{name}</code>" in page
