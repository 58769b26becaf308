"""The manager's forecast view: the viewer's people rolled up the reporting line, per period,
with each person's own figures beside the adjustments their managers made.

Who: the people whose opportunities the viewer may read and report on, and everyone below the
viewer in the reporting line (`adjustments.forecast_scope`); a viewer who reads every record
(VP, finance) gets the owners of the counted deals and quotas and their manager chains. The
tree follows the `manager` field: each person hangs under their nearest manager in that set,
the others are roots. A rep sees their own row; a manager a subtotal of their team, their own
row and their reps; the VP a subtotal per manager's team with its reps beneath.

Figures are those of the forecast report (closed, commit = commit + closed, best case, pipeline =
all open, weighted, quota, attainment), counted only from the opportunities the viewer may read
(the report's own scoped query). Adjustments are read through the viewer's read scope on
`forecast_adjustment`; a person's adjusted figure is the viewer's own adjustment, else the one
made highest in that person's manager chain; a subtotal adds up its people's adjusted figures
(a person nobody adjusted counts with their own figure).
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa

from ....platform.errors import BadRequest
from ..common import ZERO, money, money_str
from .adjustments import OBJECT, adjustable, forecast_scope, period_kind

MAX_PERIODS = 36


def period_range(first: str | None, last: str | None, period: str) -> list[str]:
    """Every period key from `first` to `last` (both checked: 400 naming the parameter)."""
    for name, key in (("from", first), ("to", last)):
        if key is not None and period_kind(key) != period:
            example = "2025-03" if period == "month" else "2025-Q1"
            raise BadRequest(f"{name} is a {period} key like {example}.", fields={name: [f"A {period} like {example}."]})
    if not first or not last:
        return []
    if first > last:
        raise BadRequest("from is after to.", fields={"from": ["After to."]})
    keys, (year, part) = [], _split(first, period)
    size = 12 if period == "month" else 4
    while len(keys) <= MAX_PERIODS:
        key = f"{year:04d}-{part:02d}" if period == "month" else f"{year:04d}-Q{part}"
        keys.append(key)
        if key == last:
            return keys
        part += 1
        if part > size:
            year, part = year + 1, 1
    raise BadRequest(f"At most {MAX_PERIODS} periods at once.", fields={"to": [f"At most {MAX_PERIODS} periods."]})


def _split(key: str, period: str) -> tuple[int, int]:
    year, rest = key.split("-")
    return int(year), int(rest[1:] if period == "quarter" else rest)


def _chain(directory, user: str) -> list[str]:
    """The user's managers, nearest first (a cycle in the data stops the walk)."""
    out, seen = [], {user}
    manager = (directory.users.get(user) or {}).get("manager")
    while manager and manager not in seen:
        out.append(manager)
        seen.add(manager)
        manager = (directory.users.get(manager) or {}).get("manager")
    return out


def people_of(service, raw_owners: set[str]) -> set[str]:
    access, directory = service.access, service.runtime.directory()
    me = service.principal.user_id
    scope = forecast_scope(access, directory)
    if scope is not None:
        people = scope | ({me} if me else set())
    else:
        below = directory.reports_of(me) if me else set()
        people = set(raw_owners) | below | ({me} if below else set())
        for user in list(people):
            people.update(_chain(directory, user))
    return {u for u in people if u in directory.users}


def _adjustments(service, people: set[str], periods: list[str]) -> list[dict]:
    access = service.access
    if not people or not periods or not access.can(OBJECT, "read"):
        return []
    table = service.table(OBJECT)
    hidden = access.hidden_fields(OBJECT)
    with service._reading() as conn:
        found = conn.execute(sa.select(table.c.id, table.c.version, table.c.owner, table.c.rep, table.c.period,
                                       table.c.commit, table.c.best_case, table.c.note, table.c.updated_at)
                             .where(table.c.deleted_at.is_(None), table.c.rep.in_(sorted(people)),
                                    table.c.period.in_(periods), access.row_filter(OBJECT, "read", table))
                             .order_by(table.c.period, table.c.rep, table.c.owner)).mappings().fetchall()
    out = []
    for row in found:
        out.append({"id": row["id"], "version": row["version"], "owner": row["owner"], "rep": row["rep"],
                    "period": row["period"],
                    "commit": None if "commit" in hidden or row["commit"] is None else money_str(row["commit"]),
                    "best_case": None if "best_case" in hidden or row["best_case"] is None
                    else money_str(row["best_case"]),
                    "note": None if "note" in hidden else row["note"],
                    "updated_at": row["updated_at"].isoformat() if row["updated_at"] else None})
    return out


def rollup(service, raw: dict, quotas: dict, periods: list[str], metrics, blank, add, names_of) -> dict:
    """{"rows": [...], "totals": {period: ...}, "adjustments": [...]}: see the module docstring."""
    directory = service.runtime.directory()
    me = service.principal.user_id
    people = people_of(service, {u for u, _ in raw})
    parent: dict[str, str | None] = {}
    for user in people:
        parent[user] = next((m for m in _chain(directory, user) if m in people), None)
    children: dict[str | None, list[str]] = defaultdict(list)
    adjustments = _adjustments(service, people, periods)
    names = names_of(people | {a["owner"] for a in adjustments if a["owner"]})
    for user, up in parent.items():
        children[up].append(user)
    for kids in children.values():
        kids.sort(key=lambda u: (names.get(u) or "", u))
    by_key: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for adj in adjustments:
        adj["owner_name"] = names.get(adj["owner"])
        adj["mine"] = bool(me) and adj["owner"] == me
        by_key[(adj["rep"], adj["period"])].append(adj)
    can_create = service.access.can(OBJECT, "create")
    rows: list[dict] = []
    totals: dict[str, dict] = {}

    def rank(user: str, adj: dict) -> tuple:
        chain = _chain(directory, user)
        return (adj["mine"], chain.index(adj["owner"]) if adj["owner"] in chain else -1, adj["updated_at"] or "")

    def person(user: str, key: str, depth: int, show: bool) -> tuple[dict, dict]:
        own = raw.get((user, key)) or blank()
        figures = metrics(own, quotas.get((user, key)))
        listed = sorted(by_key.get((user, key), []), key=lambda a: rank(user, a), reverse=True)
        chosen = listed[0] if listed else None
        adjusted = {
            "commit": (chosen or {}).get("commit") or figures["commit"],
            "best_case": (chosen or {}).get("best_case") or figures["best_case"],
            "by": chosen["owner"] if chosen else None, "by_name": chosen["owner_name"] if chosen else None,
        }
        if show or listed or (user, key) in raw or (user, key) in quotas:
            rows.append({"period": key, "kind": "person", "user": user, "name": names.get(user),
                         "manager": (directory.users.get(user) or {}).get("manager"), "parent": parent.get(user),
                         "depth": depth, **figures, "adjusted": adjusted, "adjustments": listed,
                         "mine": next((a for a in listed if a["mine"]), None),
                         "can_adjust": can_create and adjustable(service.access, directory, user)})
        return own, adjusted

    def team(user: str, key: str, depth: int) -> tuple[dict, dict, dict, bool]:
        """Emit `user`'s rows; return (raw figures, quota sum, adjusted sums, any quota)."""
        kids = children.get(user, [])
        if not kids:
            own, adjusted = person(user, key, depth, True)
            quota = quotas.get((user, key))
            return own, {"quota": quota or ZERO}, adjusted, quota is not None
        head = len(rows)
        summed, adjusted = blank(), {"commit": ZERO, "best_case": ZERO}
        quota_sum, any_quota = ZERO, False
        own, own_adjusted = person(user, key, depth + 1, False)
        parts = [(own, {"quota": quotas.get((user, key)) or ZERO}, own_adjusted, (user, key) in quotas)]
        parts += [team(kid, key, depth + 1) for kid in kids]
        for part_raw, part_quota, part_adjusted, has_quota in parts:
            add(summed, part_raw)
            quota_sum += part_quota["quota"]
            any_quota = any_quota or has_quota
            adjusted["commit"] += money(part_adjusted["commit"])
            adjusted["best_case"] += money(part_adjusted["best_case"])
        figures = metrics(summed, quota_sum if any_quota else None)
        team_adjusted = {"commit": money_str(adjusted["commit"]), "best_case": money_str(adjusted["best_case"]),
                         "by": None, "by_name": None}
        rows.insert(head, {"period": key, "kind": "team", "user": user, "name": names.get(user),
                           "manager": (directory.users.get(user) or {}).get("manager"), "parent": parent.get(user),
                           "depth": depth, "team_size": _size(user), **figures, "adjusted": team_adjusted,
                           "adjustments": [], "mine": None, "can_adjust": False})
        return summed, {"quota": quota_sum}, team_adjusted, any_quota

    def _size(user: str) -> int:
        return 1 + sum(_size(kid) for kid in children.get(user, []))

    for key in periods:
        summed, adjusted = blank(), {"commit": ZERO, "best_case": ZERO}
        quota_sum, any_quota = ZERO, False
        for root in children.get(None, []):
            part_raw, part_quota, part_adjusted, has_quota = team(root, key, 0)
            add(summed, part_raw)
            quota_sum += part_quota["quota"]
            any_quota = any_quota or has_quota
            adjusted["commit"] += money(part_adjusted["commit"])
            adjusted["best_case"] += money(part_adjusted["best_case"])
        totals[key] = {**metrics(summed, quota_sum if any_quota else None),
                       "adjusted": {"commit": money_str(adjusted["commit"]),
                                    "best_case": money_str(adjusted["best_case"])}}
    return {"rows": rows, "totals": totals, "adjustments": adjustments}
