"""`metacrm init --demo`: the demo company (at a small scale here; the full one is timed in
docs/lead-to-cash.md) has people in every role, data in every stage, and logins that work."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from metacrm.platform.records import RecordService
from metacrm.platform.reports import run_report
from metacrm.platform.security import Principal
from metacrm.plugins.lead_to_cash.demo import DEFAULT_PASSWORD, seed_demo
from tests import test_ltc_support as support

ltc = support.ltc  # fixture


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_demo_company_small_scale(ltc, client, monkeypatch):
    monkeypatch.delenv("METACRM_DEMO_PASSWORD", raising=False)
    summary = seed_demo(ltc, scale=0.05)
    assert "demo company seeded" in summary and DEFAULT_PASSWORD in summary and "vp.wang" in summary
    assert seed_demo(ltc, scale=0.05) == "demo company already present: nothing added"
    system = RecordService(ltc, Principal.system())
    tables = ltc.compiled().tables

    def count(object_name, *where):
        table = tables[object_name]
        with ltc.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).where(table.c.deleted_at.is_(None), *where)).scalar()

    users = tables["user"]
    with ltc.engine.connect() as conn:
        roles = [r for (r,) in conn.execute(sa.select(users.c.roles))]
        hashes = [h for (h,) in conn.execute(sa.select(users.c.password).where(users.c.username != "admin"))]
    # issue 13.11: one password for every demo user, but each hash has its own salt
    assert len(hashes) >= 10 and len(set(hashes)) == len(hashes)
    assert len({h.split("$")[1] for h in hashes}) == len(hashes)
    from metacrm.platform.security import verify_password

    assert all(verify_password(h, DEFAULT_PASSWORD) for h in hashes[:3])
    flat = {role for value in roles for role in (value if isinstance(value, list) else json.loads(value))}
    assert flat >= {"admin", "sales_rep", "sales_manager", "vp_sales", "marketing", "finance"}
    departments = {name for (name,) in ltc.engine.connect().execute(sa.select(tables["department"].c.name))}
    assert departments >= {"hardware", "software", "it_services", "solutions", "marketing", "finance"}
    assert count("campaign") >= 5 and count("lead") == 100
    assert count("opportunity") >= 8 and count("account") >= 10
    assert count("lead", tables["lead"].c.status == "converted") >= 5
    assert count("quote") >= 1 and count("contract") >= 1 and count("payment_plan") >= 1
    assert count("commission_line") >= 1 and count("quota") >= 1
    token = client.post("/api/v1/auth/token", json={"username": "hardware.rep1", "password": DEFAULT_PASSWORD})
    assert token.status_code in (200, 201)
    headers = {"Authorization": "Bearer " + token.get_json()["token"]}
    assert client.get("/api/v1/reports/forecast", headers=headers).status_code == 200
    assert run_report(system, "campaign_roi", {})["overall"]["leads"] > 0
    assert run_report(system, "aging", {})["name"] == "aging" and count("instalment") >= 3
