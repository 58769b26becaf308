"""Dashboards composed in the web from saved reports (`dashboard` metadata): a user adds, moves,
resizes, recharts and removes widgets with buttons, the home page shows them (each linked to its
report and its records), an admin sets a role's default, stale or bad posts change nothing, and
the kind is validated at apply with JSON paths. SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from metacrm.platform.errors import MetadataInvalid
from metacrm.platform.reports.dashboards import personal_name, role_name
from tests.conftest import make_user
from tests.web.conftest import login, new_lead, post

REPORT = "leads_by_source_and_status"


def _version(html: str) -> str:
    return re.search(r'name="_version" value="([^"]*)"', html).group(1)


def _press(client, action: str, **extra):
    page = client.get("/dashboard/edit" + (f"?role={extra['role']}" if extra.get("role") else "")).text
    return post(client, "/dashboard/edit", {"_action": action, "_version": _version(page), **extra})


def _widgets(html: str) -> list[str]:
    return re.findall(r'data-widget="([a-z0-9_]+)"', html)


def test_a_user_composes_their_dashboard_with_buttons(app, runtime, system, rep, rep_client):
    new_lead(system, "Acme", source="web", owner=rep.id)
    home = rep_client.get("/").text
    assert "leads_by_status" in _widgets(home) and 'id="edit-dashboard"' in home  # the built-in widgets
    page = rep_client.get("/dashboard/edit")
    assert page.status_code == 200 and f'<option value="{REPORT}">' in page.text
    others = re.findall(r'<option value="([a-z0-9_]+)">', page.text[page.text.index('id="dash-report"'):
                                                                   page.text.index("</select>",
                                                                                   page.text.index('id="dash-report"'))])
    second = next(n for n in others if n != REPORT)
    assert _press(rep_client, "add", report=REPORT).status_code == 303
    assert _press(rep_client, "add", report=second, chart="pie").status_code == 303
    doc = runtime.registry().get("dashboard", personal_name(rep.id))
    assert doc["owner"] == rep.id and [w["report"] for w in doc["widgets"]] == [REPORT, second]
    assert doc["widgets"][1]["chart"] == "pie"
    home = rep_client.get("/").text
    assert _widgets(home) == [REPORT, second]  # the user's own now, not the built-in ones
    assert f'href="/reports/{REPORT}"' in home and "/records/lead?f.source=web" in home  # report and records
    # move, widen, rechart, remove: each a button
    assert _press(rep_client, "down", index="0").status_code == 303
    assert _press(rep_client, "wider", index="1").status_code == 303
    assert _press(rep_client, "chart", index="1", chart="number").status_code == 303
    doc = runtime.registry().get("dashboard", personal_name(rep.id))
    assert doc["widgets"] == [{"report": second, "chart": "pie", "size": "half"},
                              {"report": REPORT, "size": "full", "chart": "number"}]
    home = rep_client.get("/").text
    assert _widgets(home) == [second, REPORT] and 'class="card widget wide" data-widget="' + REPORT in home
    assert 'class="chart-number"' in home
    # refused: a stale form, an unknown report or chart, another role's dashboard; nothing changes
    stale = post(rep_client, "/dashboard/edit", {"_action": "remove", "index": "0", "_version": "1"})
    assert stale.status_code == 409 and 'id="dash-error"' in stale.text
    assert _press(rep_client, "add", report="no_such_report").status_code == 400
    assert _press(rep_client, "add", report=REPORT, chart="radar").status_code == 400
    assert _press(rep_client, "up", index="7").status_code == 400
    assert rep_client.post("/dashboard/edit", data={"_action": "reset"}).status_code == 400  # no CSRF token
    assert rep_client.get("/dashboard/edit?role=sales_rep").status_code == 403
    assert runtime.registry().get("dashboard", personal_name(rep.id))["widgets"] == doc["widgets"]
    # "Add to my dashboard" on a report's page
    report_page = rep_client.get(f"/reports/{REPORT}").text
    assert 'id="add-to-dashboard"' in report_page
    added = post(rep_client, "/dashboard/edit", {"_action": "add", "report": REPORT, "_version": _version(report_page)})
    assert added.status_code == 303
    assert [w["report"] for w in runtime.registry().get("dashboard", personal_name(rep.id))["widgets"]] == \
        [second, REPORT, REPORT]
    assert _press(rep_client, "remove", index="2").status_code == 303
    # remove both: the document goes and the home page has the built-in widgets again
    assert _press(rep_client, "remove", index="0").status_code == 303
    assert _press(rep_client, "remove", index="0").status_code == 303
    assert runtime.registry().get("dashboard", personal_name(rep.id)) is None
    assert "leads_by_status" in _widgets(rep_client.get("/").text)


def test_a_role_default_and_a_report_the_user_may_not_see(app, runtime, client, admin_client, rep, rep_client):
    assert _press(admin_client, "add", role="sales_rep", report=REPORT).status_code == 303
    assert _press(admin_client, "wider", role="sales_rep", index="0").status_code == 303
    doc = runtime.registry().get("dashboard", role_name("sales_rep"))
    assert doc["for_roles"] == ["sales_rep"] and "owner" not in doc
    assert _widgets(rep_client.get("/").text) == [REPORT]  # the rep has none of their own
    other = make_user(runtime, client, "mia", ["marketing"])
    mia = app.test_client()
    assert login(mia, other.username, other.password).status_code == 303
    assert "record_counts" in _widgets(mia.get("/").text)  # not her role's default: the built-in widgets
    # a widget whose report the user may not run stays off their page
    apply_change(runtime, documents_bundle([{"kind": "dashboard", "name": "fin_view", "for_roles": ["marketing"],
                                             "widgets": [{"report": "collections_by_month"}, {"report": REPORT}]}]))
    assert _widgets(mia.get("/").text) == [REPORT]


def test_the_dashboard_kind_is_validated_at_apply(runtime, rep):
    bad = [
        ({"kind": "dashboard", "name": "d1", "widgets": [{"report": "nope"}]}, "/widgets/0/report"),
        ({"kind": "dashboard", "name": "d2", "widgets": [{"report": REPORT, "size": "huge"}]}, "/widgets/0/size"),
        ({"kind": "dashboard", "name": "d3", "widgets": [{"report": REPORT, "chart": "radar"}]}, "/widgets/0/chart"),
        ({"kind": "dashboard", "name": "d4", "for_roles": ["no_role"], "widgets": []}, "/for_roles/0"),
        ({"kind": "dashboard", "name": "d5", "owner": rep.id, "for_roles": ["sales_rep"], "widgets": []},
         "/for_roles"),
    ]
    for doc, path in bad:
        with pytest.raises(MetadataInvalid) as caught:
            apply_change(runtime, documents_bundle([doc]))
        issues = [i if isinstance(i, dict) else i.as_dict() for i in caught.value.extra.get("issues", [])]
        assert any(i["path"].endswith(path) for i in issues), (doc, issues)
    assert runtime.registry().of_kind("dashboard") == []
