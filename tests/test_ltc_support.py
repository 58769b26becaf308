"""Shared fixtures and helpers for the lead-to-cash tests (no tests of its own).

The plugin is set up through the public PluginContext, as the plugin loader will do; when
the loader already loaded it, nothing is registered twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pytest

import metacrm.platform.reports.api  # noqa: F401  (registers /reports routes before any app exists)
from metacrm.platform.actions import actions
from metacrm.platform.clock import today
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal


def load_plugin(runtime) -> None:
    if runtime.extensions.get("lead_to_cash"):
        return
    import metacrm.plugins.lead_to_cash as plugin
    from metacrm.plugins.api import PluginContext

    plugin.setup(PluginContext(runtime, "lead_to_cash", granted=plugin.MANIFEST["permissions"]))


@pytest.fixture
def ltc(runtime):
    load_plugin(runtime)
    return runtime


@dataclass
class Person:
    id: str
    username: str
    principal: Principal

    def service(self, runtime) -> RecordService:
        return RecordService(runtime, self.principal, source="test")


def admin_service(runtime) -> RecordService:
    return RecordService(runtime, Principal(user_id=None, username="admin", roles=frozenset({"admin"})), source="test")


def active_contract(service: RecordService, data: dict) -> dict:
    """A contract made active the one way there is: through its contract_review approval (here
    recorded through the engine as already approved, as the demo records its history), never by
    setting the status."""
    from metacrm import approval

    contract = service.create("contract", {k: v for k, v in data.items() if k != "status"})
    approval.seed_approved(service.runtime, service.principal, "contract", contract["id"], comment="fixture")
    return service.get("contract", contract["id"])


class Org:
    """A small company: sales (VP) → hardware (manager, reps a and b), software (manager, rep c);
    finance; marketing."""

    def __init__(self, runtime):
        self.runtime = runtime
        system = RecordService(runtime, Principal.system(), source="test")
        self.system = system
        self.dept = {}
        sales = system.create("department", {"name": "sales", "code": "sales"})
        self.dept["sales"] = sales["id"]
        for name in ("hardware", "software"):
            self.dept[name] = system.create("department", {"name": name, "code": name, "parent": sales["id"]})["id"]
        for name in ("finance", "marketing"):
            self.dept[name] = system.create("department", {"name": name, "code": name})["id"]
        self.vp = self._user("vp", ["vp_sales"], "sales")
        self.mgr = self._user("mgr", ["sales_manager"], "hardware", self.vp)
        self.rep_a = self._user("rep_a", ["sales_rep"], "hardware", self.mgr)
        self.rep_b = self._user("rep_b", ["sales_rep"], "hardware", self.mgr)
        self.mgr_sw = self._user("mgr_sw", ["sales_manager"], "software", self.vp)
        self.rep_c = self._user("rep_c", ["sales_rep"], "software", self.mgr_sw)
        self.fin = self._user("fin", ["finance"], "finance")
        self.mkt = self._user("mkt", ["marketing"], "marketing")
        runtime.directory_changed()

    def _user(self, username: str, roles: list[str], dept: str, manager: Person | None = None) -> Person:
        values = {"username": username, "display_name": username.upper(), "roles": roles,
                  "department": self.dept[dept]}
        if manager:
            values["manager"] = manager.id
        created = self.system.create("user", values)
        principal = Principal(user_id=created["id"], username=username, roles=frozenset(roles),
                              department=self.dept[dept], manager=manager.id if manager else None)
        return Person(created["id"], username, principal)


@pytest.fixture
def org(ltc):
    return Org(ltc)


def run_action(runtime, person_or_service, object_name: str, record_id: str, name: str, params: dict | None = None):
    """Call a record action the way the actions endpoint does: fn(service, record, params) with a
    service bound to the caller and a transaction."""
    service = person_or_service if isinstance(person_or_service, RecordService) else person_or_service.service(runtime)
    action = actions(runtime).record_action(object_name, name)
    assert action is not None, f"no action {name} on {object_name}"
    with service.transaction():
        record = service.get_record(object_name, record_id)
        return action.fn(service, record, params or {})


def days(n: int) -> date:
    return today() + timedelta(days=n)


def D(value) -> Decimal:
    return Decimal(str(value))


def sweep(runtime, name: str) -> str:
    for job_name, fn in runtime.sweeps:
        if job_name.endswith(name):
            return fn(runtime)
    raise AssertionError(f"no job {name}")
