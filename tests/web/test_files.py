"""Files: attachments and file fields (platform/files) through the API and the record page.

Size and type refused, downloads as attachments with nosniff, permissions answering as the
record does (404 unseen, 403 read-only), history entries, and the recycle bin round trip."""

from __future__ import annotations

import io

import pytest

from metacrm.metadata.bundle import documents_bundle as bundle_of
from metacrm.platform.apply import apply_change
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.conftest import make_user
from tests.web.conftest import login, post

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%test\n" + b"x" * 100


def account(runtime, owner: str, name: str = "Acme") -> dict:
    return RecordService(runtime, Principal.system()).create("account", {"name": name, "owner": owner})


def upload(client, headers, obj, rid, name, data, ctype, **form):
    body = {"file": (io.BytesIO(data), name, ctype), **form}
    return client.post(f"/api/v1/records/{obj}/{rid}/files", data=body, headers=headers,
                       content_type="multipart/form-data")


def test_attach_list_download_remove_with_history(runtime, client):
    rita = make_user(runtime, client, "rita", ["sales_rep"])
    acc = account(runtime, rita.id)
    made = upload(client, rita.headers, "account", acc["id"], "报价 quote.pdf", PDF, "application/pdf")
    assert made.status_code == 201, made.text
    body = made.get_json()
    assert body["name"] == "报价 quote.pdf" and body["size"] == len(PDF) and body["content_type"] == "application/pdf"
    listed = client.get(f"/api/v1/records/account/{acc['id']}/files", headers=rita.headers).get_json()["items"]
    assert [f["id"] for f in listed] == [body["id"]]
    got = client.get(f"/api/v1/files/{body['id']}", headers=rita.headers)
    assert got.status_code == 200 and got.data == PDF
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''%E6%8A%A5%E4%BB%B7%20quote.pdf" in got.headers["Content-Disposition"]
    assert client.delete(f"/api/v1/files/{body['id']}", headers=rita.headers).status_code == 204
    assert client.get(f"/api/v1/files/{body['id']}", headers=rita.headers).status_code == 404
    actions = [h["action"] for h in client.get(f"/api/v1/records/account/{acc['id']}/history",
                                               headers=rita.headers).get_json()["items"]]
    assert "file_added" in actions and "file_removed" in actions
    spec = client.get("/api/v1/openapi.json", headers=rita.headers).get_json()
    assert "multipart/form-data" in spec["paths"]["/records/{object}/{id}/files"]["post"]["requestBody"]["content"]
    assert "get" in spec["paths"]["/files/{file_id}"]


@pytest.mark.parametrize("name,data,ctype,code", [
    ("setup.exe", b"MZ\x90\x00" + b"\x00" * 40, "application/octet-stream", "file_executable"),
    ("photo.png", b"MZ\x90\x00" + b"\x00" * 40, "image/png", "file_executable"),
    ("run.sh", b"#!/bin/sh\necho hi\n", "text/plain", "file_executable"),
    ("page.html", b"<!doctype html><script>alert(1)</script>", "text/html", "file_active_content"),
    ("notes.txt", b"<html><body><script>alert(1)</script>", "text/plain", "file_active_content"),
    ("pic.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", "file_active_content"),
    ("photo.png", PDF, "image/png", "file_type_mismatch"),
    ("photo.jpg", b"just text, not a jpeg", "image/jpeg", "file_type_mismatch"),
])
def test_refused_types_change_nothing(runtime, client, name, data, ctype, code):
    rita = make_user(runtime, client, "rita", ["sales_rep"])
    acc = account(runtime, rita.id)
    response = upload(client, rita.headers, "account", acc["id"], name, data, ctype)
    assert response.status_code == 415, response.text
    assert response.get_json()["error"]["code"] == code
    assert client.get(f"/api/v1/records/account/{acc['id']}/files", headers=rita.headers).get_json()["items"] == []


def test_size_limit_and_sniffed_type(runtime, client):
    runtime.config.max_file_bytes = 1000
    rita = make_user(runtime, client, "rita", ["sales_rep"])
    acc = account(runtime, rita.id)
    big = upload(client, rita.headers, "account", acc["id"], "big.pdf", PDF + b"x" * 1000, "application/pdf")
    assert big.status_code == 413 and big.get_json()["error"]["code"] == "file_too_large"
    empty = upload(client, rita.headers, "account", acc["id"], "empty.txt", b"", "text/plain")
    assert empty.status_code == 400
    generic = upload(client, rita.headers, "account", acc["id"], "scan", PNG, "application/octet-stream")
    assert generic.status_code == 201 and generic.get_json()["content_type"] == "image/png"
    text = upload(client, rita.headers, "account", acc["id"], "a.csv", b"a,b\n1,2\n", "text/csv")
    assert text.status_code == 201


def test_permissions_follow_the_record(runtime, client):
    rita = make_user(runtime, client, "rita", ["sales_rep"])
    ron = make_user(runtime, client, "ron", ["sales_rep"])
    apply_change(runtime, bundle_of([{"kind": "role", "name": "account_reader",
                                      "objects": {"account": {"read": "all"}}}]))
    rhea = make_user(runtime, client, "rhea", ["account_reader"])
    acc = account(runtime, rita.id)
    fid = upload(client, rita.headers, "account", acc["id"], "a.pdf", PDF, "application/pdf").get_json()["id"]
    # ron cannot see the account: 404 everywhere, as for the record
    assert client.get(f"/api/v1/records/account/{acc['id']}", headers=ron.headers).status_code == 404
    assert client.get(f"/api/v1/files/{fid}", headers=ron.headers).status_code == 404
    assert client.get(f"/api/v1/records/account/{acc['id']}/files", headers=ron.headers).status_code == 404
    assert upload(client, ron.headers, "account", acc["id"], "b.pdf", PDF, "application/pdf").status_code == 404
    assert client.delete(f"/api/v1/files/{fid}", headers=ron.headers).status_code == 404
    # rhea reads but may not edit: download yes, add / remove 403
    assert client.get(f"/api/v1/files/{fid}", headers=rhea.headers).status_code == 200
    assert upload(client, rhea.headers, "account", acc["id"], "b.pdf", PDF, "application/pdf").status_code == 403
    assert client.delete(f"/api/v1/files/{fid}", headers=rhea.headers).status_code == 403
    # an object without attachments
    activity = RecordService(runtime, Principal.system()).create("activity", {"subject": "Call", "owner": rita.id})
    refused = upload(client, rita.headers, "activity", activity["id"], "a.pdf", PDF, "application/pdf")
    assert refused.status_code == 404, refused.text


def test_recycle_bin_and_restore_bring_files_back(runtime, client, admin_headers):
    rita = make_user(runtime, client, "rita", ["sales_rep"])
    acc = account(runtime, rita.id)
    fid = upload(client, rita.headers, "account", acc["id"], "a.pdf", PDF, "application/pdf").get_json()["id"]
    assert client.delete(f"/api/v1/records/account/{acc['id']}", headers=admin_headers).status_code == 204
    assert client.get(f"/api/v1/files/{fid}", headers=admin_headers).status_code == 404
    assert client.post(f"/api/v1/records/account/{acc['id']}/restore", headers=admin_headers).status_code == 200
    got = client.get(f"/api/v1/files/{fid}", headers=admin_headers)
    assert got.status_code == 200 and got.data == PDF


def test_file_field_value_is_a_file_of_its_record(runtime, app, client, admin_headers):
    doc = runtime.registry().get("object", "account")
    doc = dict(doc, fields=[*doc["fields"], {"name": "logo", "type": "file", "accept": "image/*",
                                             "label": {"en": "Logo", "zh-CN": "标志"}}])
    apply_change(runtime, bundle_of([doc]))
    rita = make_user(runtime, client, "rita", ["sales_rep"])
    acc = account(runtime, rita.id)
    other = account(runtime, rita.id, "Other")
    no_version = upload(client, rita.headers, "account", acc["id"], "logo.png", PNG, "image/png", field="logo")
    assert no_version.status_code == 400
    made = upload(client, rita.headers, "account", acc["id"], "logo.png", PNG, "image/png", field="logo",
                  version=str(acc["version"]))
    assert made.status_code == 201, made.text
    fid = made.get_json()["id"]
    record = client.get(f"/api/v1/records/account/{acc['id']}", headers=rita.headers).get_json()
    assert record["logo"] == fid and record["version"] == acc["version"] + 1
    # another record's file cannot be borrowed through a PATCH
    response = client.patch(f"/api/v1/records/account/{other['id']}", headers=rita.headers,
                            json={"logo": fid, "version": other["version"]})
    assert response.status_code == 400 and "logo" in response.get_json()["error"]["fields"]
    assert client.get(f"/api/v1/files/{fid}", headers=rita.headers).status_code == 200
    # replacing it drops the old file
    again = upload(client, rita.headers, "account", acc["id"], "logo2.png", PNG, "image/png", field="logo",
                   version=str(record["version"]))
    assert again.status_code == 201
    assert client.get(f"/api/v1/files/{fid}", headers=rita.headers).status_code == 404
    # the pages that show every field cope with a file field
    web = app.test_client()
    assert login(web, rita.username, rita.password).status_code == 303
    for path in ("/records/account", f"/records/account/{acc['id']}", f"/records/account/{acc['id']}/edit",
                 "/records/account?sort=logo", "/api/v1/records/account?filter=%7B%22logo%22%3A%22x%22%7D"):
        assert web.get(path).status_code in (200, 400), path
    detail = web.get(f"/records/account/{acc['id']}").get_data(as_text=True)
    assert "logo2.png" in detail and 'accept="image/*"' in detail


def test_record_page_upload_download_and_errors(runtime, app, client):
    rita = make_user(runtime, client, "rita", ["sales_rep"])
    acc = account(runtime, rita.id)
    web = app.test_client()
    assert login(web, rita.username, rita.password).status_code == 303
    page = web.get(f"/records/account/{acc['id']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="attach-file"' in html and 'capture="environment"' in html
    done = post(web, f"/records/account/{acc['id']}/files",
                {"file": (io.BytesIO(PDF), "offer.pdf", "application/pdf")}, content_type="multipart/form-data")
    assert done.status_code == 303
    html = web.get(f"/records/account/{acc['id']}").get_data(as_text=True)
    assert "offer.pdf" in html and "File added" in html
    bad = post(web, f"/records/account/{acc['id']}/files",
               {"file": (io.BytesIO(b"MZ" + b"\x00" * 20), "tool.exe", "application/octet-stream")},
               content_type="multipart/form-data")
    assert bad.status_code == 422
    assert "Programs and scripts cannot be attached." in bad.get_data(as_text=True)
    no_csrf = web.post(f"/records/account/{acc['id']}/files",
                       data={"file": (io.BytesIO(PDF), "x.pdf", "application/pdf")}, content_type="multipart/form-data")
    assert no_csrf.status_code in (400, 403)


def test_an_admin_adds_a_file_field_on_the_web(runtime, admin_client):
    response = post(admin_client, "/admin/objects/account/fields",
                    {"label_en": "Signed contract", "label_zh": "签署的合同", "type": "file", "required": "on",
                     "add_layout": "on"})
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    fdef = runtime.registry().object("account").fields["signed_contract"]
    assert fdef.type == "file" and not fdef.required


def test_a_record_locked_by_a_pending_approval_takes_no_files(runtime, client):
    apply_change(runtime, bundle_of([{
        "kind": "approval_process", "name": "account_check", "object": "account",
        "entry": {"name": {"is_null": False}}, "steps": [{"name": "boss", "approver": {"role": "vp_sales"}}]}]))
    make_user(runtime, client, "vic", ["vp_sales"])
    rita = make_user(runtime, client, "rita", ["sales_rep"])
    acc = account(runtime, rita.id)
    fid = upload(client, rita.headers, "account", acc["id"], "a.pdf", PDF, "application/pdf").get_json()["id"]
    submitted = client.post(f"/api/v1/records/account/{acc['id']}/submit", headers=rita.headers, json={})
    assert submitted.status_code in (200, 201), submitted.text
    locked = upload(client, rita.headers, "account", acc["id"], "b.pdf", PDF, "application/pdf")
    assert locked.status_code == 423 and locked.get_json()["error"]["code"] == "record_locked"
    assert client.delete(f"/api/v1/files/{fid}", headers=rita.headers).status_code == 423
    assert client.get(f"/api/v1/files/{fid}", headers=rita.headers).status_code == 200
