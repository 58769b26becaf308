"""CSV export (GET /api/v1/records/{object}/export and the list page's "Export CSV"): the
export scope (not the read scope), hidden fields, formula neutralisation, exact numbers,
UTF-8 with BOM, filter / sort / fields, keyset paging while streaming, OpenAPI, the web link."""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.api import exports
from metacrm.platform.apply import apply_change
from tests.conftest import make_user
from tests.test_dedup import fast_hash
from tests.web.conftest import login

URL = "/api/v1/records/lead/export"


@pytest.fixture(autouse=True)
def quick_passwords(monkeypatch):
    monkeypatch.setattr("metacrm.platform.records.hash_password", fast_hash)


def rows_of(response) -> list[dict]:
    """The CSV body as dicts (checks the BOM and the content type on the way)."""
    assert response.status_code == 200, response.data[:500]
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    body = response.get_data()
    assert body.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def header_of(response) -> list[str]:
    return next(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))


def lead(admin, company: str, owner: str | None, **values) -> dict:
    data = {"company": company, "source": "web", "product_line": "software", **values}
    if owner:
        data["owner"] = owner
    return admin.create("lead", data)


def apply_roles(runtime, *roles: dict) -> None:
    apply_change(runtime, documents_bundle(list(roles)))


def companies(response) -> list[str]:
    return [row["company"] for row in rows_of(response)]


# --- scope ---------------------------------------------------------------------------------------


def test_export_scope_not_read_scope_decides_the_rows_and_none_is_403(runtime, client, admin):
    rita = make_user(runtime, client, "rita", ["sales_rep"])
    ron = make_user(runtime, client, "ron", ["sales_rep"])
    apply_roles(runtime, {"kind": "role", "name": "lead_reader",
                          "objects": {"lead": {"read": "all", "export": "own"}}})
    reader = make_user(runtime, client, "rhea", ["lead_reader"])
    lead(admin, "Rita One", rita.id)
    lead(admin, "Rita Two", rita.id)
    lead(admin, "Ron One", ron.id)
    lead(admin, "Rhea One", reader.id)
    assert sorted(companies(client.get(URL, headers=rita.headers))) == ["Rita One", "Rita Two"]
    assert companies(client.get(URL, headers=ron.headers)) == ["Ron One"]
    # reads every lead, exports only its own
    listed = client.get("/api/v1/records/lead", headers=reader.headers).get_json()["items"]
    assert len(listed) == 4
    assert companies(client.get(URL, headers=reader.headers)) == ["Rhea One"]

    # an export scope of none: 403 (the object is readable); not even readable: 404; no login: 401
    apply_roles(runtime,
                {"kind": "role", "name": "look_only", "objects": {"lead": {"read": "all", "export": "none"}}},
                {"kind": "role", "name": "nothing", "objects": {"campaign": {"read": "all"}}})
    viewer = make_user(runtime, client, "vera", ["look_only"])
    stranger = make_user(runtime, client, "stan", ["nothing"])
    refused = client.get(URL, headers=viewer.headers)
    assert refused.status_code == 403 and refused.mimetype == "application/json"
    assert refused.get_json()["error"]["code"] == "forbidden" and "export" in refused.get_json()["error"]["message"]
    assert client.get(URL, headers=stranger.headers).status_code == 404  # cannot even read: not told it exists
    unknown = client.get("/api/v1/records/no_such_thing/export", headers=viewer.headers)
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "unknown_object"
    assert client.get(URL).status_code == 401


def test_a_manager_exports_their_subtree(runtime, client, admin):
    east = admin.create("department", {"name": "East"})
    east_one = admin.create("department", {"name": "East 1", "parent": east["id"]})
    west = admin.create("department", {"name": "West"})
    mia = make_user(runtime, client, "mia", ["sales_manager"], department=east["id"])
    max_ = make_user(runtime, client, "max", ["sales_manager"], department=east_one["id"])
    wes = make_user(runtime, client, "wes", ["sales_manager"], department=west["id"])
    rep = make_user(runtime, client, "rory", ["sales_rep"], department=east_one["id"], manager=mia.id)
    for user in (mia, max_, wes, rep):
        lead(admin, f"{user.username} Co", user.id)
    assert sorted(companies(client.get(URL, headers=mia.headers))) == ["max Co", "mia Co", "rory Co"]
    # rory's role is below wes's, but rory works in East: the West manager does not reach him
    # (the hierarchy follows the organisation, issue 13 item 2)
    assert sorted(companies(client.get(URL, headers=wes.headers))) == ["wes Co"]


# --- columns -----------------------------------------------------------------------------------


def test_hidden_fields_never_appear_and_cannot_be_requested(runtime, client, admin, admin_headers):
    apply_roles(runtime, {"kind": "role", "name": "no_email",
                          "objects": {"lead": {"read": "all", "export": "all"}},
                          "fields": {"lead": {"email": "hidden", "budget": "read_only"}}})
    user = make_user(runtime, client, "hugo", ["no_email"])
    lead(admin, "Hidden Co", None, email="secret-address@example.com", budget="10.00")
    response = client.get(URL, headers=user.headers)
    assert "email" not in header_of(response) and "budget" in header_of(response)
    assert b"secret-address" not in response.get_data()
    for asked in ("email", "company,email"):
        refused = client.get(URL, query_string={"fields": asked}, headers=user.headers)
        assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "unknown_field"
        assert "email" in refused.get_json()["error"]["fields"]
    # an admin sees the column (so the test above can fail)
    assert "email" in header_of(client.get(URL, headers=admin_headers))


def test_fields_order_exact_decimals_lookups_as_ids_and_openapi(runtime, client, admin, admin_headers):
    campaign = admin.create("campaign", {"name": "Spring fair"})
    created = lead(admin, "Numbers Co", None, budget="1234567890123.45", score=0, campaign=campaign["id"],
                   is_key_lead=True)
    response = client.get(URL, query_string={"fields": "budget,company,campaign,score,is_key_lead"},
                          headers=admin_headers)
    assert header_of(response) == ["budget", "company", "campaign", "score", "is_key_lead"]
    (row,) = rows_of(response)
    assert row == {"budget": "1234567890123.45", "company": "Numbers Co", "campaign": campaign["id"],
                   "score": "0", "is_key_lead": "true"}
    full = rows_of(client.get(URL, headers=admin_headers))
    assert full[0]["id"] == created["id"] and next(iter(full[0])) == "id"
    assert "password" not in header_of(client.get("/api/v1/records/user/export", headers=admin_headers))
    # the OpenAPI document describes the export as CSV
    document = client.get("/api/v1/openapi.json", headers=admin_headers).get_json()
    operation = document["paths"]["/records/{object}/export"]["get"]
    assert "text/csv" in operation["responses"]["200"]["content"]
    assert {p["name"] for p in operation["parameters"]} >= {"object", "filter", "sort", "fields"}
    assert "403" in operation["responses"]


# --- formula injection, Chinese, numbers ------------------------------------------------------------


def test_formulas_from_a_csv_import_come_out_neutralised_and_numbers_stay_numbers(runtime, client):
    rep = make_user(runtime, client, "rita", ["sales_rep"])
    hostile = [
        ('=HYPERLINK("http://x","y")', "+1+1", "-2+3", "-1234.50"),
        ("@SUM(A1)", "=1+1", "plain text", "-0.01"),
        ("Normal Co", "a=b", "@home", "42.00"),
    ]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["company", "contact_name", "project_name", "budget", "source", "product_line", "owner"])
    for company, contact, project, budget in hostile:
        writer.writerow([company, contact, project, budget, "web", "software", rep.id])
    report = client.post("/api/v1/records/lead/import", data=out.getvalue().encode(), content_type="text/csv",
                         headers=rep.headers).get_json()
    assert report["summary"]["created"] == 3, report
    stored = client.get("/api/v1/records/lead", query_string={"sort": "company"}, headers=rep.headers).get_json()
    assert {item["company"] for item in stored["items"]} == {h[0] for h in hostile}  # stored as typed
    response = client.get(URL, query_string={"fields": "company,contact_name,project_name,budget,source"},
                          headers=rep.headers)
    by_budget = {row["budget"]: row for row in rows_of(response)}
    assert by_budget["-1234.50"] == {"company": "'=HYPERLINK(\"http://x\",\"y\")", "contact_name": "'+1+1",
                                     "project_name": "'-2+3", "budget": "-1234.50", "source": "web"}
    assert by_budget["-0.01"]["company"] == "'@SUM(A1)" and by_budget["-0.01"]["contact_name"] == "'=1+1"
    assert by_budget["-0.01"]["project_name"] == "plain text"
    assert by_budget["42.00"] == {"company": "Normal Co", "contact_name": "a=b", "project_name": "'@home",
                                  "budget": "42.00", "source": "web"}


def test_neutralise_covers_tab_and_carriage_return_and_only_text():
    assert exports.cell("text", "\tcmd") == "'\tcmd" and exports.cell("text", "\r=1") == "'\r=1"
    assert exports.cell("textarea", "-") == "'-" and exports.cell(None, "=x") == "'=x"
    assert exports.cell("currency", "-5.00") == "-5.00" and exports.cell("integer", -7) == "-7"
    assert exports.cell("decimal", "1E+3") == "1000"  # never an exponent
    assert exports.cell("integer", "=1+1") == "'=1+1"  # not a number after all: treated as text
    assert exports.cell("multipicklist", ["-a", "b"]) == "'-a;b"
    assert exports.cell("boolean", False) == "false" and exports.cell("text", None) == ""


def test_chinese_text_round_trips_through_export_and_import(runtime, client, admin, admin_headers):
    lead(admin, "北京云端科技有限公司", None, contact_name="张伟", project_name="华东区数据中心", budget="88000.50")
    lead(admin, "Plain Co", None, contact_name="Ann")
    fields = "company,contact_name,project_name,budget,source,product_line"
    exported = client.get(URL, query_string={"fields": fields, "sort": "company"}, headers=admin_headers)
    rows = rows_of(exported)
    assert rows[1] == {"company": "北京云端科技有限公司", "contact_name": "张伟", "project_name": "华东区数据中心",
                       "budget": "88000.50", "source": "web", "product_line": "software"}
    for item in client.get("/api/v1/records/lead", headers=admin_headers).get_json()["items"]:
        assert client.delete(f"/api/v1/records/lead/{item['id']}", headers=admin_headers).status_code == 204
    report = client.post("/api/v1/records/lead/import", data=exported.get_data(), content_type="text/csv",
                         headers=admin_headers).get_json()
    assert report["summary"]["created"] == 2, report
    again = client.get("/api/v1/records/lead", query_string={"sort": "company", "fields": fields},
                       headers=admin_headers).get_json()["items"]
    assert {k: again[1][k] for k in rows[1]} == rows[1]


# --- filter, sort, paging ------------------------------------------------------------------------


def test_filter_and_sort_are_respected_across_pages(runtime, client, admin, admin_headers, monkeypatch):
    monkeypatch.setattr(exports, "PAGE_SIZE", 2)  # five pages for nine rows: the keyset cursor is followed
    for n, budget in enumerate([50, 10, 90, 30, 70, 20, 80, 60, 40]):
        lead(admin, f"Co {n}", None, budget=f"{budget}.00", status="working" if budget != 40 else "new")
    lead(admin, "Other", None, status="new", budget="5.00")
    response = client.get(URL, query_string={"filter": json.dumps({"status": "working"}), "sort": "-budget"},
                          headers=admin_headers)
    assert response.is_streamed
    assert [row["budget"] for row in rows_of(response)] == [f"{b}.00" for b in (90, 80, 70, 60, 50, 30, 20, 10)]
    ascending = client.get(URL, query_string={"filter": json.dumps({"budget": {"lt": 45}}), "sort": "budget"},
                           headers=admin_headers)
    assert companies(ascending) == ["Other", "Co 1", "Co 5", "Co 3", "Co 8"]
    bad = client.get(URL, query_string={"filter": "{nope"}, headers=admin_headers)
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "bad_filter"
    assert client.get(URL, query_string={"sort": "no_such"}, headers=admin_headers).status_code == 400


# --- web ---------------------------------------------------------------------------------------


def test_web_export_link_follows_scope_and_the_download_uses_the_list_filter(runtime, app, client, admin):
    rita = make_user(runtime, client, "rita", ["sales_rep"])
    apply_roles(runtime, {"kind": "role", "name": "look_only",
                          "objects": {"lead": {"read": "all", "export": "none"}}})
    viewer = make_user(runtime, client, "vera", ["look_only"])
    lead(admin, "Alpha Web", rita.id, budget="-3.50")
    lead(admin, "Alpha Two", rita.id, contact_name="=cmd|' /C calc'!A0")
    lead(admin, "Beta Web", rita.id)
    lead(admin, "Alpha Not Mine", viewer.id)

    web = app.test_client()
    assert login(web, "rita", rita.password).status_code == 303
    page = web.get("/records/lead?q=Alpha&sort=company&limit=5").text
    assert 'id="export-csv"' in page
    href = page.split('id="export-csv"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    parts = urlsplit(href)
    assert parts.path == "/records/lead/export"
    assert parse_qs(parts.query) == {"q": ["Alpha"], "sort": ["company"]}
    assert 'id="export-csv"' not in web.get("/records/lead/recycle-bin").text
    download = web.get(href)
    rows = rows_of(download)
    assert [r["company"] for r in rows] == ["Alpha Two", "Alpha Web"]
    assert rows[0]["contact_name"] == "'=cmd|' /C calc'!A0" and rows[1]["budget"] == "-3.50"
    assert download.headers["Cache-Control"] == "no-store"

    other = app.test_client()
    assert login(other, "vera", viewer.password).status_code == 303
    assert 'id="export-csv"' not in other.get("/records/lead").text
    assert other.get("/records/lead/export").status_code == 403
    assert app.test_client().get("/records/lead/export").status_code == 303  # no session: to the login
