"""Nested all / any / not groups in the condition form (platform/web/condition_rows.py): the posted
rows and groups read as the filter grammar's nesting and back, a flat form exactly as before, bad
input kept beside its row; and a report saved with a nested filter counts the right records."""

from __future__ import annotations

import re

from metacrm.platform.web.condition_rows import rows_from_filter, rows_from_form
from tests.conftest import make_user
from tests.web.conftest import login, new_lead, post


def _lead_fields(runtime):
    return dict(runtime.compiled().registry.objects["lead"].all_fields)


def _read(app, runtime, form):
    with app.test_request_context("/"):
        return rows_from_form(form, _lead_fields(runtime))


def _form(rows, prefix="c"):
    """The form a page draws for `rows` (as rows_from_filter gives them), posted unchanged."""
    form = {}
    for i, item in enumerate(rows):
        if "group" in item:
            form[f"{prefix}.{i}.group"] = str(item["group"])
        if item.get("kind") == "group":
            form[f"{prefix}.{i}.kind"] = "group"
            form[f"{prefix}.{i}.mode"] = item["mode"]
            if item["not"]:
                form[f"{prefix}.{i}.not"] = "on"
        else:
            form.update({f"{prefix}.{i}.field": item["field"], f"{prefix}.{i}.op": item["op"],
                         f"{prefix}.{i}.value": item["value"]})
    return form


def test_a_flat_form_reads_and_writes_as_before(app, runtime):
    form = {"c.0.field": "source", "c.0.op": "ne", "c.0.value": "referral",
            "c.1.field": "status", "c.1.op": "eq", "c.1.value": "new", "c.2.field": "", "c.2.group": ""}
    flt, rows, errors = _read(app, runtime, form)
    assert flt == {"all": [{"source": {"ne": "referral"}}, {"status": "new"}]} and errors == {}
    assert rows == [{"field": "source", "op": "ne", "value": "referral"}, {"field": "status", "op": "eq", "value": "new"}]
    assert rows_from_filter(flt) == rows
    assert rows_from_filter({"status": "new"}) == [{"field": "status", "op": "eq", "value": "new"}]
    one, _, _ = _read(app, runtime, {"c.0.field": "status", "c.0.value": "new"})
    assert one == {"status": "new"}


def test_two_levels_of_groups_round_trip(app, runtime):
    flt = {"all": [{"status": "new"},
                   {"any": [{"source": "web"}, {"all": [{"source": "referral"}, {"company": {"contains": "Ac"}}]}]}]}
    rows = rows_from_filter(flt)
    assert rows[1] == {"kind": "group", "mode": "any", "not": False}
    assert rows[2]["group"] == 1 and rows[3] == {"kind": "group", "mode": "all", "not": False, "group": 1}
    assert rows[4]["group"] == 3 and rows[5]["group"] == 3
    again, rows_again, errors = _read(app, runtime, _form(rows))
    assert errors == {} and again == flt and rows_again == rows


def test_not_groups_round_trip(app, runtime):
    for flt in ({"not": {"status": "new"}}, {"all": [{"status": "new"}, {"not": {"any": [{"source": "web"},
                                                                                      {"source": "referral"}]}}]}):
        rows = rows_from_filter(flt)
        assert rows is not None and any(r.get("not") for r in rows)
        again, _, errors = _read(app, runtime, _form(rows))
        assert errors == {} and again == flt


def test_a_blank_group_is_ignored_and_a_filled_one_counts(app, runtime):
    # as the page draws it without JavaScript: rows, a blank row, then a blank group with its blank row
    base = {"c.0.field": "status", "c.0.value": "new", "c.1.field": "", "c.1.group": "",
            "c.3.kind": "group", "c.3.mode": "all", "c.3.group": "", "c.4.field": "", "c.4.group": "3"}
    flt, rows, errors = _read(app, runtime, base)
    assert flt == {"status": "new"} and len(rows) == 1 and errors == {}
    filled = dict(base, **{"c.3.mode": "any", "c.4.field": "source", "c.4.value": "web"})
    flt, rows, errors = _read(app, runtime, filled)
    assert flt == {"all": [{"status": "new"}, {"source": "web"}]} and rows[1]["kind"] == "group"
    assert _read(app, runtime, dict(filled, **{"c.3.not": "on"}))[0] == {"all": [{"status": "new"},
                                                                                 {"not": {"source": "web"}}]}


def test_bad_input_is_a_precise_error_beside_its_item(app, runtime):
    flt, rows, errors = _read(app, runtime, {"c.0.kind": "group", "c.0.mode": "some",
                                             "c.1.group": "0", "c.1.field": "source", "c.1.value": "web"})
    assert errors == {0: "Choose whether all or any of the group must hold."} and flt is None
    assert rows == [{"kind": "group", "mode": "some", "not": False}, {"field": "source", "op": "eq", "value": "web", "group": 0}]
    flt, rows, errors = _read(app, runtime, {"c.0.field": "status", "c.0.value": "new",
                                             "c.1.group": "7", "c.1.field": "source", "c.1.value": "web"})
    assert list(errors) == [1] and "group" in errors[1] and rows[1]["field"] == "source"
    flt, rows, errors = _read(app, runtime, {"c.0.kind": "group", "c.0.mode": "any", "c.1.group": "0",
                                             "c.1.field": "nope", "c.1.value": "x"})
    assert list(errors) == [1] and "nope" in errors[1]
    deep = {}
    for level in range(6):
        deep.update({f"c.{level}.kind": "group", f"c.{level}.mode": "all", f"c.{level}.group": str(level - 1) if level else ""})
    deep.update({"c.6.group": "5", "c.6.field": "source", "c.6.value": "web"})
    _, _, errors = _read(app, runtime, deep)
    assert "4" in errors[4] and 4 in errors
    assert rows_from_filter({"any": []}) is None and rows_from_filter({"not": {"a": 1, "b": 2}}) is None


def test_a_report_saved_with_a_nested_filter_counts_the_right_leads(app, client, runtime, system):
    manager = make_user(runtime, client, "max", ["sales_manager"])
    for company, source, status in (("Acme", "web", "new"), ("Bolt", "referral", "new"), ("Cray", "offline_event", "new"),
                                    ("Dune", "web", "working")):
        new_lead(system, company, source=source, status=status, owner=manager.id)
    mc = app.test_client()
    assert login(mc, manager.username, manager.password).status_code == 303
    page = mc.get("/reports/new?object=lead").get_data(as_text=True)
    assert 'data-cond-add-group' in page and 'name="c.1.kind"' in page and 'name="c.2.group" value="1"' in page  # the blank group, for a plain submit
    form = {"object": "lead", "label_en": "New web or referral", "label_zh": "新的网络或推荐", "folder": "Mine",
            "c.0.field": "status", "c.0.op": "eq", "c.0.value": "new",
            "c.1.kind": "group", "c.1.mode": "any", "c.1.group": "",
            "c.2.group": "1", "c.2.field": "source", "c.2.op": "eq", "c.2.value": "web",
            "c.3.group": "1", "c.3.field": "source", "c.3.op": "eq", "c.3.value": "referral",
            "group1": "source", "period1": "", "group2": "", "period2": "",
            "m.0.function": "count", "m.0.field": "", "sort": "-count", "chart": "bar", "sharing": "private"}
    saved = post(mc, "/reports/new", form)
    assert saved.status_code == 303, saved.get_data(as_text=True)
    doc = runtime.compiled().registry.get("report", "new_web_or_referral")
    assert doc["filter"] == {"all": [{"status": "new"}, {"any": [{"source": "web"}, {"source": "referral"}]}]}
    run = mc.get("/reports/new_web_or_referral").get_data(as_text=True)
    assert re.search(r'report-total.*?<strong>2</strong>', run, re.DOTALL)
    edit = mc.get("/reports/new?name=new_web_or_referral").get_data(as_text=True)
    assert 'name="c.1.kind"' in edit and re.search(r'name="c\.1\.mode"[^>]*>\s*<option value="all">[^<]*</option>'
                                                    r'\s*<option value="any" selected', edit)
    bad = post(mc, "/reports/new_web_or_referral/edit", dict(form, **{"c.3.field": "nope"}))
    assert bad.status_code in (200, 400) and "There is no field nope" in bad.get_data(as_text=True)
    assert runtime.compiled().registry.get("report", "new_web_or_referral")["filter"] == doc["filter"]


def test_a_pool_with_a_nested_entry_condition_edits_in_the_rows(admin_client, runtime):
    from metacrm.metadata.bundle import documents_bundle
    from metacrm.platform.apply import apply_change
    from tests.web.test_studio_rules import doc, form_of, text

    nested = {"all": [{"product_line": {"is_null": True}},
                      {"not": {"any": [{"source": "web"}, {"source": "referral"}]}}]}
    apply_change(runtime, documents_bundle([dict(doc(runtime, "pool", "general_leads"), entry=nested)]))
    raw = admin_client.get("/admin/rules/pools/general_leads").get_data(as_text=True)
    assert 'name="entry.1.kind"' in raw and re.search(r'name="entry\.1\.not"[^>]*checked', raw)
    form = form_of(raw)
    untouched = post(admin_client, "/admin/rules/pools/general_leads", {**form, "_action": "preview"})
    assert untouched.status_code == 200 and "No changes" in text(untouched), text(untouched)
    del form["entry.1.not"]
    applied = post(admin_client, "/admin/rules/pools/general_leads", {**form, "_action": "apply"})
    assert applied.status_code == 303, text(applied)
    assert doc(runtime, "pool", "general_leads")["entry"] == {
        "all": [{"product_line": {"is_null": True}}, {"any": [{"source": "web"}, {"source": "referral"}]}]}
