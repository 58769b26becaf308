"""The REST import's .xlsx files, UTF-16 and forced encodings, column mappings and lookups by
name or unique key, and the export as .xlsx (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import json
from datetime import date, datetime

from openpyxl import Workbook, load_workbook

from metacrm.platform.imports import parse
from metacrm.platform.imports.xlsx import cell_text
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.conftest import make_user

URL = "/api/v1/records/contact/import"


def workbook(rows: list[list]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_xlsx_cells_read_as_the_csv_importer_reads_text():
    assert cell_text(3.0) == "3" and cell_text(2.5) == "2.5" and cell_text(True) == "true"
    assert cell_text(datetime(2025, 3, 1)) == "2025-03-01" and cell_text(date(2025, 3, 2)) == "2025-03-02"
    parsed = parse(workbook([[None], ["name", "title", None], ["A", None], [None, None], ["B", "CTO"]]))
    assert parsed.format == "xlsx" and parsed.columns == ["name", "title"]
    assert parsed.rows == [(1, {"name": "A"}), (2, {"name": "B", "title": "CTO"})]


def test_utf16_and_a_forced_encoding(runtime, client, admin_headers):
    parsed = parse("name,title\n王五,经理\n".encode("utf-16"))
    assert parsed.encoding == "utf-16" and parsed.rows[0][1] == {"name": "王五", "title": "经理"}
    answer = client.post(URL + "?encoding=latin-1&dry_run=1", data="name\nJos\xe9\n".encode("latin-1"),
                         headers={**admin_headers, "Content-Type": "text/csv"})
    assert answer.status_code == 200 and answer.get_json()["summary"]["created"] == 1
    bad = client.post(URL + "?encoding=ebcdic", data=b"name\nx\n", headers={**admin_headers, "Content-Type": "text/csv"})
    assert bad.status_code == 400 and bad.get_json()["error"]["fields"] == {"encoding": ["Not a supported encoding."]}
    wrong = client.post(URL + "?encoding=utf-8", data="name\n张\n".encode("gbk"),
                        headers={**admin_headers, "Content-Type": "text/csv"})
    assert wrong.status_code == 400 and wrong.get_json()["error"]["code"] == "bad_encoding"


def test_xlsx_upload_with_mapping_and_lookup_by_name(runtime, client, admin_headers):
    system = RecordService(runtime, Principal.system())
    acme = system.create("account", {"name": "Acme API"})
    system.create("account", {"name": "Twin"})
    twin = system.create("account", {"name": "Twin two"})
    table = system.table("account")
    with runtime.transaction() as tx:  # two accounts of one name (the duplicate rule would refuse it)
        tx.conn.execute(table.update().where(table.c.id == twin["id"]).values(name="Twin"))
    data = workbook([["姓名", "公司", "备注"], ["Ann", "Acme API", "x"], ["Bob", "Twin", "y"], ["Cy", "Nobody", "z"]])
    mapping = json.dumps({"姓名": "name", "公司": "account", "备注": ""})
    answer = client.post(f"{URL}?mapping={mapping}&lookup=account:name",
                         data={"file": (io.BytesIO(data), "c.xlsx")}, headers=admin_headers,
                         content_type="multipart/form-data")
    assert answer.status_code == 200, answer.get_json()
    rows = answer.get_json()["rows"]
    assert rows[0]["status"] == "created"
    assert system.get("contact", rows[0]["id"])["account"] == acme["id"]
    assert rows[1]["status"] == "error" and "Several records" in rows[1]["fields"]["account"][0]
    assert rows[2]["status"] == "error" and "No record you can see" in rows[2]["fields"]["account"][0]
    refused = client.post(f"{URL}?lookup=account:industry", data=b"name,account\nA,B\n",
                          headers={**admin_headers, "Content-Type": "text/csv"})
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "bad_lookup"
    twice = client.post(URL + "?mapping=" + json.dumps({"a": "name", "b": "name"}), data=b"a,b\n1,2\n",
                        headers={**admin_headers, "Content-Type": "text/csv"})
    assert twice.status_code == 400 and "mapping.b" in twice.get_json()["error"]["fields"]


def test_lookup_by_name_only_matches_records_the_caller_may_read(runtime, client):
    system = RecordService(runtime, Principal.system())
    rep = make_user(runtime, client, "rhea", ["sales_rep"])
    other = make_user(runtime, client, "omar", ["sales_rep"])
    system.create("account", {"name": "Hidden Co", "owner": other.id})
    mine = system.create("account", {"name": "Mine Co", "owner": rep.id})
    answer = client.post(URL + "?lookup=account:name", data=b"name,account\nP,Hidden Co\nQ,Mine Co\n",
                         headers={**rep.headers, "Content-Type": "text/csv"})
    rows = answer.get_json()["rows"]
    assert rows[0]["status"] == "error" and "No record you can see" in rows[0]["fields"]["account"][0]
    assert rows[1]["status"] == "created" and system.get("contact", rows[1]["id"])["account"] == mine["id"]


def test_owner_by_username(runtime, client, admin_headers):
    system = RecordService(runtime, Principal.system())
    rep = make_user(runtime, client, "ursula", ["sales_rep"])
    answer = client.post(URL + "?lookup=owner:username", data=b"name,owner\nOwned,ursula\n",
                         headers={**admin_headers, "Content-Type": "text/csv"})
    row = answer.get_json()["rows"][0]
    assert row["status"] == "created" and system.get("contact", row["id"])["owner"] == rep.id


def test_export_as_xlsx_keeps_scope_and_columns(runtime, client, admin_headers):
    system = RecordService(runtime, Principal.system())
    system.create("account", {"name": "@SUM(1)", "employees": 12, "annual_revenue": "1234.50"})
    answer = client.get("/api/v1/records/account/export?format=xlsx&fields=name,employees,annual_revenue",
                        headers=admin_headers)
    assert answer.status_code == 200 and "spreadsheetml" in answer.headers["Content-Type"]
    rows = [list(r) for r in load_workbook(io.BytesIO(answer.data), read_only=True).worksheets[0].iter_rows(
        values_only=True)]
    assert rows[0] == ["name", "employees", "annual_revenue"]
    assert ["'@SUM(1)", 12, 1234.5] in rows
    bad = client.get("/api/v1/records/account/export?format=ods", headers=admin_headers)
    assert bad.status_code == 400 and bad.get_json()["error"]["fields"] == {"format": ["Not csv or xlsx."]}
    finance = make_user(runtime, client, "fin", ["finance"])
    assert client.get("/api/v1/records/lead/export?format=xlsx", headers=finance.headers).status_code == 404
