"""Everything that applies is valid: option values typed by the JSON Schemas (min / max of the
field's type), webhook header values on one line, formulas naming only the record's own fields
(no lookup traversal); values beyond the storage (64-bit integers) are bad input, not a 500."""

from __future__ import annotations

import copy

import pytest

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from metacrm.platform.errors import MetadataInvalid, ValidationFailed
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal

THING = {
    "kind": "object", "name": "thing", "label": "Thing", "name_field": "title",
    "fields": [{"name": "title", "type": "text", "max_length": 100}],
}


def thing(*fields: dict) -> dict:
    doc = copy.deepcopy(THING)
    doc["fields"] += list(fields)
    return doc


def refused(runtime, *documents) -> list[tuple[str, str, str]]:
    with pytest.raises(MetadataInvalid) as caught:
        apply_change(runtime, documents_bundle(list(documents)))
    return [(i.source, i.path, i.message) for i in caught.value.issues]


@pytest.mark.parametrize("field, path", [
    ({"name": "qty", "type": "integer", "min": "zero"}, "/fields/1/min"),
    ({"name": "qty", "type": "integer", "max": 1.5}, "/fields/1/max"),
    ({"name": "qty", "type": "integer", "min": 2**64}, "/fields/1/min"),
    ({"name": "price", "type": "currency", "min": "zero"}, "/fields/1/min"),
    ({"name": "price", "type": "decimal", "default": "lots"}, "/fields/1/default"),
    ({"name": "due", "type": "date", "min": "yesterday"}, "/fields/1/min"),
    ({"name": "due", "type": "date", "max": 20240101}, "/fields/1/max"),
    ({"name": "size", "type": "text", "min": 3}, "/fields/1/min"),
    ({"name": "at", "type": "datetime", "max": "2030-01-01T00:00:00Z"}, "/fields/1/max"),
])
def test_option_values_are_typed_for_the_field(runtime, field, path):
    issues = refused(runtime, thing(field))
    assert any(source == "object/thing" and p == path for source, p, _ in issues), issues
    assert not runtime.compiled(force=True).registry.has_object("thing")


def test_typed_bounds_that_apply_are_enforced_as_400_never_500(runtime):
    apply_change(runtime, documents_bundle([thing(
        {"name": "price", "type": "currency", "min": "0", "max": 1000},
        {"name": "due", "type": "date", "min": "2020-01-01"},
        {"name": "qty", "type": "integer"},
    )]))
    service = RecordService(runtime, Principal.system())
    assert service.create("thing", {"title": "ok", "price": "10.50", "due": "2024-05-01", "qty": 2**63 - 1})["id"]
    for values, field in [({"price": "-1"}, "price"), ({"price": "1000.01"}, "price"), ({"due": "2019-12-31"}, "due"),
                          ({"qty": 2**63}, "qty"), ({"qty": -(2**63) - 1}, "qty"), ({"qty": 10**30}, "qty")]:
        with pytest.raises(ValidationFailed) as caught:
            service.create("thing", {"title": "bad", **values})
        assert field in caught.value.fields, (values, caught.value.fields)


def test_integers_beyond_64_bits_over_rest_are_400(client, admin_headers):
    for value in (2**63, -(2**63) - 1, 10**40):
        response = client.post("/api/v1/records/account", json={"name": "Big Co", "employees": value},
                               headers=admin_headers)
        assert response.status_code == 400, response.get_json()
        assert "employees" in response.get_json()["error"]["fields"]


def test_webhook_header_values_must_be_one_line(runtime):
    rule = {"kind": "workflow_rule", "name": "hook", "object": "thing", "trigger": {"on": "create"},
            "actions": [{"action": "webhook", "url": "https://example.com/hook",
                         "headers": {"X-Team": "sales\r\nX-Injected: 1"}}]}
    issues = refused(runtime, THING, rule)
    assert any(source == "workflow_rule/hook" and path == "/actions/0/headers/X-Team" for source, path, _ in issues), \
        issues
    rule["actions"][0]["headers"] = {"Bad Name": "x"}
    issues = refused(runtime, THING, rule)
    assert any(path.startswith("/actions/0/headers") for _, path, _ in issues), issues
    rule["actions"][0]["headers"] = {"X-Team": "sales"}
    assert apply_change(runtime, documents_bundle([THING, rule])).applied


@pytest.mark.parametrize("expression, words", [
    ("amount * 2", ["'amount'", "not a field of thing"]),
    ("titel ~ '!'", ["'titel'", "did you mean 'title'"]),
    ("record.nope", ["record.nope"]),
    ("parent.title", ["parent.title", "lookup"]),
    ("parent['title']", ["parent[...]", "lookup"]),
    ("double * 2", ["refers to itself"]),
])
def test_formulas_are_checked_at_apply(runtime, expression, words):
    issues = refused(runtime, thing(
        {"name": "parent", "type": "lookup", "target": "thing"},
        {"name": "double", "type": "formula", "expression": expression, "result_type": "text"},
    ))
    hits = [message for source, path, message in issues if source == "object/thing" and path == "/fields/2/expression"]
    assert hits and all(word in hits[0] for word in words), issues


def test_a_valid_formula_over_own_fields_applies_and_computes(runtime):
    apply_change(runtime, documents_bundle([thing(
        {"name": "qty", "type": "integer"},
        {"name": "label", "type": "formula", "expression": "title ~ ' x' ~ (record.qty or 0)", "result_type": "text"},
    )]))
    created = RecordService(runtime, Principal.system()).create("thing", {"title": "Box", "qty": 3})
    assert created["label"] == "Box x3"
