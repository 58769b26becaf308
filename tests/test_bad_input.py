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
