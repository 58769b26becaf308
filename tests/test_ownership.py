"""Ownership that follows the organisation (issue 13 items 2, 6, 7, 8; issue 14 hand-over).

The organisation is the demo company's shape: a VP in `sales` over two business units,
`hardware` and `software`, each with a manager (reporting to the VP) and reps (reporting to
their manager). Every path that reads or changes rows goes through the scope resolver, so
the tests walk read, list, edit, export, reports, search and pools for each of them.
"""

from __future__ import annotations

import csv
import io
import uuid

import pytest

from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.conftest import make_user
from tests.test_dedup import fast_hash


@pytest.fixture
def quick_passwords(monkeypatch):
    monkeypatch.setattr("metacrm.platform.security.hash_password", fast_hash)
    monkeypatch.setattr("metacrm.platform.records.hash_password", fast_hash)


SOURCE = "web"


@pytest.fixture
def company(runtime, client, quick_passwords):
    system = RecordService(runtime, Principal.system(), source="test")
    run = uuid.uuid4().hex[:6]
    sales = system.create("department", {"name": f"sales {run}"})["id"]
    units = {code: system.create("department", {"name": f"{code} {run}", "parent": sales})["id"]
             for code in ("hardware", "software")}
    people = {"vp": make_user(runtime, client, f"vp_{run}", ["vp_sales"], department=sales)}
    for code in units:
        people[f"{code}.mgr"] = make_user(runtime, client, f"{code}_mgr_{run}", ["sales_manager"],
                                          department=units[code], manager=people["vp"].id)
        for i in (1, 2):
            people[f"{code}.rep{i}"] = make_user(runtime, client, f"{code}_rep{i}_{run}", ["sales_rep"],
                                                 department=units[code], manager=people[f"{code}.mgr"].id)
    people["finance"] = make_user(runtime, client, f"fin_{run}", ["finance"])
    leads = {}
    for key, person in people.items():
        if key in ("vp", "finance"):
            continue
        leads[key] = system.create("lead", {"company": f"Zyxwv {key} {run}", "contact_name": "Pat", "source": SOURCE,
                                            "owner": person.id})
    return {"people": people, "units": units, "leads": leads, "run": run, "system": system}


def _visible_keys(company, ids) -> set[str]:
    return {key for key, lead in company["leads"].items() if lead["id"] in ids}


# which leads each caller reaches
EXPECTED = {
    "vp": {"hardware.mgr", "hardware.rep1", "hardware.rep2", "software.mgr", "software.rep1", "software.rep2"},
    "hardware.mgr": {"hardware.mgr", "hardware.rep1", "hardware.rep2"},
    "software.mgr": {"software.mgr", "software.rep1", "software.rep2"},
    "hardware.rep1": {"hardware.rep1"},
}


@pytest.mark.parametrize("who", sorted(EXPECTED))
def test_managers_reach_their_own_unit_only_on_every_path(company, client, who):
    """The hardware manager reads, lists, edits, exports, reports on and finds the hardware
    reps' leads and never the software reps'; the VP over both units reaches both."""
    caller = company["people"][who]
    h = caller.headers
    expected = EXPECTED[who]
    problems = []

    listed = client.get("/api/v1/records/lead?limit=500", headers=h).get_json()["items"]
    if (got := _visible_keys(company, {i["id"] for i in listed})) != expected:
        problems.append(f"list: {sorted(got)}")
    export = client.get("/api/v1/records/lead/export", headers=h)
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True).lstrip("\ufeff"))))
    if (got := _visible_keys(company, {r["id"] for r in rows})) != expected:
        problems.append(f"export: {sorted(got)}")
    report = client.post("/api/v1/aggregate/lead", json={"group_by": ["owner"]}, headers=h).get_json()
    owners = {row["owner"] for row in report.get("rows", [])}
    reached = {key for key, lead in company["leads"].items() if lead["owner"] in owners}
    if reached != expected:
        problems.append(f"report: {sorted(reached)}")
    for key, lead in company["leads"].items():
        found = client.get("/api/v1/search", query_string={"q": lead["company"], "objects": "lead"},
                           headers=h).get_json()
        ids = {r["id"] for g in found.get("groups", []) for r in g["records"]}
        if (lead["id"] in ids) != (key in expected):
            problems.append(f"search {key}: found {lead['id'] in ids}")
    for key, lead in company["leads"].items():
        read = client.get(f"/api/v1/records/lead/{lead['id']}", headers=h)
        if read.status_code != (200 if key in expected else 404):
            problems.append(f"read {key}: {read.status_code}")
        edit = client.patch(f"/api/v1/records/lead/{lead['id']}", json={"contact_name": "Edited", "version": lead["version"]},
                            headers=h)
        if edit.status_code != (200 if key in expected else 404):
            problems.append(f"edit {key}: {edit.status_code}")
    assert not problems, problems
