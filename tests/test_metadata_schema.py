"""The metadata JSON Schemas: what a document may say, and where an error is reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from metacrm.metadata.docs import render_reference
from metacrm.metadata.schema import KINDS, SchemaIssue, schema_for, validate_document

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
FIXTURES = TESTS / "fixtures"
SHIPPED = sorted(
    [
        *(REPO / "metacrm" / "metadata" / "system").rglob("*.json"),
        *(REPO / "metacrm" / "default_schemas").rglob("*.json"),
    ]
)

MINIMAL: dict[str, dict] = {
    "object": {"kind": "object", "name": "probe", "fields": [{"name": "title", "type": "text"}]},
    "layout": {
        "kind": "layout",
        "name": "probe_default",
        "object": "probe",
        "sections": [{"fields": ["title"]}],
    },
    "dedup_rule": {
        "kind": "dedup_rule",
        "name": "probe_same",
        "object": "probe",
        "match_any": [{"all": [{"field": "title", "method": "exact"}]}],
    },
    "pool": {"kind": "pool", "name": "probe_pool", "object": "probe"},
    "workflow_rule": {
        "kind": "workflow_rule",
        "name": "probe_rule",
        "object": "probe",
        "trigger": {"on": "create"},
        "actions": [{"action": "update_field", "field": "title", "value": "x"}],
    },
    "approval_process": {
        "kind": "approval_process",
        "name": "probe_approval",
        "object": "probe",
        "steps": [{"name": "boss", "approver": {"manager_of": "owner"}}],
    },
    "conversion": {
        "kind": "conversion",
        "name": "probe_convert",
        "object": "probe",
        "targets": [{"object": "other"}],
    },
    "role": {"kind": "role", "name": "probe_role"},
    "report": {"kind": "report", "name": "probe_report", "object": "probe"},
    "lead_scoring": {"kind": "lead_scoring", "name": "probe_score", "object": "probe", "score_field": "points"},
    "assignment_rule": {"kind": "assignment_rule", "name": "probe_routing", "object": "probe",
                        "entries": [{"assign_to": {"pool": "probe_pool"}}]},
    "app": {"kind": "app", "name": "probe_app", "objects": ["probe"]},
    "view": {"kind": "view", "name": "probe_view", "object": "probe"},
    "dashboard": {"kind": "dashboard", "name": "probe_dashboard", "widgets": [{"report": "probe_report"}]},
    "web_form": {"kind": "web_form", "name": "probe_form", "object": "probe", "fields": [{"field": "title"}]},
}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def paths(doc: object) -> list[str]:
    return [issue.path for issue in validate_document(doc)]


def with_(kind: str, **changes: object) -> dict:
    return {**json.loads(json.dumps(MINIMAL[kind])), **changes}


def fields(*specs: dict) -> dict:
    return with_("object", fields=[{"name": "title", "type": "text"}, *specs])


@pytest.mark.parametrize(
    "path",
    sorted(
        [*(FIXTURES / "brief_examples").glob("*.json"), *(FIXTURES / "acceptance_bundle").rglob("*.json")]
    ),
    ids=lambda path: path.name,
)
def test_brief_examples_and_acceptance_bundle_validate(path: Path) -> None:
    assert validate_document(load(path)) == []


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_documents_shipped_in_the_package_validate(path: Path) -> None:
    assert validate_document(load(path)) == []


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_has_a_minimal_valid_document(kind: str) -> None:
    assert validate_document(MINIMAL[kind]) == []


@pytest.mark.parametrize("kind", KINDS)
def test_schemas_are_valid_draft_2020_12_and_schema_for_returns_a_copy(kind: str) -> None:
    schema = schema_for(kind)
    Draft202012Validator.check_schema(schema)
    schema["properties"].clear()
    assert schema_for(kind)["properties"]


def test_schema_for_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError):
        schema_for("widget")


def test_bad_field_type_is_reported_exactly_at_the_type() -> None:
    doc = fields({"name": "size", "type": "strng", "label": "Size"})
    issues = validate_document(doc)
    assert [issue.path for issue in issues] == ["/fields/1/type"]
    assert "'strng' is not one of ['text', 'textarea'" in issues[0].message


def test_every_error_is_reported_sorted_by_path() -> None:
    specs = [{"name": f"f{i}", "type": "text"} for i in range(1, 11)]
    specs[1]["type"] = "strng"
    specs[9]["max_length"] = 0
    doc = {**fields(*specs), "colour": "red"}
    assert paths(doc) == ["/colour", "/fields/2/type", "/fields/10/max_length"]


@pytest.mark.parametrize("doc", [{"name": "x"}, {"kind": "widget", "name": "x"}, {"kind": 5, "name": "x"}])
def test_missing_or_unknown_kind_is_reported_at_kind(doc: dict) -> None:
    assert paths(doc) == ["/kind"]


def test_a_document_that_is_not_an_object_is_reported_at_the_root() -> None:
    assert validate_document([1, 2]) == [
        SchemaIssue("", "a metadata document is a JSON object, not an array")
    ]


@pytest.mark.parametrize("name", ["Lead", "1x", "a-b", "a" * 64, "", "_x", 7])
def test_bad_document_names_are_reported_at_name(name: object) -> None:
    assert paths(with_("role", name=name)) == ["/name"]


@pytest.mark.parametrize("name", ["a", "a" * 63, "acme__lead", "lead_2"])
def test_good_document_names(name: str) -> None:
    assert paths(with_("role", name=name)) == []


def test_missing_name_is_reported_at_name_even_without_a_kind() -> None:
    assert paths({"kind": "role"}) == ["/name"]
    assert paths({"kind": "nope", "name": "Bad"}) == ["/kind", "/name"]


def test_unknown_top_level_key_is_reported_at_the_key_with_a_suggestion() -> None:
    [issue] = validate_document(with_("object", lable="Lead"))
    assert issue.path == "/lable"
    assert "did you mean 'label'" in issue.message


@pytest.mark.parametrize(
    ("label", "path"),
    [
        ({"en": 5}, "/label/en"),
        ({"EN_us": "Lead"}, "/label/EN_us"),
        ({}, "/label"),
        ("", "/label"),
        (["Lead"], "/label"),
    ],
)
def test_bad_labels(label: object, path: str) -> None:
    assert paths(with_("role", label=label)) == [path]


@pytest.mark.parametrize("label", ["Lead", {"en": "Lead", "zh-CN": "线索"}])
def test_good_labels(label: object) -> None:
    assert paths(with_("role", label=label)) == []


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"type": "text", "max_length": 4001}, "/fields/1/max_length"),
        ({"type": "text", "precision": 5}, "/fields/1/precision"),
        ({"type": "decimal", "precision": 39}, "/fields/1/precision"),
        ({"type": "decimal", "precision": 5, "scale": 6}, "/fields/1/scale"),
        ({"type": "picklist", "options": []}, "/fields/1/options"),
        ({"type": "picklist", "options": [{"label": "No value"}]}, "/fields/1/options/0"),
        (
            {"type": "picklist", "options": [{"value": "won", "probability": 101}]},
            "/fields/1/options/0/probability",
        ),
        ({"type": "lookup", "target": "account", "on_delete": "orphan"}, "/fields/1/on_delete"),
        ({"type": "lookup", "target": []}, "/fields/1/target"),
        ({"type": "multipicklist"}, "/fields/1"),
        ({"type": "autonumber", "format": "Q-{YYYY}"}, "/fields/1/format"),
        (
            {"type": "formula", "expression": "a + b", "result_type": "text", "required": True},
            "/fields/1/required",
        ),
        ({"type": "rollup", "child_object": "line", "child_field": "quote", "function": "sum"}, "/fields/1"),
        ({"type": "autonumber", "format": "Q-{0000}", "unique": True}, "/fields/1/unique"),
        ({"type": "integer", "default": "0"}, "/fields/1/default"),
    ],
)
def test_bad_fields_are_reported_at_the_deepest_path(spec: dict, path: str) -> None:
    assert paths(fields({"name": "probe_field", **spec})) == [path]


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "autonumber", "format": "Q-{YYYY}-{0000}"},
        {"type": "formula", "expression": "amount * 2", "result_type": "currency", "scale": 2},
        {"type": "rollup", "child_object": "line", "child_field": "quote", "function": "count"},
        {
            "type": "rollup",
            "child_object": "line",
            "child_field": "quote",
            "function": "sum",
            "field": "amount",
            "filter": {"active": True},
        },
        {"type": "multipicklist", "options_from": "role"},
        {"type": "lookup", "target": ["account", "contact"], "on_delete": "cascade"},
        {"type": "password"},
        {
            "type": "picklist",
            "options": [
                {
                    "value": "won",
                    "probability": 100,
                    "forecast_category": "closed",
                    "is_won": True,
                    "colour_hint": "plugins may add attributes",
                }
            ],
        },
    ],
)
def test_good_fields(spec: dict) -> None:
    assert paths(fields({"name": "probe_field", **spec})) == []


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        (with_("role", objects={"lead": {"read": "everyone"}}), "/objects/lead/read"),
        (with_("role", objects={"lead": {"raed": "own"}}), "/objects/lead/raed"),
        (with_("role", objects={"Lead": {}}), "/objects/Lead"),
        (with_("role", fields={"lead": {"email": "visible"}}), "/fields/lead/email"),
        (
            with_("dedup_rule", match_any=[{"all": [{"field": "email", "method": "soundex"}]}]),
            "/match_any/0/all/0/method",
        ),
        (
            with_(
                "dedup_rule", match_any=[{"all": [{"field": "email", "method": "email", "threshold": 0.9}]}]
            ),
            "/match_any/0/all/0/threshold",
        ),
        (with_("dedup_rule", on_import="ignore"), "/on_import"),
        (with_("pool", assignment={"strategy": "random"}), "/assignment/strategy"),
        (with_("pool", claim={"overrides": [{"max_held": 3}]}), "/claim/overrides/0"),
        (with_("pool", recycle=[{"when": {"status": "new"}}]), "/recycle/0"),
        (with_("workflow_rule", trigger={"on": "sometimes"}), "/trigger/on"),
        (with_("workflow_rule", trigger={"on": "update", "after_days": 3}), "/trigger/after_days"),
        (with_("workflow_rule", actions=[{"action": "explode"}]), "/actions/0/action"),
        (
            with_("workflow_rule", actions=[{"action": "notify", "to": "owner", "template": "x", "cc": "y"}]),
            "/actions/0/cc",
        ),
        (with_("workflow_rule", actions=[{"action": "Acme__sms"}]), "/actions/0/action"),
        (with_("approval_process", steps=[{"name": "boss"}]), "/steps/0"),
        (with_("approval_process", steps=[{"name": "boss", "approver": {}}]), "/steps/0/approver"),
        (
            with_("approval_process", steps=[{"name": "boss", "approver": {"role": "vp", "user": "ann"}}]),
            "/steps/0/approver",
        ),
        (with_("approval_process", on_reject=[{"action": "update_field", "field": "x"}]), "/on_reject/0"),
        (with_("conversion", targets=[{"object": "account", "create": "sometimes"}]), "/targets/0/create"),
        (with_("layout", sections=[{"fields": ["title"], "columns": 5}]), "/sections/0/columns"),
        (with_("report", chart={"type": "donut"}), "/chart/type"),
        (with_("report", measures=[{"function": "sum"}]), "/measures/0"),
    ],
)
def test_bad_documents_per_kind(doc: dict, path: str) -> None:
    assert paths(doc) == [path]


@pytest.mark.parametrize(
    "doc",
    [
        fields(5),
        with_("workflow_rule", trigger="daily"),
        with_("workflow_rule", actions=["notify"]),
        with_("pool", claim={"overrides": ["ann"]}),
        with_("approval_process", steps=[{"name": "boss", "approver": "ann", "timeout": "soon"}]),
    ],
)
def test_a_non_object_where_an_object_belongs_is_one_issue_per_place(doc: dict) -> None:
    issues = validate_document(doc)
    assert all("is not of type 'object'" in issue.message for issue in issues)
    assert len({issue.path for issue in issues}) == len(issues)


def test_a_schedule_trigger_needs_a_field_and_one_offset() -> None:
    doc = with_("workflow_rule", trigger={"on": "schedule"})
    assert paths(doc) == ["/trigger", "/trigger"]
    doc = with_("workflow_rule", trigger={"on": "schedule", "field": "close_date", "before_days": 3})
    assert paths(doc) == []


def test_plugin_actions_take_free_params() -> None:
    actions = [{"action": "acme__send_sms", "params": {"to": "owner", "anything": [1, 2]}}]
    assert paths(with_("workflow_rule", actions=actions)) == []


@pytest.mark.parametrize(
    ("condition", "path"),
    [
        ({"status": {"inn": ["new"]}}, "/condition/status/inn"),
        ({"status": {"in": "new"}}, "/condition/status/in"),
        ({"amount": {"between": [1]}}, "/condition/amount/between"),
        ({"email": {"is_null": "yes"}}, "/condition/email/is_null"),
        ({"last_activity_at": {"older_than_days": -1}}, "/condition/last_activity_at/older_than_days"),
        ({"all": {"status": "new"}}, "/condition/all"),
        ({"any": [{"Status": "new"}]}, "/condition/any/0/Status"),
        ({"not": {"status": {}}}, "/condition/not/status"),
        ({"status": ["new", "working"]}, "/condition/status"),
    ],
)
def test_bad_filters_are_reported_inside_the_filter(condition: dict, path: str) -> None:
    assert paths(with_("workflow_rule", condition=condition)) == [path]


def test_the_filter_grammar_example_from_the_brief_validates() -> None:
    condition = {
        "all": [
            {"status": {"in": ["new", "working"]}},
            {"product_line": "hardware"},
            {"any": [{"score": {"gte": 80}}, {"region": "east"}]},
            {"not": {"email": {"is_null": True}}},
            {"last_activity_at": {"older_than_days": 3}},
            {
                "stage": {"changed": True},
                "owner": "$user",
                "created_at": {"within_last_days": 7, "lt": "$now"},
            },
        ]
    }
    assert paths(with_("workflow_rule", condition=condition)) == []


def test_issue_reads_as_path_and_message() -> None:
    assert str(SchemaIssue("/fields/1/type", "bad")) == "/fields/1/type: bad"


def test_docs_metadata_md_is_up_to_date() -> None:
    committed = (REPO / "docs" / "metadata.md").read_text(encoding="utf-8")
    assert committed == render_reference(), "stale: run python -m metacrm.metadata.docs > docs/metadata.md"


def test_reference_covers_every_kind_field_type_and_operator() -> None:
    text = render_reference()
    for heading in [*KINDS, "text", "rollup", "password", "notify", "update_field"]:
        assert f"### `{heading}`" in text
    for operator in ("older_than_days", "within_last_days", "changed", "between", "startswith"):
        assert f"| `{operator}` |" in text
    assert render_reference() == text
