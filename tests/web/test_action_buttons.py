"""Record-action buttons on the detail page: shown only to users holding the action's
permission, run through the same checks as the API, with the outcome as a notice."""

from __future__ import annotations

import html

from metacrm.platform.actions import RecordAction, actions
from metacrm.platform.errors import Conflict
from tests.web.conftest import post


def stamp(service, record, params):
    if record.get("status") == "qualified":
        raise Conflict("Already stamped.")
    service.update("lead", record["id"], {"status": "qualified"}, version=record["version"])
    return {"ok": True}


def test_action_button_runs_the_action_and_reports_the_outcome(runtime, rep_client, rep, system):
    actions(runtime).add_record_action(RecordAction(name="stamp", object="lead", fn=stamp, label="Stamp it"))
    mine = system.create("lead", {"company": "Button Co", "source": "web", "owner": rep.id})
    page = html.unescape(rep_client.get(f"/records/lead/{mine['id']}").text)
    assert 'id="action-stamp"' in page and "Stamp it" in page
    done = post(rep_client, f"/records/lead/{mine['id']}/actions/stamp", follow_redirects=True)
    assert "Stamp it: done." in html.unescape(done.text)
    assert system.get("lead", mine["id"])["status"] == "qualified"
    again = post(rep_client, f"/records/lead/{mine['id']}/actions/stamp", follow_redirects=True)
    assert "Already stamped." in html.unescape(again.text)


def test_action_needing_a_permission_is_hidden_and_refused(runtime, rep_client, rep, system):
    actions(runtime).add_record_action(RecordAction(name="bless", object="lead", fn=stamp, label="Bless",
                                                    permission="credit.release"))
    mine = system.create("lead", {"company": "Plain Co", "source": "web", "owner": rep.id})
    assert 'id="action-bless"' not in rep_client.get(f"/records/lead/{mine['id']}").text
    refused = post(rep_client, f"/records/lead/{mine['id']}/actions/bless", follow_redirects=True)
    assert "may not run" in html.unescape(refused.text)
    assert system.get("lead", mine["id"])["status"] == "new"
