"""Bulk import: the per-row report, duplicates (set-based, one query per batch and rule
group), CSV encodings and dialects, bad files, dry runs, upserts, background jobs, the CLI."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from metacrm.platform import imports as importer
from metacrm.platform.errors import BadRequest
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.test_dedup import apply, clean_slate, crm_runtime, fast_hash

OBJECTS = [
    {"kind": "object", "name": "im_campaign", "name_field": "name", "fields": [{"name": "name", "type": "text"}]},
    {"kind": "object", "name": "im_company", "name_field": "name", "track_history": ["name"], "fields": [
        {"name": "name", "type": "text", "required": True, "max_length": 200},
        {"name": "email", "type": "email"},
        {"name": "code", "type": "text", "max_length": 32, "indexed": True},
        {"name": "source", "type": "picklist", "options": ["web", "event", "referral"]},
        {"name": "campaign", "type": "lookup", "target": "im_campaign"},
        {"name": "employees", "type": "integer", "min": 0},
    ]},
]
RULE = {
    "kind": "dedup_rule", "name": "im_same", "object": "im_company",
    "match_any": [{"all": [{"field": "name", "method": "company_name"}]},
                  {"all": [{"field": "email", "method": "email"}]}],
    "on_create": "block", "on_import": "report",
}
URL = "/api/v1/records/im_company/import"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def runtime(request, tmp_path_factory):
    yield from crm_runtime(request.param, tmp_path_factory, OBJECTS)


@pytest.fixture(autouse=True)
def fresh(runtime, monkeypatch):
    monkeypatch.setattr("metacrm.platform.security.hash_password", fast_hash)
    monkeypatch.setattr("metacrm.platform.records.hash_password", fast_hash)
    clean_slate(runtime, ["im_company", "im_campaign"])
    apply(runtime, RULE)


def system(runtime) -> RecordService:
    return RecordService(runtime, Principal.system(), source="test")


def names(runtime) -> list[str]:
    table = runtime.compiled().tables["im_company"]
    with runtime.engine.connect() as conn:
        return sorted(conn.execute(sa.select(table.c.name).where(table.c.deleted_at.is_(None))).scalars())


def test_report_has_a_row_for_every_input_row_and_a_rerun_creates_nothing(runtime, client, admin_headers):
    existing = system(runtime).create("im_company", {"name": "Existing Holding Inc."})
    campaign = system(runtime).create("im_campaign", {"name": "Spring fair"})
    rows = [
        {"name": "Alpha Ltd", "source": "event", "campaign": campaign["id"]},
        {"name": "Beta", "email": "not-an-email"},
        {"name": "EXISTING HOLDING"},
        {"name": "Gamma", "employees": 40},
        {"name": "alpha limited"},
    ]
    answer = client.post(URL, json=rows, headers=admin_headers)
    assert answer.status_code == 200, answer.get_json()
    report = answer.get_json()
    assert report["summary"] == {"created": 2, "updated": 0, "duplicate": 2, "error": 1, "total": 5,
                                 "dry_run": False}
    by_row = {entry["row"]: entry for entry in report["rows"]}
    assert [by_row[n]["status"] for n in range(1, 6)] == ["created", "error", "duplicate", "created", "duplicate"]
    assert list(by_row[2]["fields"]) == ["email"]
    assert by_row[3]["duplicates"] == [{"object": "im_company", "id": existing["id"], "rule": "im_same"}]
    assert by_row[5]["duplicates"] == [{"object": "im_company", "id": by_row[1]["id"], "rule": "im_same", "row": 1}]
    alpha = system(runtime).get("im_company", by_row[1]["id"])
    assert (alpha["source"], alpha["campaign"]) == ("event", campaign["id"])
    assert names(runtime) == ["Alpha Ltd", "Existing Holding Inc.", "Gamma"]
    again = client.post(URL, json=rows, headers=admin_headers).get_json()
    assert again["summary"]["created"] == 0 and again["summary"]["duplicate"] == 4
    assert names(runtime) == ["Alpha Ltd", "Existing Holding Inc.", "Gamma"]


def import_counting(runtime, rows: list[dict], wanted) -> tuple[dict, list[str]]:
    """Import `rows` in batches of 10, collecting the SELECT statements `wanted(sql)` picks."""
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if wanted(statement) and statement.lstrip().upper().startswith(("SELECT", "(SELECT")):
            statements.append(statement)

    sa.event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        report = importer.run_import(runtime, Principal.system(), "im_company", rows, batch_size=10)
    finally:
        sa.event.remove(runtime.engine, "before_cursor_execute", count)
    return report, statements


def test_duplicate_check_is_one_query_per_batch_and_rule_group(runtime):
    system(runtime).create("im_company", {"name": "Warm Up"})  # keys any old rows first
    rows = [{"name": f"Company {n}", "email": f"c{n}@example.com"} for n in range(30)]
    rows[25] = {"name": "WARM UP Ltd"}
    report, statements = import_counting(runtime, rows, lambda sql: "dk_" in sql)
    assert report["summary"]["created"] == 29 and report["summary"]["duplicate"] == 1
    assert len(statements) == 3 * 2  # three batches, two rule groups; none per row


def test_lookups_of_a_batch_are_checked_with_one_query_per_target(runtime):
    campaigns = [system(runtime).create("im_campaign", {"name": f"C{n}"})["id"] for n in range(3)]
    gone = system(runtime).create("im_campaign", {"name": "Deleted"})["id"]
    system(runtime).delete("im_campaign", gone)
    rows = [{"name": f"Lookup {n}", "campaign": campaigns[n % 3]} for n in range(20)]
    rows[4]["campaign"] = "no-such-campaign"
    rows[9]["campaign"] = gone
    report, statements = import_counting(runtime, rows, lambda sql: "rec_im_campaign" in sql)
    by_row = {entry["row"]: entry for entry in report["rows"]}
    assert report["summary"]["created"] == 18, report
    assert by_row[5]["fields"] == {"campaign": ["No such record."]}
    assert by_row[10]["fields"] == {"campaign": ["No such record."]}
    assert len(statements) == 2  # one per batch, not one per row


def test_warn_rule_on_import_saves_the_row_and_reports_its_matches(runtime):
    apply(runtime, dict(RULE, on_import="warn"))
    existing = system(runtime).create("im_company", {"name": "Warned Holding Inc."}, dedup=False)
    report = importer.run_import(runtime, Principal.system(), "im_company",
                                 [{"name": "WARNED HOLDING"}, {"name": "Fresh Co"}])
    first, second = report["rows"]
    assert first["status"] == "created" and second["status"] == "created"
    assert first["duplicates"] == [{"object": "im_company", "id": existing["id"], "rule": "im_same"}]
    assert "duplicates" not in second and len(names(runtime)) == 3

def test_gbk_and_bom_csv_with_sniffed_dialects(runtime, client, admin_headers):
    gbk = "name;email;employees\n仁科互动（北京）有限公司;info@renke.example;12\n北京仁科互动有限公司;;\n".encode("gbk")
    report = client.post(URL, data=gbk, content_type="text/csv", headers=admin_headers).get_json()
    assert [row["status"] for row in report["rows"]] == ["created", "duplicate"]
    bom = "\ufeffname,email\r\n\"Delta, Inc.\",d@delta.example\r\n\r\nEpsilon,\r\n".encode()
    report = importer.run_import(runtime, Principal.system(), "im_company", bom)
    assert [(row["row"], row["status"]) for row in report["rows"]] == [(1, "created"), (2, "created")]
    assert names(runtime) == ["Delta, Inc.", "Epsilon", "仁科互动（北京）有限公司"]


def test_bad_files_are_refused_whole(runtime, client, admin_headers):
    cases = [
        (b"name,colour\nAcme,red\n", "unknown_columns"),
        (b"name,created_at\nAcme,2024-01-01\n", "unknown_columns"),
        (b'[{"name": "Acme"}, {"nmae": "typo"}]', "unknown_columns"),
        (b'[{"name": "Acme"},', "bad_file"),
        (b"name\n\xff\xfe\xfa bad bytes\n", "bad_encoding"),
        (b"name,email\n\"Acme,unterminated\n", "bad_file"),
    ]
    for body, code in cases:
        kind = "application/json" if body.startswith(b"[") else "text/csv"
        answer = client.post(URL, data=body, content_type=kind, headers=admin_headers)
        assert answer.status_code == 400, body
        assert answer.get_json()["error"]["code"] == code, (body, answer.get_json())
    error = client.post(URL, data=cases[0][0], content_type="text/csv", headers=admin_headers).get_json()["error"]
    assert "colour" in error["message"] and list(error["fields"]) == ["colour"]
    assert names(runtime) == []
    with pytest.raises(BadRequest):
        importer.run_import(runtime, Principal.system(), "im_company", [{"name": "A"}], key="nope")


def test_dry_run_reports_and_writes_nothing(runtime, client, admin_headers):
    rows = [{"name": "Zeta"}, {"name": "ZETA Ltd"}, {"name": "Eta", "employees": -1}]
    report = client.post(URL + "?dry_run=1", json=rows, headers=admin_headers).get_json()
    assert [row["status"] for row in report["rows"]] == ["created", "duplicate", "error"]
    assert report["summary"]["dry_run"] is True
    assert "id" not in report["rows"][0] and report["rows"][1]["duplicates"][0]["row"] == 1
    assert names(runtime) == []


def test_upsert_by_key_updates_and_creates(runtime):
    first = system(runtime).create("im_company", {"name": "Theta", "code": "T-1", "employees": 5})
    csv_text = "code,name,employees\nT-1,Theta,50\nI-2,Iota,7\nT-1,Theta again,9\n"
    report = importer.run_import(runtime, Principal.system(), "im_company", csv_text.encode(), key="code")
    assert [(row["status"], row.get("id")) for row in report["rows"][:1]] == [("updated", first["id"])]
    assert report["rows"][1]["status"] == "created"
    assert report["rows"][2]["status"] == "error" and report["rows"][2]["code"] == "duplicate_key"
    assert system(runtime).get("im_company", first["id"])["employees"] == 50
    rerun = "code,name,employees\nT-1,Theta,51\nI-2,Iota,8\n"
    again = importer.run_import(runtime, Principal.system(), "im_company", rerun.encode(), key="code")
    assert [row["status"] for row in again["rows"]] == ["updated", "updated"]
    assert names(runtime) == ["Iota", "Theta"]


def test_background_import_reports_progress_and_the_result(runtime, client, admin_headers):
    rows = [{"name": f"Background {n}"} for n in range(25)]
    answer = client.post(URL + "?async=1&batch_size=10", json=rows, headers=admin_headers)
    assert answer.status_code == 202
    job_id = answer.get_json()["job"]
    importer.wait_for(job_id, timeout=30)
    for _ in range(50):
        job = client.get(f"/api/v1/jobs/{job_id}", headers=admin_headers).get_json()
        if job["status"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert job["status"] == "done", job
    assert job["progress"] == {"done": 25, "total": 25, "percent": 100.0, "errors": 0, "duplicates": 0}
    assert job["summary"]["created"] == 25 and len(job["rows"]) == 25
    assert client.get("/api/v1/jobs/unknown", headers=admin_headers).status_code == 404


def test_cli_imports_with_a_progress_bar(runtime, tmp_path):
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("the CLI builds its own runtime from METACRM_DATABASE_URL (a SQLite file here)")
    from metacrm.platform.cli import main

    path = tmp_path / "companies.csv"
    path.write_text("name,email\nKappa,k@kappa.example\nLambda,bad\n", encoding="utf-8")
    env = {"METACRM_DATABASE_URL": str(runtime.engine.url)}
    result = CliRunner().invoke(main, ["import", "im_company", str(path), "--report", str(tmp_path / "r.json")],
                                env=env)
    assert result.exit_code == 1, result.output  # one row failed
    assert "1 created" in result.output and "row 2: error" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert [row["status"] for row in report["rows"]] == ["created", "error"]
    dry = CliRunner().invoke(main, ["import", "im_company", str(path), "--dry-run"], env=env)
    assert "dry run: 0 created" in dry.output
    assert names(runtime) == ["Kappa"]
