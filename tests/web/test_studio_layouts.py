"""Admin → Layouts (issue 15, the layout designer): the list of an object's layouts and who each
serves, a new layout, and the designer's form — the buttons that move fields and sections (the
keyboard and no-script path), review → diff → apply through apply_change, a stale version
refused with 409, bad input refused beside its input, and non-admins refused (403). Every case
runs on SQLite and PostgreSQL (the `engine` fixture)."""

from __future__ import annotations

import html
from html.parser import HTMLParser

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from tests.web.conftest import post


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


class _Form(HTMLParser):
    """The values the browser would send for the designer form (no submit buttons)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[tuple[str, str]] = []
        self._select: str | None = None
        self._chosen: str | None = None
        self._first: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.values.append((a["name"], a.get("value", "on")))
            elif kind != "submit":
                self.values.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self._select, self._chosen, self._first = a.get("name"), None, None
        elif tag == "option" and self._select:
            if self._first is None:
                self._first = a.get("value", "")
            if "selected" in a:
                self._chosen = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "select" and self._select:
            self.values.append((self._select, self._chosen if self._chosen is not None else self._first or ""))
            self._select = None


def designer_form(response) -> dict:
    parser = _Form()
    parser.feed(response.get_data(as_text=True))
    out: dict = {}
    for name, value in parser.values:
        if name in ("roles", "record_types"):
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    out.pop("_csrf", None)
    return out


def layout(runtime, name: str) -> dict:
    return runtime.registry().get("layout", name)


def test_the_list_shows_each_layout_and_whom_it_serves(admin_client):
    page = text(admin_client.get("/admin/layouts"))
    assert 'id="layouts-account"' in page and "Channel partner" in page
    assert 'href="/admin/layouts/account_channel_partner"' in page
    row = page.split('data-layout="account_default"')[1].split("</tr>")[0]
    assert "Everyone" in row and "Enterprise" in row  # roles and record types by label, not by name
    post(admin_client, "/profile", {"_action": "locale", "locale": "zh-CN"})
    zh = text(admin_client.get("/admin/layouts"))
    assert "页面布局" in zh and "所有人" in zh


def test_non_admins_are_refused(rep_client):
    assert rep_client.get("/admin/layouts").status_code == 403
    assert rep_client.get("/admin/layouts/account_default").status_code == 403
    assert post(rep_client, "/admin/layouts/account_default", {"_action": "apply"}).status_code == 403
    assert rep_client.get("/admin/layouts/new/account").status_code == 403


def test_unknown_layouts_and_objects_are_404(admin_client):
    assert admin_client.get("/admin/layouts/no_such_layout").status_code == 404
    assert admin_client.get("/admin/layouts/new/no_such_object").status_code == 404


def test_an_untouched_designer_changes_nothing(admin_client, runtime):
    before = layout(runtime, "account_default")
    page = admin_client.get("/admin/layouts/account_default")
    assert page.status_code == 200
    body = text(page)
    assert 'id="ld-preview"' in body and 'data-field="industry"' in body  # the preview on a sample record
    form = designer_form(page)
    assert form["sec.0.fields"].startswith("name,type,") and form["sec.0.label_en"] == "Account"
    assert form["record_types"] == ["enterprise", "government"] and form["all_roles"] == "1"
    review = post(admin_client, "/admin/layouts/account_default", {**form, "_action": "preview"})
    assert review.status_code == 200 and "No changes" in text(review)
    assert layout(runtime, "account_default") == before


def test_buttons_move_a_field_to_a_new_section_then_review_and_apply(admin_client, runtime, rep_client):
    page = admin_client.get("/admin/layouts/lead_default")
    form = designer_form(page)
    count = sum(1 for k in form if k.endswith(".columns"))
    first = form["sec.0.fields"].split(",")
    field = first[-1]
    # "Move" with "A new section" chosen: a plain form post (no script)
    moved = post(admin_client, "/admin/layouts/lead_default", {**form, f"dest.{field}": "new", "_op": f"f.to:{field}"})
    assert moved.status_code == 200
    form = designer_form(moved)
    assert form[f"sec.{count}.fields"] == field and field not in form["sec.0.fields"].split(",")
    assert f'id="f-to-{field}" aria-label' in moved.get_data(as_text=True) or "autofocus" in moved.get_data(as_text=True)
    # an empty title is refused beside its input; nothing is applied
    before = layout(runtime, "lead_default")
    refused = post(admin_client, "/admin/layouts/lead_default", {**form, "_action": "preview"})
    assert refused.status_code == 400
    assert f'id="e-sec-{count}-label_en"' in refused.get_data(as_text=True)
    assert "Give the section a title" in text(refused)
    assert layout(runtime, "lead_default") == before
    form = designer_form(refused)
    form[f"sec.{count}.label_en"] = "Follow-up"
    form[f"sec.{count}.label_zh"] = "跟进"
    form[f"sec.{count}.columns"] = "2"
    # up / down within a section
    second = first[1]
    down = post(admin_client, "/admin/layouts/lead_default", {**form, "_op": f"f.up:{second}"})
    form = designer_form(down)
    assert form["sec.0.fields"].split(",")[:2] == [second, first[0]]
    review = post(admin_client, "/admin/layouts/lead_default", {**form, "_action": "preview"})
    body = text(review)
    assert review.status_code == 200 and "layout/lead_default" in body and 'id="apply"' in body
    assert '"Follow-up"' in body
    assert layout(runtime, "lead_default") == before  # a review applies nothing
    again = designer_form(review)
    applied = post(admin_client, "/admin/layouts/lead_default", {**again, "_action": "apply"})
    assert applied.status_code == 303 and applied.headers["Location"] == "/admin/layouts/lead_default"
    doc = layout(runtime, "lead_default")
    assert doc["sections"][-1] == {"label": {"en": "Follow-up", "zh-CN": "跟进"}, "columns": 2, "fields": [field]}
    assert doc["sections"][0]["fields"][:2] == [second, first[0]]
    assert doc.get("related_lists") == before.get("related_lists")  # what the page did not touch is kept
    assert doc.get("list_columns") == before.get("list_columns")


def test_bad_input_is_refused_beside_the_input(admin_client, runtime):
    before = layout(runtime, "account_default")
    form = designer_form(admin_client.get("/admin/layouts/account_default"))
    bad = {**form, "sec.1.fields": form["sec.1.fields"] + ",no_such_field", "sec.0.label_en": "",
           "sec.0.label_zh": "", "sec.2.columns": "3", "_action": "preview"}
    response = post(admin_client, "/admin/layouts/account_default", bad)
    body = text(response)
    assert response.status_code == 400
    assert 'id="e-sec-1-fields">Unknown field: no_such_field.' in body
    assert 'id="e-sec-0-label_en">Give the section a title' in body
    assert "Choose one or two columns." in body
    assert layout(runtime, "account_default") == before
    # an unknown role, a field placed twice, an empty section
    form2 = {**form, "all_roles": "", "roles": ["no_such_role"], "sec.1.fields": form["sec.0.fields"].split(",")[0],
             "sec.2.fields": "", "_action": "apply"}
    form2.pop("all_roles")
    response = post(admin_client, "/admin/layouts/account_default", form2)
    body = text(response)
    assert response.status_code == 400
    assert "Unknown role: no_such_role." in body and "A field can be placed only once" in body
    assert "Place at least one field here" in body
    assert layout(runtime, "account_default") == before
    post(admin_client, "/profile", {"_action": "locale", "locale": "zh-CN"})
    zh = post(admin_client, "/admin/layouts/account_default", bad)
    assert zh.status_code == 400 and "未知字段：no_such_field。" in text(zh)


def test_a_stale_version_is_refused_with_409(admin_client, runtime):
    form = designer_form(admin_client.get("/admin/layouts/account_default"))
    changed = dict(layout(runtime, "account_default"))
    changed["list_columns"] = ["name", "owner"]
    apply_change(runtime, documents_bundle([changed]))  # someone else's change
    form["sec.0.label_en"] = "Account basics"
    response = post(admin_client, "/admin/layouts/account_default", {**form, "_action": "apply"})
    assert response.status_code == 409 and "Someone else changed this document" in text(response)
    assert layout(runtime, "account_default")["sections"][0]["label"]["en"] == "Account"
    assert layout(runtime, "account_default")["list_columns"] == ["name", "owner"]


def test_sections_related_lists_and_columns_by_buttons(admin_client, runtime):
    url = "/admin/layouts/account_default"
    form = designer_form(admin_client.get(url))
    form = designer_form(post(admin_client, url, {**form, "_op": "s.down:0"}))
    assert form["sec.1.label_en"] == "Account" and form["sec.0.label_en"] == "Company"
    form = designer_form(post(admin_client, url, {**form, "_op": "s.remove:3"}))
    assert "sec.3.fields" not in form
    page = post(admin_client, url, form)
    assert 'id="item-contact_count"' in page.get_data(as_text=True).split('id="palette-list"')[1]
    first_related = form["related"].split(",")[0]
    form = designer_form(post(admin_client, url, {**form, "_op": f"r.remove:{first_related}"}))
    assert first_related not in form["related"].split(",")
    form = designer_form(post(admin_client, url, {**form, "_op": f"r.add:{first_related}"}))
    assert form["related"].split(",")[-1] == first_related
    form = designer_form(post(admin_client, url, {**form, "_op": "c.add:website"}))
    assert form["list_columns"].split(",")[-1] == "website"
    form = designer_form(post(admin_client, url, {**form, "_op": "c.up:website"}))
    assert form["list_columns"].split(",")[-2] == "website"
    applied = post(admin_client, url, {**form, "_action": "apply"})
    assert applied.status_code == 303
    doc = layout(runtime, "account_default")
    assert [s["label"]["en"] for s in doc["sections"]] == ["Company", "Account", "Credit"]
    assert doc["related_lists"][-1]["object"] == first_related.split(".")[0]
    assert doc["related_lists"][-1].get("columns")  # a list put back keeps its columns
    assert doc["list_columns"][-2] == "website"


def test_a_new_layout_for_a_role_and_record_type(admin_client, runtime):
    page = admin_client.get("/admin/layouts/new/account")
    assert page.status_code == 200 and 'name="record_types" value="channel_partner"' in page.get_data(as_text=True)
    bad = post(admin_client, "/admin/layouts/new/account", {"label_en": "", "roles": ["nobody"], "_action": "preview"})
    assert bad.status_code == 400
    assert "Unknown role: nobody." in text(bad) and 'id="e-n-label_en"' in bad.get_data(as_text=True)
    data = {"label_en": "Finance view", "label_zh": "财务视图", "roles": ["finance"],
            "record_types": ["enterprise"], "copy_from": "account_default"}
    review = post(admin_client, "/admin/layouts/new/account", {**data, "_action": "preview"})
    assert review.status_code == 200 and "layout/account_finance_view" in text(review)
    assert layout(runtime, "account_finance_view") is None
    applied = post(admin_client, "/admin/layouts/new/account", {**data, "_action": "apply"})
    assert applied.status_code == 303 and applied.headers["Location"] == "/admin/layouts/account_finance_view"
    doc = layout(runtime, "account_finance_view")
    assert doc["applies_to"] == {"record_types": ["enterprise"], "roles": ["finance"]}
    assert doc["label"] == {"en": "Finance view", "zh-CN": "财务视图"}
    assert doc["sections"] == layout(runtime, "account_default")["sections"]
    again = post(admin_client, "/admin/layouts/new/account", {**data, "_action": "apply"})
    assert again.status_code == 400 and "A layout with this name exists already." in text(again)
    listing = text(admin_client.get("/admin/layouts"))
    assert "Finance view" in listing


def test_a_required_field_taken_off_the_layout_is_warned_about(admin_client, runtime):
    form = designer_form(admin_client.get("/admin/layouts/lead_default"))
    assert 'id="unplaced-required"' not in admin_client.get("/admin/layouts/lead_default").get_data(as_text=True)
    page = post(admin_client, "/admin/layouts/lead_default", {**form, "_op": "f.remove:company"})
    body = text(page)
    assert page.status_code == 200 and "Required, yet not on the layout: Company." in body
    assert 'id="item-company"' in body.split('id="palette-list"')[1]  # back in the palette
    assert 'id="f-to-company" aria-label="Move Company to the chosen place" autofocus' in body
