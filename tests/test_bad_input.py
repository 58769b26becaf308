"""Bad input is a precise 4xx and changes nothing, never a 500 (both databases): money filters
beyond the field's digits, deeply nested filters, crafted list cursors, CSV headers of 100,000
columns, objects with thousands of fields, deeply nested metadata JSON, CR/LF in ?next=."""

from __future__ import annotations

import base64
import json

from click.testing import CliRunner

from metacrm.platform.cli import main
from metacrm.platform.filters.parse import MAX_DEPTH
from metacrm.platform.web.core import safe_next


def _list(client, headers, **params):
    return client.get("/api/v1/records/account", query_string=params, headers=headers)


def test_money_filters_beyond_the_fields_digits_are_400(client, admin_headers):
    for value in ("100000000000000000", 1e17, "1e30", ["0", "1e20"]):
        op = "between" if isinstance(value, list) else "gt"
        response = _list(client, admin_headers, filter=json.dumps({"credit_limit": {op: value}}))
        assert response.status_code == 400, (value, response.get_json())
        assert response.get_json()["error"]["code"] == "bad_filter"
    ok = _list(client, admin_headers, filter=json.dumps({"credit_limit": {"gt": "9999999999999999.99"}}))
    assert ok.status_code == 200


def test_filters_nested_beyond_the_limit_are_400_with_the_path(client, admin_headers):
    inside = {"name": "x"}
    for _ in range(MAX_DEPTH - 1):
        inside = {"all": [inside]}
    assert _list(client, admin_headers, filter=json.dumps(inside)).status_code == 200
    deeper = {"not": inside}
    for _ in range(5):
        deeper = {"any": [deeper]}
    response = _list(client, admin_headers, filter=json.dumps(deeper))
    assert response.status_code == 400 and f"more than {MAX_DEPTH} levels" in response.get_json()["error"]["message"]
    very_deep = '{"any": [' * 5000 + '{"name": "x"}' + "]}" * 5000
    assert _list(client, admin_headers, filter=very_deep).status_code == 400


def _cursor(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def test_crafted_cursors_are_400_bad_cursor(client, admin_headers):
    client.post("/api/v1/records/account", json={"name": "Cursor Co", "credit_limit": "10.00"}, headers=admin_headers)
    crafted = ["abc", _cursor({"x": 1}), _cursor([]), _cursor(["1e30", "x"]), _cursor(["NaN", "x"]),
               _cursor(["abc", "x"]), _cursor([{"a": 1}, "x"]), _cursor(["1.00", {"a": 1}]),
               _cursor(["1.00", 2**70]), "%%%", _cursor(["1.001", "x"])]
    for cursor in crafted:
        response = _list(client, admin_headers, sort="credit_limit,id", cursor=cursor)
        assert response.status_code == 400, (cursor, response.get_json())
        assert response.get_json()["error"]["code"] == "bad_cursor"
    for cursor in (_cursor([2**70, "x"]), _cursor([True, "x"])):
        response = _list(client, admin_headers, sort="employees,id", cursor=cursor)
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "bad_cursor"
    first = _list(client, admin_headers, sort="credit_limit,id", limit=1).get_json()
    if first["next_cursor"]:
        assert _list(client, admin_headers, sort="credit_limit,id", cursor=first["next_cursor"]).status_code == 200


def test_a_csv_header_of_100000_columns_is_refused_at_once(client, admin_headers):
    header = ",".join(f"c{i}" for i in range(100_000))
    response = client.post("/api/v1/records/account/import", data=f"{header}\nx\n".encode(),
                           headers={**admin_headers, "Content-Type": "text/csv"})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "too_many_columns"
    rows = json.dumps([{f"c{i}": "x" for i in range(2000)}])
    response = client.post("/api/v1/records/account/import", data=rows,
                           headers={**admin_headers, "Content-Type": "application/json"})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "too_many_columns"
    # Duplicate columns are still found (and named) among many.
    header = ",".join(["name", *(f"c{i}" for i in range(900)), "c5"])
    response = client.post("/api/v1/records/account/import?dry_run=1", data=f"{header}\nx\n".encode(),
                           headers={**admin_headers, "Content-Type": "text/csv"})
    assert response.status_code == 400 and "c5" in response.get_json()["error"]["fields"]


def test_an_object_with_thousands_of_fields_is_refused_with_the_stated_limit(client, admin_headers):
    wide = {"kind": "object", "name": "wide", "label": "Wide", "name_field": "f0",
            "fields": [{"name": f"f{i}", "type": "text"} for i in range(3000)]}
    response = client.put("/api/v1/meta/object/wide", json=wide, headers=admin_headers)
    assert response.status_code == 400
    issues = response.get_json()["error"]["issues"]
    assert any(i["path"] == "/fields" and "at most 500 fields" in i["message"] for i in issues), issues
    assert client.get("/api/v1/meta/object/wide", headers=admin_headers).status_code == 404


def test_deeply_nested_metadata_json_is_an_issue_not_a_crash(tmp_path, client, admin_headers):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    result = CliRunner().invoke(main, ["metadata", "validate", str(path)])
    assert result.exit_code == 1 and "nested more than" in result.output, result.output
    nested: object = "x"
    for _ in range(200):
        nested = [nested]
    doc = {"kind": "object", "name": "deep", "label": "Deep", "fields": [{"name": "a", "type": "text", "default": nested}]}
    path.write_text(json.dumps(doc))
    result = CliRunner().invoke(main, ["metadata", "validate", str(path)])
    assert result.exit_code == 1 and "nested more than" in result.output, result.output
    response = client.put("/api/v1/meta/object/deep", json=doc, headers=admin_headers)
    assert response.status_code == 400 and "nested more than" in response.get_json()["error"]["message"]


def test_next_with_control_characters_goes_home():
    for target in ("/\r\nSet-Cookie: x=1", "/records\n", "/\t/evil.example", "/x\x00", "/" + "a" * 5000):
        assert safe_next(target, "/") == "/"
    assert safe_next("/records/lead?x=1", "/") == "/records/lead?x=1"


def test_login_redirect_never_carries_crlf(client):
    client.get("/login")
    with client.session_transaction() as session:
        csrf = session["csrf"]
    from tests.conftest import ADMIN_PASSWORD

    response = client.post("/login?next=/records%0d%0aX-Injected:%201", data={
        "username": "admin", "password": ADMIN_PASSWORD, "_csrf": csrf})
    assert response.status_code == 303
    assert "\r" not in response.headers["Location"] and "\n" not in response.headers["Location"]
    assert "X-Injected" not in response.headers


# --- sums that overflow: the right figure, or a 422 naming the field ---------------------------

INT64_MAX = 2**63 - 1
MONEY_MAX = "9999999999999999.99"  # currency(18, 2): SQLite stores 999999999999999999, near 2^63 / 9
BIG = [
    {"kind": "object", "name": "ov_parent", "label": {"en": "Big", "zh-CN": "大数"}, "name_field": "name",
     "fields": [
         {"name": "name", "type": "text"},
         {"name": "n", "type": "integer"},
         {"name": "amount", "type": "currency", "precision": 18, "scale": 2},
         {"name": "wide", "type": "decimal", "precision": 38, "scale": 2},
         {"name": "quadruple", "type": "formula", "expression": "n * 4 if n else 0", "result_type": "integer"},
         {"name": "total", "type": "rollup", "child_object": "ov_child", "child_field": "parent",
          "function": "sum", "field": "price"},
         {"name": "gross", "type": "formula", "expression": "total * 10 if total else 0",
          "result_type": "currency", "scale": 2},
     ]},
    {"kind": "object", "name": "ov_child", "label": {"en": "Line", "zh-CN": "行"}, "name_field": "name",
     "fields": [
         {"name": "name", "type": "text"},
         {"name": "parent", "type": "lookup", "target": "ov_parent"},
         {"name": "price", "type": "currency", "precision": 18, "scale": 2},
     ]},
    {"kind": "report", "name": "ov_sums", "object": "ov_parent", "group_by": ["name"],
     "measures": [{"function": "sum", "field": "n", "name": "n"}, {"function": "sum", "field": "amount",
                                                                  "name": "amount"}]},
]


def _big(runtime):
    from metacrm.metadata.bundle import documents_bundle
    from metacrm.platform.apply import apply_change

    apply_change(runtime, documents_bundle(BIG))
    runtime.compiled(force=True)


def _count(client, headers, object_name: str) -> int:
    return client.post(f"/api/v1/aggregate/{object_name}", json={}, headers=headers).get_json()["totals"]["count"]


def test_sums_past_64_bits_are_the_exact_figure_in_aggregates_reports_and_widgets(runtime, client, admin_headers):
    from metacrm.platform.records import RecordService
    from metacrm.platform.security import Principal
    from metacrm.platform.web.dashboard import aggregate as widget_aggregate

    _big(runtime)
    n = INT64_MAX // 4  # its formula (n * 4) still fits
    # SQLite keeps decimals as 64-bit scaled integers: a decimal(38, 2) holds 18 digits there (400
    # beyond, never a 500); PostgreSQL holds all 36
    wide = "9" * 36 if runtime.engine.dialect.name == "postgresql" else "9" * 16
    if runtime.engine.dialect.name == "sqlite":
        refused = client.post("/api/v1/records/ov_parent", json={"name": "W", "wide": "9" * 17},
                              headers=admin_headers)
        assert refused.status_code == 400 and "wide" in refused.get_json()["error"]["fields"]
    rows = [{"name": "X", "n": n, "amount": MONEY_MAX, "wide": wide} for _ in range(12)]
    system = RecordService(runtime, Principal.system())
    created = system.create_many("ov_parent", rows)
    assert all(r["status"] == "created" for r in created), created[:1]
    body = {"measures": [{"function": "sum", "field": "n"}, {"function": "avg", "field": "n"},
                         {"function": "sum", "field": "amount"}, {"function": "avg", "field": "amount"},
                         {"function": "sum", "field": "wide"}, {"function": "max", "field": "wide"}]}
    expected = {"count": None, "sum_n": 12 * n, "avg_n": f"{n}.00",
                "sum_amount": "119999999999999999.88", "avg_amount": MONEY_MAX,
                "sum_wide": str(12 * int(wide)) + ".00", "max_wide": wide + ".00"}
    expected.pop("count")
    for extra in ({}, {"group_by": ["name"]}):
        answer = client.post("/api/v1/aggregate/ov_parent", json={**body, **extra}, headers=admin_headers)
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["totals"] == expected
        if extra:
            row = answer.get_json()["rows"][0]
            assert {k: row[k] for k in expected} == expected
    report = client.get("/api/v1/reports/ov_sums", headers=admin_headers)
    assert report.status_code == 200, report.get_json()
    assert report.get_json()["totals"] == {"n": 12 * n, "amount": "119999999999999999.88"}
    widget = widget_aggregate(RecordService(runtime, Principal.system()), "ov_parent", ["name"], measure="amount")
    assert [(w["name"], str(w["value"])) for w in widget] == [("X", "119999999999999999.88")]
    negative = system.create_many("ov_parent", [{"name": "Y", "n": -n - 1} for _ in range(40)])
    assert all(r["status"] == "created" for r in negative)
    answer = client.post("/api/v1/aggregate/ov_parent", json={"group_by": ["name"], "measures": [
        {"function": "sum", "field": "n"}]}, headers=admin_headers).get_json()
    assert {r["name"]: r["sum_n"] for r in answer["rows"]} == {"X": 12 * n, "Y": 40 * (-n - 1)}
    assert answer["totals"]["sum_n"] == 12 * n + 40 * (-n - 1)


def test_a_rollup_sum_that_no_longer_fits_refuses_the_child_save(runtime, client, admin_headers):
    _big(runtime)
    parent = client.post("/api/v1/records/ov_parent", json={"name": "P"}, headers=admin_headers).get_json()
    url = "/api/v1/records/ov_child"
    first = client.post(url, json={"name": "a", "parent": parent["id"], "price": "999999999999999.99"},
                        headers=admin_headers)
    assert first.status_code == 201, first.get_json()
    # total 1e15 fits currency(18, 2), but gross = total * 10 would have 17 digits before the point
    refused = client.post(url, json={"name": "b", "parent": parent["id"], "price": "0.01"}, headers=admin_headers)
    assert refused.status_code == 422, refused.get_json()
    error = refused.get_json()["error"]
    assert error["code"] == "value_out_of_range" and list(error["fields"]) == ["price"]
    assert (error["object"], error["field"]) == ("ov_parent", "gross")
    assert _count(client, admin_headers, "ov_child") == 1
    # a sum past the rollup's own digits (and on SQLite past 2^63 in scaled integers)
    other = client.post("/api/v1/records/ov_parent", json={"name": "Q"}, headers=admin_headers).get_json()
    created = 0
    for i in range(12):
        answer = client.post(url, json={"name": f"c{i}", "parent": other["id"], "price": MONEY_MAX},
                             headers=admin_headers)
        if answer.status_code != 201:
            break
        created += 1
    assert created == 0 or created == 1
    assert answer.status_code == 422 and answer.get_json()["error"]["code"] == "value_out_of_range"
    assert answer.get_json()["error"]["field"] in ("total", "gross")
    # an import: only the row that would overflow the parent's rollup fails, with its row number
    third = client.post("/api/v1/records/ov_parent", json={"name": "R"}, headers=admin_headers).get_json()
    csv = f"name,parent,price\nx,{third['id']},1.00\ny,{third['id']},{MONEY_MAX}\nz,{third['id']},2.00\n"
    report = client.post(f"{url}/import", data=csv, content_type="text/csv", headers=admin_headers).get_json()
    assert [(r["row"], r["status"]) for r in report["rows"]] == [(1, "created"), (2, "error"), (3, "created")]
    assert report["rows"][1]["code"] == "value_out_of_range" and "price" in report["rows"][1]["fields"]
    total = client.get(f"/api/v1/records/ov_parent/{third['id']}", headers=admin_headers).get_json()["total"]
    assert total == "3.00"
    back = client.get(f"/api/v1/records/ov_parent/{other['id']}", headers=admin_headers).get_json()
    assert back["version"] == other["version"] + created
    before = client.get(f"/api/v1/records/ov_child/{first.get_json()['id']}", headers=admin_headers).get_json()
    raised = client.patch(f"/api/v1/records/ov_child/{before['id']}", json={"price": MONEY_MAX},
                          headers={**admin_headers, "If-Match": str(before["version"])})
    assert raised.status_code == 422 and raised.get_json()["error"]["fields"].keys() == {"price"}
    after = client.get(f"/api/v1/records/ov_child/{before['id']}", headers=admin_headers).get_json()
    assert after == before


def test_a_formula_whose_result_does_not_fit_is_422_naming_it(runtime, client, admin_headers):
    _big(runtime)
    url = "/api/v1/records/ov_parent"
    refused = client.post(url, json={"name": "F", "n": 2**62}, headers=admin_headers)
    assert refused.status_code == 422, refused.get_json()
    error = refused.get_json()["error"]
    assert error["code"] == "value_out_of_range" and list(error["fields"]) == ["quadruple"], error
    assert _count(client, admin_headers, "ov_parent") == 0
    fine = client.post(url, json={"name": "F", "n": 2**60}, headers=admin_headers)
    assert fine.status_code == 201 and fine.get_json()["quadruple"] == 2**62
    edit = client.patch(f"{url}/{fine.get_json()['id']}", json={"n": INT64_MAX},
                        headers={**admin_headers, "If-Match": "1"})
    assert edit.status_code == 422, edit.get_json()
    assert edit.get_json()["error"]["fields"].keys() == {"quadruple"}
    assert client.get(f"{url}/{fine.get_json()['id']}", headers=admin_headers).get_json()["n"] == 2**60
    report = client.post("/api/v1/records/ov_parent/import", data=f"name,n\nok,1\nbad,{2**62}\n",
                         content_type="text/csv", headers=admin_headers).get_json()
    assert [(r["row"], r["status"]) for r in report["rows"]] == [(1, "created"), (2, "error")]
    assert report["rows"][1]["code"] == "value_out_of_range" and "quadruple" in report["rows"][1]["fields"]


def test_a_total_no_query_can_add_up_is_a_422_on_any_path(client, admin_headers, monkeypatch):
    """Any query whose SUM overflows (SQLite past 2^63) and that has no exact fallback of its own —
    e.g. a plugin's report — answers 422 value_out_of_range, on the API and on a page, never a 500."""
    import sqlalchemy as sa

    from metacrm.platform.records import RecordService

    def overflowing(*args, **kwargs):
        raise sa.exc.OperationalError("SELECT sum(amount)", {}, Exception("integer overflow"))

    monkeypatch.setattr(RecordService, "list", overflowing)
    response = client.get("/api/v1/records/lead", headers=admin_headers)
    assert response.status_code == 422, response.text
    assert response.get_json()["error"]["code"] == "value_out_of_range"
