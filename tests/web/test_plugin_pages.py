"""The admin Plugins page: list, install / upgrade / uninstall through a dry-run confirmation."""

from __future__ import annotations

import re

from tests.web.conftest import post


def row_of(html: str, name: str) -> str:
    match = re.search(rf'<tr id="plugin-{name}">(.*?)</tr>', html, re.DOTALL)
    assert match, f"no row for {name}"
    return match.group(1)


def test_admin_sees_discovered_plugins(admin_client):
    page = admin_client.get("/admin/plugins")
    assert page.status_code == 200
    html = page.text
    assert "lead_to_cash" in html and "erp_connector" in html
    assert 'href="/admin/plugins"' in html  # the admin nav entry
    assert "/admin/plugins/erp_connector/install" in row_of(html, "erp_connector")
    assert "<script>" not in html and " style=" not in html


def test_a_rep_is_refused(rep_client):
    assert rep_client.get("/admin/plugins").status_code == 403
    assert post(rep_client, "/admin/plugins/erp_connector/install").status_code == 403
    assert post(rep_client, "/admin/plugins/erp_connector/install/apply").status_code == 403
    assert 'href="/admin/plugins"' not in rep_client.get("/").text


def test_install_then_uninstall_erp_connector(admin_client, runtime):
    preview = post(admin_client, "/admin/plugins/erp_connector/install")
    assert preview.status_code == 200
    assert "erp_connector__order_number" in preview.text  # the dry-run diff
    assert "/admin/plugins/erp_connector/install/apply" in preview.text
    assert "plugin-status-available" in row_of(admin_client.get("/admin/plugins").text, "erp_connector")

    done = post(admin_client, "/admin/plugins/erp_connector/install/apply")
    assert done.status_code == 303 and done.headers["Location"].endswith("/admin/plugins")
    page = admin_client.get("/admin/plugins").text
    assert "plugin-status-installed" in row_of(page, "erp_connector")
    assert "erp_connector__order_number" in runtime.registry().object("order").fields

    again = post(admin_client, "/admin/plugins/erp_connector/install", follow_redirects=True)
    assert "notice-error" in again.text and "already installed" in again.text

    confirm = post(admin_client, "/admin/plugins/erp_connector/uninstall")
    assert confirm.status_code == 200 and "/admin/plugins/erp_connector/uninstall/apply" in confirm.text
    gone = post(admin_client, "/admin/plugins/erp_connector/uninstall/apply")
    assert gone.status_code == 303
    row = row_of(admin_client.get("/admin/plugins").text, "erp_connector")
    assert "plugin-status-archived" in row
    assert "erp_connector__order_number" not in runtime.registry().object("order").fields


def test_missing_csrf_is_refused(admin_client, runtime):
    refused = admin_client.post("/admin/plugins/erp_connector/install/apply", data={})
    assert refused.status_code == 400
    row = row_of(admin_client.get("/admin/plugins").text, "erp_connector")
    assert "plugin-status-available" in row


def test_unknown_plugin_is_a_notice(admin_client):
    answer = post(admin_client, "/admin/plugins/nothing_here/install", follow_redirects=True)
    assert answer.status_code == 200 and "notice-error" in answer.text
