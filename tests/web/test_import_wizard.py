"""The import wizard through the Flask test client (SQLite and PostgreSQL): upload CSV in GBK
and UTF-16 and an .xlsx, columns mapped by Chinese labels, lookups by name, the dry-run
preview with errors beside their cells, the background job to completion, the per-row
report, saved mappings, bad files refused, the .xlsx export and a user without create rights
refused."""

from __future__ import annotations

import csv
import html
import io
import re

import pytest
from openpyxl import Workbook, load_workbook

from metacrm.platform.imports import wait_for
from tests.conftest import make_user
from tests.web.conftest import login, post


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def upload(client, object_name: str, data: bytes, filename: str, encoding: str = ""):
    return post(client, f"/records/{object_name}/import",
                {"file": (io.BytesIO(data), filename), "encoding": encoding},
                content_type="multipart/form-data")


def map_url(response) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    return response.headers["Location"]


def mapping_form(page: str) -> dict:
    """The mapping form as the page offers it: each select's selected option, the mode."""
    form = {}
    for name, body in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', page, re.DOTALL):
        chosen = re.search(r'<option value="([^"]*)" selected>', body)
        form[name] = chosen.group(1) if chosen else ""
    for name, body in re.findall(r'<select id="[^"]+" name="(lookup\.[^"]+|key)"[^>]*>(.*?)</select>', page, re.DOTALL):
        chosen = re.search(r'<option value="([^"]*)" selected>', body)
        form[name] = chosen.group(1) if chosen else ""
    form["mode"] = "insert"
    return form


def xlsx(rows: list[list]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def run_job(client, preview_url: str) -> str:
    """Start the import from the preview page; wait for the job; the job page's URL."""
    response = post(client, preview_url.replace("/preview", "/run"))
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    job_url = response.headers["Location"]
    wait_for(job_url.rsplit("/", 1)[1], timeout=60)
    return job_url


def test_list_page_links_import_and_xlsx_export_for_creators_only(admin_client, runtime, client, app):
    page = text(admin_client.get("/records/lead"))
    assert 'id="import-records"' in page and 'href="/records/lead/import"' in page
    assert 'id="export-xlsx"' in page and "format=xlsx" in page
    make_user(runtime, client, "fiona", ["finance"])
    finance = app.test_client()
    assert login(finance, "fiona", "user-pass-123").status_code == 303
    contacts = text(finance.get("/records/contact"))
    assert 'id="import-records"' not in contacts  # finance reads contacts, may not create them
    assert finance.get("/records/contact/import").status_code == 403
    refused = upload(finance, "contact", "姓名\n张三\n".encode(), "c.csv")
    assert refused.status_code == 403
    assert finance.get("/records/lead/import").status_code == 404  # cannot even read leads


def test_gbk_csv_mapped_by_chinese_labels_previews_and_imports(admin_client, system):
    data = "公司名称,邮箱,线索来源,备注栏\n甲公司,a@example.com,web,x\n乙公司,not-an-email,web,y\n丙公司,c@example.com,nosuch,z\n"
    response = upload(admin_client, "lead", data.encode("gbk"), "leads.csv")
    url = map_url(response)
    page = text(admin_client.get(url))
    assert '<option value="gb18030" selected>' in page  # the guess is shown, changeable
    assert "甲公司" in page  # decoded right
    form = mapping_form(page)
    assert (form["map.0"], form["map.1"], form["map.2"], form["map.3"]) == ("company", "email", "source", "")
    preview = post(admin_client, url + "/preview", form)
    assert preview.status_code == 200, text(preview)[:3000]
    body = text(preview)
    row2 = body[body.index('data-row="2"'):]
    row2 = row2[:row2.index("</tr>")]
    email_cell = row2[row2.index('data-field="email"'):]
    assert "not-an-email" in email_cell and "Not a valid email address." in email_cell.split("</td>")[0]
    row3 = body[body.index('data-row="3"'):]
    source_cell = row3[row3.index('data-field="source"'):].split("</td>")[0]
    assert 'aria-invalid="true"' in source_cell and "field-error" in source_cell
    assert system.list("lead", filter={"company": "甲公司"})[0] == []  # a dry run saved nothing
    job_url = run_job(admin_client, url + "/preview")
    job = text(admin_client.get(job_url))
    assert "Finished." in job and 'id="report-csv"' in job and "Rows not imported" in job
    assert "<progress" in job and "3 of 3 row(s) done" in job and "Errors so far: 2" in job
    assert [r["company"] for r in system.list("lead", filter={"company": "甲公司"})[0]] == ["甲公司"]
    report = admin_client.get(job_url + "/report.csv")
    assert report.status_code == 200 and report.headers["Content-Type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(report.get_data(as_text=True).lstrip("\ufeff"))))
    assert lines[0] == ["row", "status", "id", "field", "message"]
    assert lines[1][:2] == ["1", "created"] and lines[1][2]
    assert lines[2][:2] == ["2", "error"] and lines[2][3] == "email"
    book = load_workbook(io.BytesIO(admin_client.get(job_url + "/report.xlsx").data), read_only=True)
    cells = [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
    assert cells[0] == ["row", "status", "id", "field", "message"] and cells[3][:2] == [3, "error"]


def test_utf16_csv_and_encoding_can_be_changed(admin_client, system):
    data = "company\tsource\temail\n丁公司\tweb\td@example.com\n".encode("utf-16")
    url = map_url(upload(admin_client, "lead", data, "leads.txt"))
    page = text(admin_client.get(url))
    assert '<option value="utf-16" selected>' in page and "丁公司" in page
    wrong = admin_client.get(url + "?encoding=utf-8")
    assert wrong.status_code == 400 and "cannot be read as text in this encoding" in text(wrong)
    run_job(admin_client, _preview(admin_client, url))
    assert system.list("lead", filter={"company": "丁公司"})[0]


def _preview(client, url: str) -> str:
    page = text(client.get(url))
    response = post(client, url + "/preview", mapping_form(page))
    assert response.status_code == 200, text(response)[:3000]
    return url + "/preview"


def test_xlsx_contacts_with_account_by_name_and_upsert(admin_client, system):
    account = system.create("account", {"name": "Acme Ltd"})
    data = xlsx([["Name", "Account", "Email"], ["Zhang San", "Acme Ltd", "zs@example.com"],
                 ["Li Si", "No Such Co", "ls@example.com"]])
    url = map_url(upload(admin_client, "contact", data, "contacts.xlsx"))
    page = text(admin_client.get(url))
    assert "Excel workbook" in page and "Zhang San" in page
    form = mapping_form(page)
    assert form["map.1"] == "account" and form["lookup.account"] == "name"  # names, not ids: by name
    body = text(post(admin_client, url + "/preview", form))
    row2 = body[body.index('data-row="2"'):].split("</tr>")[0]
    assert "No record you can see has this value." in row2.split('data-field="account"')[1]
    run_job(admin_client, url + "/preview")
    made = system.list("contact", filter={"name": "Zhang San"})[0]
    assert made and made[0]["account"] == account["id"]
    assert system.list("contact", filter={"name": "Li Si"})[0] == []
    # upsert on email: the same file again with a new title updates Zhang San
    again = xlsx([["Name", "Email", "Title"], ["Zhang San", "zs@example.com", "CTO"]])
    url = map_url(upload(admin_client, "contact", again, "again.xlsx"))
    form = mapping_form(text(admin_client.get(url)))
    form.update(mode="upsert", key="email")
    assert post(admin_client, url + "/preview", form).status_code == 200
    run_job(admin_client, url + "/preview")
    rows = system.list("contact", filter={"email": "zs@example.com"})[0]
    assert len(rows) == 1 and rows[0]["title"] == "CTO"


def test_saved_mapping_is_applied_to_a_file_with_the_same_columns(admin_client):
    data = b"Firma,Mail,Quelle\nX GmbH,x@example.com,web\n"
    url = map_url(upload(admin_client, "lead", data, "de.csv"))
    form = mapping_form(text(admin_client.get(url)))
    assert form["map.0"] == ""  # nothing matches German headers
    form.update({"map.0": "company", "map.1": "email", "map.2": "source", "save_as": "German fair"})
    assert post(admin_client, url + "/preview", form).status_code == 200
    url2 = map_url(upload(admin_client, "lead", data, "de2.csv"))
    page = text(admin_client.get(url2))
    assert "German fair" in page
    again = mapping_form(page)
    assert (again["map.0"], again["map.1"], again["map.2"]) == ("company", "email", "source")


@pytest.mark.parametrize("data, name, words", [
    (b"%PDF-1.4 not a table", "file.pdf", "not a CSV or .xlsx file"),
    (b"", "empty.csv", "The file is empty"),
    (b"PK\x03\x04garbage", "broken.xlsx", "damaged"),
    (",".join(f"c{i}" for i in range(1001)).encode() + b"\n" + b",".join(b"1" for _ in range(1001)) + b"\n",
     "wide.csv", "too many columns"),
    (b"\xff\xfe\x00\xd8bad", "bad.csv", "cannot be read"),
    ("公司\n".encode("gbk"), "header-only.csv", "no rows"),
])
def test_bad_files_are_refused_with_a_clear_message(admin_client, system, data, name, words):
    before = len(system.list("lead", limit=500)[0])
    response = upload(admin_client, "lead", data, name)
    assert response.status_code == 400
    page = text(response)
    assert 'id="import-error"' in page and words in page
    assert len(system.list("lead", limit=500)[0]) == before


def test_a_bad_mapping_is_shown_beside_its_column(admin_client, system):
    data = b"company,company2,source\nA,B,web\n"
    url = map_url(upload(admin_client, "lead", data, "two.csv"))
    form = mapping_form(text(admin_client.get(url)))
    form.update({"map.0": "company", "map.1": "company"})
    response = post(admin_client, url + "/preview", form)
    assert response.status_code == 400
    page = text(response)
    assert 'id="map-1-error"' in page and "mapped to company already" in page
    form.update({"map.1": "", "mode": "upsert", "key": ""})
    response = post(admin_client, url + "/preview", form)
    assert response.status_code == 400 and 'id="import-key-error"' in text(response)
    form.update({"map.0": "no_such_field", "mode": "insert"})
    assert post(admin_client, url + "/preview", form).status_code == 400


def test_wizard_in_chinese_and_others_uploads_are_private(admin_client, system, runtime, client, app):
    rep = make_user(runtime, client, "rosa", ["sales_rep"])
    system.update("user", rep.id, {"locale": "zh-CN"})
    rep_client = app.test_client()
    assert login(rep_client, rep.username, rep.password).status_code == 303
    url = map_url(upload(rep_client, "lead", "公司名称,线索来源\n戊公司,web\n".encode("utf-8-sig"), "l.csv"))
    page = text(rep_client.get(url))
    assert "列与字段" in page and "不导入" in page and "UTF-8（带 BOM）" in page
    preview = text(post(rep_client, url + "/preview", mapping_form(page)))
    assert "预览（尚未保存任何数据）" in preview and "将新建" in preview
    assert admin_client.get(url).status_code == 404  # another user's upload is not theirs to see
    job_url = run_job(rep_client, url + "/preview")
    job = text(rep_client.get(job_url))
    assert "已完成。" in job and "已处理 1 / 1 行" in job
    assert admin_client.get(job_url).status_code == 200  # admins may see every job
    other = make_user(runtime, client, "otto", ["sales_rep"])
    other_client = app.test_client()
    assert login(other_client, other.username, other.password).status_code == 303
    assert other_client.get(job_url).status_code == 404
    assert other_client.get(job_url + "/report.csv").status_code == 404


def test_xlsx_export_has_the_csv_rows_and_scope(admin_client, system, runtime, client, app):
    system.create("lead", {"company": "=HYPERLINK(1)", "source": "web", "score": 42})
    response = admin_client.get("/records/lead/export?format=xlsx")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    book = load_workbook(io.BytesIO(response.data), read_only=True)
    rows = [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
    header = rows[0]
    assert header[0] == "id" and "company" in header
    found = [r for r in rows[1:] if r[header.index("company")] == "'=HYPERLINK(1)"]
    assert found and found[0][header.index("score")] == 42  # neutralised text, numbers as numbers
    assert admin_client.get("/records/lead/export?format=pdf").status_code == 400
    make_user(runtime, client, "fred", ["finance"])
    finance = app.test_client()
    assert login(finance, "fred", "user-pass-123").status_code == 303
    assert finance.get("/records/lead/export?format=xlsx").status_code == 404
