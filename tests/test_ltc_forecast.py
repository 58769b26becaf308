"""The manager's forecast view (GET /api/v1/reports/forecast: `rollup`, `rollup_totals`,
`adjustments`) and the manager override (`forecast_adjustment` records through the record
service): who sees which rows, the figures against hand-worked sums, and every refused write
answered 4xx with nothing changed. SQLite and PostgreSQL (the `engine` fixture)."""

from __future__ import annotations

import pytest

from metacrm.platform.reports import run_report
from tests import test_ltc_support as support

ltc = support.ltc  # fixture
org = support.org  # fixture
PASSWORD = "forecast-pass-123"

DEALS = [  # owner, amount, stage, close date, extra
    ("rep_a", "100", "won", "2025-01-10", {"opened_on": "2024-12-01", "win_loss_reason": "product_fit"}),
    ("rep_a", "200", "negotiation", "2025-02-10", {}),
    ("rep_a", "300", "trial", "2025-03-10", {}),
    ("rep_a", "400", "qualification", "2025-03-20", {}),
    ("rep_b", "1000", "won", "2025-01-31", {"opened_on": "2024-11-01", "win_loss_reason": "relationship"}),
    ("rep_b", "2000", "trial", "2025-03-01", {"forecast_category": "commit"}),
    ("rep_c", "700", "negotiation", "2025-02-15", {}),
]


def seed(org) -> None:
    people = {"rep_a": org.rep_a, "rep_b": org.rep_b, "rep_c": org.rep_c}
    for i, (owner, amount, stage, close, extra) in enumerate(DEALS):
        org.system.create("opportunity", {"name": f"D{i}", "owner": people[owner].id, "amount": amount,
                                          "stage": stage, "close_date": close, **extra})
    org.system.create("quota", {"user": org.rep_a.id, "period": "2025-Q1", "amount": "1000"})
    org.system.create("quota", {"user": org.rep_b.id, "period": "2025-Q1", "amount": "2000"})


def view(org, person, period="2025-Q1", kind="quarter"):
    service = org.system if person is None else person.service(org.runtime)
    return run_report(service, "forecast", {"period": kind, "from": period, "to": period})


def shape(result) -> list[tuple]:
    """(kind, username, depth) of each roll-up row, in display order."""
    return [(r["kind"], r["name"].lower(), r["depth"]) for r in result["rollup"]]


def row(result, person, kind="person") -> dict:
    return next(r for r in result["rollup"] if r["user"] == person.id and r["kind"] == kind)


def test_each_viewer_sees_their_people_rolled_up_the_reporting_line(org):
    seed(org)
    # a rep: their own row only
    mine = view(org, org.rep_a)
    assert shape(mine) == [("person", "rep_a", 0)]
    a = row(mine, org.rep_a)
    # closed 100; commit 200 + 100; best case 300 + 200 + 100; pipeline 400 + 300 + 200; quota 1,000
    assert (a["closed"], a["commit"], a["best_case"], a["pipeline"], a["quota"], a["attainment"]) == \
           ("100.00", "300.00", "600.00", "900.00", "1000.00", "10.00")
    assert a["adjusted"]["commit"] == "300.00" and a["can_adjust"] is False and mine["adjustments"] == []
    # the hardware manager: a subtotal and the two reps beneath, nothing of software
    managed = view(org, org.mgr)
    assert shape(managed) == [("team", "mgr", 0), ("person", "rep_a", 1), ("person", "rep_b", 1)]
    team = row(managed, org.mgr, "team")
    assert (team["closed"], team["commit"], team["best_case"], team["pipeline"], team["quota"],
            team["attainment"], team["team_size"]) == ("1100.00", "3300.00", "3600.00", "2900.00", "3000.00",
                                                       "36.67", 3)
    assert managed["rollup_totals"]["2025-Q1"]["closed"] == "1100.00"
    assert row(managed, org.rep_a)["can_adjust"] and row(managed, org.rep_b)["can_adjust"]
    # the other unit's manager sees only software
    other = view(org, org.mgr_sw)
    assert shape(other) == [("team", "mgr_sw", 0), ("person", "rep_c", 1)]
    assert other["rollup_totals"]["2025-Q1"]["pipeline"] == "700.00"
    # the VP: each manager's team as a subtotal with its reps beneath, under the VP's total
    top = view(org, org.vp)
    assert shape(top) == [("team", "vp", 0), ("team", "mgr", 1), ("person", "rep_a", 2), ("person", "rep_b", 2),
                          ("team", "mgr_sw", 1), ("person", "rep_c", 2)]
    assert row(top, org.vp, "team")["pipeline"] == "3600.00" and row(top, org.vp, "team")["team_size"] == 6
    assert row(top, org.rep_c)["can_adjust"] is True
    # finance reads every deal: the same rows, none of them adjustable by finance
    finance = view(org, org.fin)
    assert shape(finance) == shape(top)
    assert not any(r["can_adjust"] for r in finance["rollup"])
    # months: an empty month in the asked range still lists the people, at zero
    months = view(org, org.mgr, "2025-04", "month")
    assert shape(months) == shape(managed) and row(months, org.mgr, "team")["pipeline"] == "0.00"


def test_bad_periods_are_400_naming_the_parameter(org):
    from metacrm.platform.errors import BadRequest

    for params, name in (({"period": "quarter", "from": "2025-13", "to": "2025-Q1"}, "from"),
                         ({"period": "month", "from": "2025-01", "to": "2025-Q1"}, "to"),
                         ({"period": "month", "from": "2025-05", "to": "2025-01"}, "from"),
                         ({"period": "month", "from": "2020-01", "to": "2025-01"}, "to")):
        with pytest.raises(BadRequest) as refused:
            run_report(org.system, "forecast", params)
        assert name in refused.value.fields


def _login(org, client, person) -> dict:
    org.system.update("user", person.id, {"password": PASSWORD})
    token = client.post("/api/v1/auth/token", json={"username": person.username, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.get_json()['token']}"}


def _count(org) -> int:
    return len(org.system.list("forecast_adjustment", limit=200)[0])


def test_managers_adjust_their_people_beside_the_reps_own_figures(org, client):
    seed(org)
    mgr, vp, rep, mgr_sw, fin = (_login(org, client, p) for p in (org.mgr, org.vp, org.rep_a, org.mgr_sw, org.fin))
    url = "/api/v1/records/forecast_adjustment"
    made = client.post(url, headers=mgr, json={"rep": org.rep_a.id, "period": "2025-Q1", "commit": "250",
                                               "best_case": "500", "note": "D2 slips"})
    assert made.status_code == 201, made.get_json()
    adjustment = made.get_json()
    assert adjustment["owner"] == org.mgr.id
    # the manager sees the rep's own figure beside the adjusted one; the subtotal adds adjusted figures
    managed = client.get("/api/v1/reports/forecast?period=quarter&from=2025-Q1&to=2025-Q1", headers=mgr).get_json()
    a = row(managed, org.rep_a)
    assert (a["commit"], a["adjusted"]["commit"], a["adjusted"]["best_case"], a["adjusted"]["by"]) == \
           ("300.00", "250.00", "500.00", org.mgr.id)
    assert a["mine"]["id"] == adjustment["id"] and a["mine"]["note"] == "D2 slips"
    team = row(managed, org.mgr, "team")
    assert (team["commit"], team["adjusted"]["commit"], team["adjusted"]["best_case"]) == \
           ("3300.00", "3250.00", "3500.00")  # rep_b unadjusted: 3,000 / 3,000
    # the VP makes their own call; the VP sees both, the manager still only theirs
    assert client.post(url, headers=vp, json={"rep": org.rep_a.id, "period": "2025-Q1",
                                              "commit": "200"}).status_code == 201
    top = view(org, org.vp)
    a = row(top, org.rep_a)
    assert [(x["owner"], x["commit"], x["mine"]) for x in a["adjustments"]] == [
        (org.vp.id, "200.00", True), (org.mgr.id, "250.00", False)]
    assert (a["adjusted"]["commit"], a["adjusted"]["best_case"]) == ("200.00", "600.00")  # VP left best case
    assert row(top, org.mgr, "team")["adjusted"]["commit"] == "3200.00"
    assert row(view(org, org.mgr), org.rep_a)["adjusted"]["commit"] == "250.00"
    # the rep's own figures never change; the rep sees no adjustment
    mine = view(org, org.rep_a)
    assert row(mine, org.rep_a)["commit"] == "300.00" and mine["adjustments"] == []
    assert client.get(url, headers=rep).status_code == 404  # reps have no read on adjustments
    # history is kept
    changed = client.patch(f"{url}/{adjustment['id']}", headers=mgr,
                           json={"commit": "240", "version": adjustment["version"]})
    assert changed.status_code == 200, changed.get_json()
    history = org.system.history("forecast_adjustment", adjustment["id"])
    assert any("commit" in (entry.get("changes") or {}) for entry in history)

    # refused, and nothing changes
    before = _count(org)
    refusals = [
        (mgr, {"rep": org.rep_c.id, "period": "2025-Q1", "commit": "1"}, 403, "rep_out_of_scope"),  # other unit
        (mgr_sw, {"rep": org.rep_a.id, "period": "2025-Q1", "commit": "1"}, 403, "rep_out_of_scope"),
        (mgr, {"rep": org.mgr.id, "period": "2025-Q1", "commit": "1"}, 403, "rep_out_of_scope"),  # oneself
        (mgr, {"rep": org.rep_a.id, "period": "2025-Q1", "commit": "1"}, 409, "adjustment_exists"),
        (mgr, {"rep": org.rep_b.id, "period": "2025-Q5", "commit": "1"}, 400, "validation_failed"),
        (mgr, {"rep": org.rep_b.id, "period": "2025-Q1"}, 400, "validation_failed"),
        (mgr, {"rep": org.rep_b.id, "period": "2025-Q1", "commit": "10", "best_case": "5"}, 400,
         "validation_failed"),
        (mgr, {"rep": org.rep_b.id, "period": "2025-Q1", "commit": "-5"}, 400, "validation_failed"),
        (mgr, {"rep": org.rep_b.id, "period": "2025-Q1", "commit": "5", "owner": org.mgr_sw.id}, 400,
         "validation_failed"),  # an adjustment is the maker's own
        (rep, {"rep": org.rep_a.id, "period": "2025-Q1", "commit": "1"}, 404, None),  # reps: the object is not theirs
        (fin, {"rep": org.rep_a.id, "period": "2025-Q1", "commit": "1"}, 403, None),
    ]
    for headers, body, status, code in refusals:
        answer = client.post(url, headers=headers, json=body)
        assert answer.status_code == status, (body, answer.get_json())
        if code:
            assert answer.get_json()["error"]["code"] == code, answer.get_json()
    dup = client.post(url, headers=mgr, json={"rep": org.rep_a.id, "period": "2025-Q1", "commit": "1"}).get_json()
    assert dup["error"]["existing_id"] == adjustment["id"]
    assert _count(org) == before
    # the VP may read the manager's adjustment but not change or delete it; a stale version is 409
    current = org.system.get("forecast_adjustment", adjustment["id"])
    refused = client.patch(f"{url}/{adjustment['id']}", headers=vp, json={"commit": "1", "version": current["version"]})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "not_your_adjustment"
    assert client.delete(f"{url}/{adjustment['id']}", headers=vp).status_code == 403
    stale = client.patch(f"{url}/{adjustment['id']}", headers=mgr, json={"commit": "1", "version": 1})
    assert stale.status_code == 409
    assert org.system.get("forecast_adjustment", adjustment["id"]) == current
