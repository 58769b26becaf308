"""The gates in the web edit form (Flask test client, English and Chinese): a quote set
`presented` without its approval is refused with the process named by its label, in the
reader's language, and nothing changes; the opportunity edit form, which sends every field
back, moves the forecast category with the stage."""

from __future__ import annotations

import html
import re

import pytest

from tests import test_ltc_support as support
from tests.conftest import make_user
from tests.web.conftest import form_values, login, post


def fields_of(page: str) -> dict:
    """What the edit form would send back as it stands: inputs' values and selects' choices."""
    values = dict(re.findall(r'<input[^>]*name="([a-z_]+)"[^>]*value="([^"]*)"', page))
    for name, body in re.findall(r'<select[^>]*name="([a-z_]+)"[^>]*>(.*?)</select>', page, re.DOTALL):
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', body)
        values[name] = chosen.group(1) if chosen else ""
    return values


@pytest.fixture
def rep_web(app, runtime, client, system):
    support.load_plugin(runtime)
    boss = make_user(runtime, client, "gate_boss", ["sales_manager"])
    rep = make_user(runtime, client, "gate_rep", ["sales_rep"], manager=boss.id)
    web = app.test_client()
    assert login(web, rep.username, rep.password).status_code == 303
    return web, rep


@pytest.mark.parametrize("locale, expected", [
    ("en", "Quote discount approval must approve this record before Status becomes Presented."),
    ("zh-CN", "状态变为“已报价”之前，须先通过报价折扣审批。"),
])
def test_gated_transition_in_the_edit_form(rep_web, system, locale, expected):
    web, rep = rep_web
    system.update("user", rep.id, {"locale": locale})
    quote = support.RecordService(system.runtime, rep.principal, source="test").create(
        "quote", {"name": "Web quote", "discount_pct": "20"})
    url = f"/records/quote/{quote['id']}/edit"
    page = web.get(url).text
    form = {**fields_of(page), **form_values(page), "status": "presented"}
    response = post(web, url, form)
    assert response.status_code == 409
    assert expected in html.unescape(response.text)
    assert system.get("quote", quote["id"])["status"] == "draft"


def test_the_edit_form_moves_the_forecast_category_with_the_stage(rep_web, system):
    web, rep = rep_web
    opp = support.RecordService(system.runtime, rep.principal, source="test").create(
        "opportunity", {"name": "Web deal", "amount": "1000", "close_date": "2030-01-01"})
    assert opp["forecast_category"] == "pipeline"
    url = f"/records/opportunity/{opp['id']}/edit"
    page = web.get(url).text
    form = {**fields_of(page), **form_values(page), "stage": "negotiation"}
    assert form.get("forecast_category") == "pipeline"  # the form resends the stored category
    response = post(web, url, form)
    assert response.status_code == 303, html.unescape(response.text)[-3000:]
    saved = system.get("opportunity", opp["id"])
    assert (saved["stage"], saved["forecast_category"], saved["probability"]) == ("negotiation", "commit", "75.00")
