"""The stage path on record pages (web/stage_path.py): moves go through the record service with
the page's version, and a refused move (a lost deal without its reason, a stale page) is a
message that changes nothing."""

from __future__ import annotations

import re

from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests import test_ltc_support as support
from tests.conftest import make_user
from tests.web.conftest import login, post


def _opportunity(runtime, owner: str) -> dict:
    system = RecordService(runtime, Principal.system())
    account = system.create("account", {"name": "Path Co", "owner": owner})
    return system.create("opportunity", {"name": "Path deal", "account": account["id"], "amount": "1000.00",
                                         "stage": "qualification", "owner": owner})


ltc = support.ltc  # fixture: the lead-to-cash plugin (a lost deal needs its reason)


def test_stage_path_moves_on_and_refuses_a_gated_move(ltc, runtime, app, client):
    rita = make_user(runtime, client, "rita", ["sales_rep"])
    ron = make_user(runtime, client, "ron", ["sales_rep"])
    opp = _opportunity(runtime, rita.id)
    web = app.test_client()
    assert login(web, rita.username, rita.password).status_code == 303
    html = web.get(f"/records/opportunity/{opp['id']}").get_data(as_text=True)
    assert 'id="stage-path"' in html
    assert re.search(r'data-stage="qualification">\s*<span class="stage-button" aria-current="step"', html)
    url = f"/records/opportunity/{opp['id']}/stage"
    moved = post(web, url, {"value": "research", "version": str(opp["version"])})
    assert moved.status_code == 303
    system = RecordService(runtime, Principal.system())
    now = system.get("opportunity", opp["id"])
    assert now["stage"] == "research"
    assert "Moved to" in web.get(f"/records/opportunity/{opp['id']}").get_data(as_text=True)
    # a stale page: refused, nothing changes
    stale = post(web, url, {"value": "trial", "version": str(opp["version"])})
    assert stale.status_code == 303
    assert system.get("opportunity", opp["id"])["stage"] == "research"
    assert "Not moved to" in web.get(f"/records/opportunity/{opp['id']}").get_data(as_text=True)
    # lost needs a loss reason (the plugin's rule): refused with the reason named
    lost = post(web, url, {"value": "lost", "version": str(now["version"])})
    assert lost.status_code == 303
    after = system.get("opportunity", opp["id"])
    page = web.get(f"/records/opportunity/{opp['id']}").get_data(as_text=True)
    assert after["stage"] == "research" and after["version"] == now["version"]
    assert "Not moved to Closed lost" in page and "Required when the deal is lost." in page
    # not a value, not readable
    assert post(web, url, {"value": "nonsense", "version": str(now["version"])}).status_code == 400
    other = app.test_client()
    assert login(other, ron.username, ron.password).status_code == 303
    assert post(other, url, {"value": "trial", "version": str(now["version"])}).status_code == 404
