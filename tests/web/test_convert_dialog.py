"""Lead conversion as a dialog (account picked from the duplicate matches the user may read, or
created; contact; opportunity name, amount and close date; errors beside their input) through the
same convert action as the API, and the "create from" buttons (contract from a quote or an
opportunity, order from a contract) that prefill the new-record form and respect the gates."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import test_ltc_support as support
from tests.web.conftest import post

ltc = support.ltc  # fixture


@pytest.fixture
def lead(ltc, system, rep):
    return system.create("lead", {"company": "Dialog Works", "contact_name": "Wu Lan", "email": "wu@dialog.example",
                                  "source": "web", "project_name": "Dialog rollout", "budget": "80000",
                                  "owner": rep.id})


def test_convert_button_opens_the_dialog_prefilled(ltc, rep_client, lead):
    detail = html.unescape(rep_client.get(f"/records/lead/{lead['id']}").text)
    assert re.search(rf'<a class="btn" href="/records/lead/{lead["id"]}/convert" id="action-convert">', detail)
    page = html.unescape(rep_client.get(f"/records/lead/{lead['id']}/convert").text)
    assert 'value="Dialog Works"' in page and 'value="Wu Lan"' in page and 'value="Dialog rollout"' in page
    assert 'value="80000.00"' in page or 'value="80000"' in page
    assert 'id="account-new"' in page and 'id="no-matches"' in page


def test_dialog_converts_with_the_edited_values(ltc, rep_client, lead, system):
    response = post(rep_client, f"/records/lead/{lead['id']}/convert", {
        "account_choice": "new", "account-name": "Dialog Works Group", "contact-name": "Wu Lan",
        "contact-email": "wu@dialog.example", "create_opportunity": "on", "opportunity-name": "Rollout phase 1",
        "opportunity-amount": "65000", "opportunity-close_date": "2031-03-31"})
    assert response.status_code == 303, response.text
    converted = system.get("lead", lead["id"])
    assert converted["status"] == "converted"
    account = system.get("account", converted["converted_account"])
    opp = system.get("opportunity", converted["converted_opportunity"])
    assert account["name"] == "Dialog Works Group"
    assert (opp["name"], opp["amount"], opp["close_date"]) == ("Rollout phase 1", "65000.00", "2031-03-31")
    assert response.headers["Location"].endswith(f"/records/opportunity/{opp['id']}")
    again = rep_client.get(f"/records/lead/{lead['id']}/convert")
    assert again.status_code == 303  # already converted: back to the lead


def test_matches_are_offered_only_when_readable(ltc, rep_client, lead, system, rep):
    mine = system.create("account", {"name": "Dialog Works", "owner": rep.id})
    page = html.unescape(rep_client.get(f"/records/lead/{lead['id']}/convert").text)
    assert f'id="account-{mine["id"]}"' in page and "checked" in page.split(f'id="account-{mine["id"]}"')[1][:20]
    response = post(rep_client, f"/records/lead/{lead['id']}/convert", {
        "account_choice": mine["id"], "contact-name": "Wu Lan", "opportunity-name": "Deal", "create_opportunity": "on",
        "opportunity-amount": "1", "opportunity-close_date": "2031-01-01"})
    assert response.status_code == 303
    assert system.get("lead", lead["id"])["converted_account"] == mine["id"]


def test_hidden_match_is_not_shown(ltc, rep_client, lead, system, client):
    from tests.conftest import make_user

    other = make_user(ltc, client, "otto", ["sales_rep"])
    theirs = system.create("account", {"name": "Dialog Works", "owner": other.id})
    page = rep_client.get(f"/records/lead/{lead['id']}/convert").text
    assert theirs["id"] not in page


def test_errors_show_beside_their_input_and_change_nothing(ltc, rep_client, lead, system):
    missing = post(rep_client, f"/records/lead/{lead['id']}/convert", {
        "account_choice": "new", "account-name": "", "contact-name": "Wu Lan", "create_opportunity": "on",
        "opportunity-name": "X", "opportunity-amount": "1", "opportunity-close_date": "2031-01-01"})
    assert missing.status_code == 400
    assert re.search(r'id="c-account-name-err"', missing.text)
    bad = post(rep_client, f"/records/lead/{lead['id']}/convert", {
        "account_choice": "new", "account-name": "Dialog Works", "contact-name": "Wu Lan", "create_opportunity": "on",
        "opportunity-name": "X", "opportunity-amount": "lots", "opportunity-close_date": "2031-01-01"})
    assert bad.status_code == 400, bad.text
    assert re.search(r'id="c-opportunity-amount-err"', bad.text), html.unescape(bad.text)
    after = system.get("lead", lead["id"])
    assert after["status"] != "converted" and not after["converted_account"]
    assert system.list("account", filter={"name": "Dialog Works"})[0] == []


def test_another_reps_lead_cannot_be_converted(ltc, app, lead, client):
    from tests.conftest import make_user
    from tests.web.conftest import login

    other = make_user(ltc, client, "olga", ["sales_rep"])
    browser = app.test_client()
    login(browser, other.username, other.password)
    assert browser.get(f"/records/lead/{lead['id']}/convert").status_code in (403, 404)


def test_create_contract_from_quote_respects_the_discount_gate(ltc, admin_client, system):
    account = system.create("account", {"name": "Gate Co"})
    deep = system.create("quote", {"name": "Deep discount", "account": account["id"]})
    deep = system.update("quote", deep["id"], {"discount_pct": "25"}, version=deep["version"])
    detail = html.unescape(admin_client.get(f"/records/quote/{deep['id']}").text)
    assert 'id="create-contract"' in detail
    refused = admin_client.get(f"/records/quote/{deep['id']}/create/contract", follow_redirects=True)
    assert "must approve the" in html.unescape(refused.text)
    plain = system.create("quote", {"name": "Plain quote", "account": account["id"]})
    go = admin_client.get(f"/records/quote/{plain['id']}/create/contract")
    assert go.status_code == 303
    target = urlsplit(go.headers["Location"])
    assert target.path == "/records/contract/new"
    query = parse_qs(target.query)
    assert query["quote"] == [plain["id"]] and query["account"] == [account["id"]] and query["name"] == ["Plain quote"]
    form = html.unescape(admin_client.get(go.headers["Location"]).text)
    assert 'value="Plain quote"' in form


def test_create_order_only_from_an_active_contract(ltc, admin_client, system):
    account = system.create("account", {"name": "Order Co"})
    draft = system.create("contract", {"name": "Draft deal", "account": account["id"]})
    refused = admin_client.get(f"/records/contract/{draft['id']}/create/order", follow_redirects=True)
    assert "active contract" in html.unescape(refused.text)
    active = support.active_contract(system, {"name": "Live deal", "account": account["id"], "amount": "100",
                                              "signed_on": "2026-01-01"})
    go = admin_client.get(f"/records/contract/{active['id']}/create/order")
    assert go.status_code == 303 and "/records/order/new" in go.headers["Location"]
    assert f"contract={active['id']}" in go.headers["Location"]


def test_create_from_opportunity_prefills_account_and_amount(ltc, admin_client, system):
    account = system.create("account", {"name": "Opp Co"})
    opp = system.create("opportunity", {"name": "Big one", "account": account["id"], "amount": "5000",
                                        "stage": "qualification", "close_date": "2031-01-01"})
    go = admin_client.get(f"/records/opportunity/{opp['id']}/create/contract")
    query = parse_qs(urlsplit(go.headers["Location"]).query)
    assert query["opportunity"] == [opp["id"]] and query["amount"] == ["5000.00"]
    assert admin_client.get(f"/records/opportunity/{opp['id']}/create/order").status_code == 404
