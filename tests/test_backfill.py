"""Formulas and rollups an admin adds (or changes) after records exist get their values on
every existing record at once — not only on the records saved afterwards — and that is no
edit: versions, update times and history stay as they were (SQLite and PostgreSQL)."""

from __future__ import annotations

import copy
from decimal import Decimal

import sqlalchemy as sa

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform import db
from metacrm.platform.apply import apply_change
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal

PROJECT = {"kind": "object", "name": "bf_project", "label": "Project", "name_field": "title",
           "fields": [{"name": "title", "type": "text"}, {"name": "budget", "type": "currency"},
                      {"name": "hours", "type": "integer"}]}
TASK = {"kind": "object", "name": "bf_task", "label": "Task", "name_field": "subject",
        "fields": [{"name": "subject", "type": "text"}, {"name": "cost", "type": "currency"},
                   {"name": "done", "type": "boolean"},
                   {"name": "project", "type": "lookup", "target": "bf_project", "on_delete": "cascade"}]}


def _apply(runtime, *docs):
    apply_change(runtime, documents_bundle([copy.deepcopy(d) for d in docs]))


def _rows(runtime, name):
    table = runtime.compiled().tables[name]
    with runtime.engine.connect() as conn:
        return {r.title: r for r in conn.execute(sa.select(table))}


def test_new_and_changed_formulas_and_rollups_fill_existing_records(runtime):
    _apply(runtime, PROJECT, TASK)
    svc = RecordService(runtime, Principal.system(), source="test")
    apollo = svc.create("bf_project", {"title": "Apollo", "budget": "1000.00", "hours": 10})
    gemini = svc.create("bf_project", {"title": "Gemini", "budget": "250.50", "hours": 0})
    empty = svc.create("bf_project", {"title": "Empty"})
    for cost, done in (("100.00", True), ("40.25", False), ("9.75", True)):
        svc.create("bf_task", {"subject": f"t {cost}", "cost": cost, "done": done, "project": apollo["id"]})
    svc.create("bf_task", {"subject": "g", "cost": "5.00", "done": True, "project": gemini["id"]})
    gone = svc.create("bf_task", {"subject": "deleted", "cost": "999.00", "project": gemini["id"]})
    svc.delete("bf_task", gone["id"])
    before = _rows(runtime, "bf_project")
    with runtime.engine.connect() as conn:
        history = conn.execute(sa.select(sa.func.count()).select_from(db.history)).scalar()

    project = copy.deepcopy(PROJECT)
    project["fields"] += [
        {"name": "rate", "type": "formula", "expression": "budget / hours if hours else 0",
         "result_type": "currency"},
        {"name": "spent", "type": "rollup", "child_object": "bf_task", "child_field": "project",
         "function": "sum", "field": "cost", "filter": {"done": True}},
        {"name": "tasks", "type": "rollup", "child_object": "bf_task", "child_field": "project",
         "function": "count"},
        {"name": "left", "type": "formula", "expression": "budget - spent", "result_type": "currency"},
    ]
    _apply(runtime, project, TASK)
    rows = _rows(runtime, "bf_project")
    assert rows["Apollo"].rate == Decimal("100.00") and rows["Gemini"].rate == Decimal("0.00")
    assert rows["Apollo"].spent == Decimal("109.75") and rows["Gemini"].spent == Decimal("5.00")
    assert rows["Empty"].spent == Decimal("0.00") and rows["Empty"].tasks == 0  # no children: 0, not empty
    assert rows["Apollo"].tasks == 3 and rows["Gemini"].tasks == 1  # the deleted task does not count
    assert rows["Apollo"].left == Decimal("890.25") and rows["Empty"].left is None  # no budget: no value
    # derived values, not edits: no version, update time or history changed
    for title, row in rows.items():
        assert (row.version, row.updated_at) == (before[title].version, before[title].updated_at)
    with runtime.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.history)).scalar() == history
    # the record service reads the same values
    assert RecordService(runtime, Principal.system()).get("bf_project", apollo["id"])["left"] == "890.25"

    # a changed expression and a changed rollup filter are recomputed too
    project["fields"][3]["expression"] = "budget * 2"
    project["fields"][4]["filter"] = {"done": False}
    _apply(runtime, project, TASK)
    rows = _rows(runtime, "bf_project")
    assert rows["Gemini"].rate == Decimal("501.00") and rows["Apollo"].spent == Decimal("40.25")
    assert rows["Apollo"].left == Decimal("959.75")  # budget - the new spent
    assert rows["Empty"].tasks == 0 and rows[empty["title"]].spent == Decimal("0.00")


def test_a_value_a_field_cannot_hold_is_left_empty_and_the_apply_stands(runtime):
    _apply(runtime, PROJECT, TASK)
    svc = RecordService(runtime, Principal.system(), source="test")
    svc.create("bf_project", {"title": "Huge", "hours": 2_000_000_000})
    svc.create("bf_project", {"title": "Small", "hours": 3})
    project = copy.deepcopy(PROJECT)
    project["fields"].append({"name": "big", "type": "formula", "expression": "hours * 10000000000",
                              "result_type": "integer"})
    project["fields"].append({"name": "twice", "type": "formula", "expression": "hours * 2",
                              "result_type": "integer"})
    _apply(runtime, project)
    rows = _rows(runtime, "bf_project")
    assert rows["Huge"].big is None and rows["Huge"].twice == 4_000_000_000
    assert rows["Small"].big == 30_000_000_000 and rows["Small"].twice == 6
