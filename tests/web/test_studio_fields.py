"""Admin studio → field editors (issue 15): every field type has a form that builds the field
document the runtime knows, every save shows the dry-run diff first and applies with the version
the form loaded (409 when someone changed the object in between), and bad input is refused with
the message beside its input, changing nothing. Runs on SQLite and PostgreSQL (`engine`)."""

from __future__ import annotations

import html
import json
import re

import sqlalchemy as sa

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.web.conftest import post


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def versions(page: str) -> str:
    """The hidden `versions` of a page (already unescaped by text(): a JSON object without braces inside)."""
    return re.search(r'name="versions" value="(\{[^}]*\})"', page).group(1)


def obj_doc(runtime, name: str) -> dict:
    return runtime.registry().get("object", name)


def field_doc(runtime, obj: str, name: str) -> dict | None:
    return next((f for f in obj_doc(runtime, obj)["fields"] if f["name"] == name), None)


def error_beside(page: str, input_id: str) -> str:
    """The field-error paragraph inside the .field that holds `input_id`."""
    match = re.search(rf'<div class="field has-error"[^>]*>(?:(?!</div>).)*id="{input_id}"(?:(?!</div>).)*'
                      r'<p class="field-error"[^>]*>([^<]+)</p>', page, re.DOTALL)
    assert match, f"no error beside {input_id}"
    return match.group(1)


def to_chinese(runtime) -> None:
    users = runtime.compiled().tables["user"]
    with runtime.reading() as conn:
        admin_id = conn.execute(sa.select(users.c.id).where(users.c.username == "admin")).scalar_one()
    service(runtime).update("user", admin_id, {"locale": "zh-CN"})


def service(runtime) -> RecordService:
    return RecordService(runtime, Principal.system(), source="test")


def test_the_object_page_links_every_field_editor(admin_client, runtime):
    page = text(admin_client.get("/admin/objects/opportunity"))
    for kind in ("formula", "rollup", "autonumber", "picklist", "lookup", "currency"):
        assert f'href="/admin/objects/opportunity/new-field/{kind}"' in page
    assert 'href="/admin/objects/opportunity/fields/amount"' in page
    assert 'href="/admin/objects/opportunity/record-types"' in page
    assert ">Currency<" in page and ">currency<" not in page  # the type's name in words
    kinds = ("formula", "rollup", "autonumber", "picklist", "multipicklist", "lookup", "currency", "decimal",
             "text", "boolean", "date", "integer")
    for kind in kinds:
        assert admin_client.get(f"/admin/objects/opportunity/new-field/{kind}").status_code == 200
    for name in ("amount", "stage", "account", "weighted_amount"):
        assert admin_client.get(f"/admin/objects/opportunity/fields/{name}").status_code == 200
    to_chinese(runtime)
    assert "公式" in text(admin_client.get("/admin/objects/opportunity"))
    for kind in kinds:
        page = text(admin_client.get(f"/admin/objects/opportunity/new-field/{kind}"))
        assert "标签与行为" in page and "studio." not in page
    assert admin_client.get("/admin/objects/opportunity/new-field/password").status_code == 404
    assert admin_client.get("/admin/objects/opportunity/fields/nope").status_code == 404


def test_a_rep_may_not_open_the_editors(rep_client):
    assert rep_client.get("/admin/objects/opportunity/fields/amount").status_code == 403
    assert rep_client.get("/admin/objects/opportunity/new-field/formula").status_code == 403
    assert post(rep_client, "/admin/objects/opportunity/formula-check",
                {"expression": "1"}).status_code == 403


def test_the_formula_check_says_where_the_syntax_is_wrong_and_previews_a_record(admin_client, runtime):
    opp = service(runtime).create("opportunity", {"name": "Big deal", "amount": "1000.00"})
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', text(admin_client.get("/admin"))).group(1)
    url = "/admin/objects/opportunity/formula-check"
    bad = admin_client.post(url, json={"expression": "amount *", "result_type": "currency"},
                            headers={"X-CSRF-Token": csrf}).get_json()
    assert bad["ok"] is False and bad["errors"][0]["line"] == 1 and bad["errors"][0]["column"] == 9
    assert "line 1, column 9" in bad["errors"][0]["text"]
    unknown = admin_client.post(url, json={"expression": "amont * 2"}, headers={"X-CSRF-Token": csrf}).get_json()
    assert unknown["ok"] is False and "did you mean 'amount'" in unknown["errors"][0]["message"]
    assert unknown["errors"][0]["text"] == ("The formula cannot be used: 'amont' is not a field of this object; "
                                            "did you mean 'amount'?")
    itself = admin_client.post(url, json={"expression": "doubled + 1", "field": "doubled"},
                               headers={"X-CSRF-Token": csrf}).get_json()
    assert "its own field 'doubled'" in itself["errors"][0]["text"]
    through = admin_client.post(url, json={"expression": "account.name"}, headers={"X-CSRF-Token": csrf}).get_json()
    assert through["errors"][0]["text"].endswith("a formula sees only this record's own fields")
    good = admin_client.post(url, json={"expression": "amount / 4", "result_type": "currency",
                                        "scale": "2", "record": opp["id"]}, headers={"X-CSRF-Token": csrf})
    body = good.get_json()
    assert body["ok"] is True and body["value"] == "250.00" and "250" in body["shown"]
    assert admin_client.post(url, json={"expression": "1"}).status_code in (400, 403)  # no CSRF token
    odd = admin_client.post(url, json=["amount"], headers={"X-CSRF-Token": csrf})
    assert odd.status_code == 200 and odd.get_json()["ok"] is False  # an empty expression, not a 500
    wrong_type = admin_client.post(url, json={"expression": "1", "result_type": "money"},
                                   headers={"X-CSRF-Token": csrf})
    assert wrong_type.status_code == 400
    missing = admin_client.post(url, json={"expression": "amount", "record": "nope", "scale": {"x": 1}},
                                headers={"X-CSRF-Token": csrf}).get_json()
    assert missing["ok"] is True and missing["value_error"] == "That record is not available."


def test_a_formula_field_is_refused_with_the_error_beside_it_then_created(admin_client, runtime):
    url = "/admin/objects/opportunity/new-field/formula"
    page = text(admin_client.get(url))
    form = {"versions": versions(page), "label_en": "Doubled", "label_zh": "双倍", "expression": "amount *",
            "result_type": "currency", "scale": "2", "add_layout": "on", "_action": "preview"}
    before = obj_doc(runtime, "opportunity")
    refused = post(admin_client, url, form)
    assert refused.status_code == 400
    assert "Syntax error at line 1, column 9" in error_beside(text(refused), "sf-expression")
    assert obj_doc(runtime, "opportunity") == before
    form["expression"] = "amount * 2"
    preview = post(admin_client, url, form)
    assert preview.status_code == 200, text(preview)
    assert "+ column rec_opportunity.doubled" in text(preview) and 'id="apply"' in text(preview)
    assert field_doc(runtime, "opportunity", "doubled") is None  # a preview changes nothing
    applied = post(admin_client, url, {**form, "_action": "apply"})
    assert applied.status_code == 303
    assert field_doc(runtime, "opportunity", "doubled") == {
        "name": "doubled", "type": "formula", "label": {"en": "Doubled", "zh-CN": "双倍"},
        "expression": "amount * 2", "result_type": "currency", "scale": 2}
    record = service(runtime).create("opportunity", {"name": "Deal", "amount": "300.00"})
    assert record["doubled"] == "600.00"
    layout = runtime.registry().get("layout", "opportunity_default")
    assert "doubled" in layout["sections"][-1]["fields"]


def test_editing_a_field_labels_help_flags_and_default(admin_client, runtime):
    url = "/admin/objects/product/fields/code"
    page = text(admin_client.get(url))
    assert 'value="code"' not in page.split('id="sf-label_en"')[0][-200:]
    form = {"versions": versions(page), "label_en": "Product code", "label_zh": "产品编码",
            "help_en": "As printed on the box", "help_zh": "与包装上的一致", "searchable": "on", "indexed": "on",
            "default": "P-", "max_length": "40", "_action": "apply"}
    assert post(admin_client, url, form).status_code == 303
    code = field_doc(runtime, "product", "code")
    assert code["label"] == {"en": "Product code", "zh-CN": "产品编码"}
    assert code["help"] == {"en": "As printed on the box", "zh-CN": "与包装上的一致"}
    assert code["searchable"] is True and code["indexed"] is True and code["default"] == "P-"
    assert code["max_length"] == 40
    described = admin_client.get("/api/v1/meta/objects/product?locale=zh-CN").get_json()
    fields = described["fields"]
    fields = fields.values() if isinstance(fields, dict) else fields
    assert next(f for f in fields if f["name"] == "code")["help"] == "与包装上的一致"  # the API: a string
    assert "As printed on the box" in text(admin_client.get("/records/product/new"))
    bad = post(admin_client, url, {**form, "versions": versions(text(admin_client.get(url))), "max_length": "0",
                                   "label_en": "", "label_zh": ""})
    assert bad.status_code == 400
    assert error_beside(text(bad), "sf-max_length") == "Enter a number from 1 to 4000."
    assert error_beside(text(bad), "sf-label_en") and field_doc(runtime, "product", "code") == code
    to_chinese(runtime)
    assert "与包装上的一致" in text(admin_client.get("/records/product/new"))


def test_a_stale_form_is_refused_with_409(admin_client, runtime):
    url = "/admin/objects/product/fields/unit"
    page = text(admin_client.get(url))
    doc = obj_doc(runtime, "product")
    doc["description"] = "changed by someone else"
    apply_change(runtime, documents_bundle([doc]))
    stale = post(admin_client, url, {"versions": versions(page), "label_en": "Unit of sale", "_action": "apply"})
    assert stale.status_code == 409
    assert "changed" in text(stale).lower() and field_doc(runtime, "product", "unit")["label"] != "Unit of sale"


def test_currency_precision_and_scale(admin_client, runtime):
    url = "/admin/objects/product/new-field/currency"
    form = {"versions": versions(text(admin_client.get(url))), "label_en": "Cost", "precision": "12",
            "scale": "14", "_action": "preview"}
    bad = post(admin_client, url, form)
    assert bad.status_code == 400 and error_beside(text(bad), "sf-scale") == "Decimal places cannot exceed the precision."
    bad = post(admin_client, url, {**form, "scale": "x"})
    assert error_beside(text(bad), "sf-scale") == "Enter a whole number."
    assert post(admin_client, url, {**form, "scale": "3", "default": "1.5", "_action": "apply"}).status_code == 303
    assert field_doc(runtime, "product", "cost") == {"name": "cost", "type": "currency", "label": "Cost",
                                                     "precision": 12, "scale": 3, "default": "1.5"}
    bad = post(admin_client, "/admin/objects/product/fields/cost", {
        "versions": versions(text(admin_client.get("/admin/objects/product/fields/cost"))), "label_en": "Cost",
        "default": "abc", "_action": "preview"})
    assert error_beside(text(bad), "sf-default") == "Enter a number such as 12.50."


def test_a_picklist_with_ordered_values_in_both_locales_colours_and_a_default(admin_client, runtime):
    url = "/admin/objects/product/new-field/picklist"
    form = {"versions": versions(text(admin_client.get(url))), "label_en": "Tier", "label_zh": "档次",
            "opt.0.value": "gold", "opt.0.label_en": "Gold", "opt.0.label_zh": "金", "opt.0.color": "#FFD700",
            "opt.1.value": "silver", "opt.1.label_en": "Silver", "opt.1.label_zh": "银",
            "opt.1.default": "on", "opt.2.value": ""}
    moved = text(post(admin_client, url, {**form, "_action": "opt_down:0"}))  # redraws, saves nothing
    assert moved.index('value="silver"') < moved.index('value="gold"')
    assert field_doc(runtime, "product", "tier") is None
    bad = post(admin_client, url, {**form, "opt.0.color": "gold", "opt.1.value": "gold", "_action": "preview"})
    page = text(bad)
    assert bad.status_code == 400 and "Write a colour as #rrggbb" in page and "This value is listed twice." in page
    assert post(admin_client, url, {**form, "_action": "apply"}).status_code == 303
    assert field_doc(runtime, "product", "tier") == {
        "name": "tier", "type": "picklist", "label": {"en": "Tier", "zh-CN": "档次"}, "default": "silver",
        "options": [{"value": "gold", "label": {"en": "Gold", "zh-CN": "金"}, "color": "#ffd700"},
                    {"value": "silver", "label": {"en": "Silver", "zh-CN": "银"}}]}
    two = post(admin_client, url.replace("tier", ""), {**form, "label_en": "Tier two", "opt.0.default": "on",
                                                       "_action": "preview"})
    assert "A picklist has at most one default value." in text(two)
    # the stage picklist keeps the attributes the form does not edit (probability, is_won ...)
    stage_url = "/admin/objects/opportunity/fields/stage"
    page = text(admin_client.get(stage_url))
    live = field_doc(runtime, "opportunity", "stage")
    form = {"versions": versions(page), "label_en": "Stage", "label_zh": "阶段", "required": "on"}
    for n, opt in enumerate(live["options"]):
        form[f"opt.{n}.value"] = opt["value"]
        form[f"opt.{n}.label_en"] = opt["label"]["en"] if isinstance(opt.get("label"), dict) else opt.get("label", "")
        form[f"opt.{n}.label_zh"] = opt["label"].get("zh-CN", "") if isinstance(opt.get("label"), dict) else ""
    reordered = post(admin_client, stage_url, {**form, "_action": "opt_up:1"})
    assert reordered.status_code == 200
    assert post(admin_client, stage_url, {**form, "_action": "apply"}).status_code == 303
    after = field_doc(runtime, "opportunity", "stage")
    assert [o["value"] for o in after["options"]] == [o["value"] for o in live["options"]]
    assert [o.get("probability") for o in after["options"]] == [o.get("probability") for o in live["options"]]


def test_a_lookup_target_and_on_delete(admin_client, runtime):
    url = "/admin/objects/product/new-field/lookup"
    form = {"versions": versions(text(admin_client.get(url))), "label_en": "Supplier", "target": "",
            "on_delete": "explode", "_action": "preview"}
    bad = text(post(admin_client, url, form))
    assert error_beside(bad, "sf-target") and error_beside(bad, "sf-on_delete")
    assert post(admin_client, url, {**form, "target": "account", "on_delete": "restrict",
                                    "_action": "apply"}).status_code == 303
    assert field_doc(runtime, "product", "supplier") == {"name": "supplier", "type": "lookup", "label": "Supplier",
                                                         "target": "account", "on_delete": "restrict"}
    page = text(admin_client.get("/admin/objects/product/fields/supplier"))
    assert "Refuse the delete while records point to it" in page


def test_an_autonumber_pattern_with_the_next_value(admin_client, runtime):
    url = "/admin/objects/product/new-field/autonumber"
    form = {"versions": versions(text(admin_client.get(url))), "label_en": "Number", "name": "number",
            "format": "P-{YYYY}-{00}-{000}", "_action": "preview"}
    bad = post(admin_client, url, form)
    assert "exactly one counter" in error_beside(text(bad), "sf-format")
    preview = text(post(admin_client, url, {**form, "format": "P-{0000}"}))
    assert "Next value: P-0001" in preview
    assert post(admin_client, url, {**form, "format": "P-{0000}", "_action": "apply"}).status_code == 303
    service(runtime).create("product", {"name": "Widget"})
    assert "Next value: P-0002" in text(admin_client.get("/admin/objects/product/fields/number"))


def test_a_rollup_with_child_function_and_a_filter_from_the_condition_rows(admin_client, runtime):
    url = "/admin/objects/account/new-field/rollup"
    page = text(admin_client.get(url))
    assert 'value="opportunity.account"' in page and 'data-condrows="rf"' in page
    form = {"versions": versions(page), "label_en": "Won amount", "label_zh": "赢单金额",
            "child": "opportunity.account", "function": "sum", "agg_field": "", "scale": "2",
            "rf.0.field": "stage", "rf.0.op": "eq", "rf.0.value": "won", "_action": "preview"}
    bad = text(post(admin_client, url, form))
    assert error_beside(bad, "sf-agg_field") == "Pick a number or date field of the child records."
    bad = post(admin_client, url, {**form, "agg_field": "amount", "rf.0.field": "nope"})
    assert bad.status_code == 400 and "Fix the conditions marked below." in text(bad)
    assert post(admin_client, url, {**form, "agg_field": "amount", "_action": "apply"}).status_code == 303
    assert field_doc(runtime, "account", "won_amount") == {
        "name": "won_amount", "type": "rollup", "label": {"en": "Won amount", "zh-CN": "赢单金额"},
        "child_object": "opportunity", "child_field": "account", "function": "sum", "field": "amount",
        "scale": 2, "filter": {"stage": "won"}}
    edit = text(admin_client.get("/admin/objects/account/fields/won_amount"))
    assert re.search(r'<option value="stage"[^>]*selected', edit)  # the filter comes back as rows


def test_archiving_a_field_shows_the_rows_and_the_archived_column_first(admin_client, runtime):
    service(runtime).create("product", {"name": "Widget", "unit": "box"})
    url = "/admin/objects/product/fields/unit"
    form = {"versions": versions(text(admin_client.get(url))), "label_en": "Unit", "_action": "archive_preview"}
    preview = text(post(admin_client, url, form))
    assert "1 records hold a value in this field" in preview
    assert "- archived column rec_product.unit" in preview and 'id="apply-archive"' in preview
    assert field_doc(runtime, "product", "unit") is not None
    assert post(admin_client, url, {**form, "_action": "archive"}).status_code == 303
    assert field_doc(runtime, "product", "unit") is None
    layout = runtime.registry().get("layout", "product_default")
    assert "unit" not in json.dumps(layout)
    name_field = post(admin_client, "/admin/objects/product/fields/name", {
        "versions": versions(text(admin_client.get("/admin/objects/product/fields/name"))),
        "_action": "archive_preview"})
    assert name_field.status_code == 400 and "cannot be archived" in text(name_field)


def test_record_types_and_the_activity_checkbox(admin_client, runtime):
    url = "/admin/objects/product/record-types"
    page = text(admin_client.get(url))
    assert 'id="activities"' in page and "checked" not in page.split('id="activities"')[1][:40]
    form = {"versions": versions(page), "rt.0.name": "", "rt.0.label_en": "Hardware", "rt.0.label_zh": "硬件",
            "rt.1.name": "Bad name", "activities": "on", "add_related": "on", "_action": "preview"}
    bad = post(admin_client, url, form)
    assert bad.status_code == 400 and "Nothing was changed" in text(bad)
    form.pop("rt.1.name")
    preview = text(post(admin_client, url, form))
    assert "object/activity" in preview and "layout/product_default" in preview
    assert post(admin_client, url, {**form, "_action": "apply"}).status_code == 303
    assert obj_doc(runtime, "product")["record_types"] == [{"name": "hardware",
                                                            "label": {"en": "Hardware", "zh-CN": "硬件"}}]
    assert "product" in field_doc(runtime, "activity", "related_to")["target"]
    layout = runtime.registry().get("layout", "product_default")
    assert any(r["object"] == "activity" for r in layout["related_lists"])
    page = text(admin_client.get(url))
    off = {"versions": versions(page), "rt.0.name": "hardware", "rt.0.label_en": "Hardware",
           "rt.0.label_zh": "硬件", "_action": "apply"}
    assert post(admin_client, url, off).status_code == 303
    assert "product" not in field_doc(runtime, "activity", "related_to")["target"]


def test_archiving_a_field_other_documents_use_is_refused_and_changes_nothing(admin_client, runtime):
    url = "/admin/objects/opportunity/fields/amount"
    before = obj_doc(runtime, "opportunity")
    refused = post(admin_client, url, {"versions": versions(text(admin_client.get(url))), "label_en": "Amount",
                                       "_action": "archive_preview"})
    page = text(refused)
    assert refused.status_code == 400 and 'id="meta-issues"' in page and "amount" in page
    assert obj_doc(runtime, "opportunity") == before
