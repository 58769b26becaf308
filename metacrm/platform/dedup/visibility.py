"""What a duplicate answer may say: no oracle for records the caller cannot read.

A match the caller may read is named ({object, id, rule}); a match they may not read is only
said to exist ({object, rule, hidden: true, message}) — no id, no name — and a blocking rule
still blocks. Rows of the caller's own import matched in memory are the caller's and stay
named (the import answers them with their row number).
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

HIDDEN_MESSAGE = "A matching record exists that you cannot see."


def redact(access, conn: sa.Connection, tables, matches: list[dict], own_ids: Iterable[str] = ()) -> list[dict]:
    """`matches` with every match the caller (`access`) may not read replaced by an anonymous one."""
    if not matches or access.is_admin:
        return matches
    own = set(own_ids)
    wanted: dict[str, set[str]] = {}
    for match in matches:
        if match.get("id") not in own:
            wanted.setdefault(match["object"], set()).add(match["id"])
    readable: set[tuple[str, str]] = set()
    for object_name, ids in wanted.items():
        if not access.registry.has_object(object_name) or access.scope(object_name, "read") == "none":
            continue
        table = tables[object_name]
        asked = sorted(i for i in ids if isinstance(i, str))
        for first in range(0, len(asked), 500):
            rows = conn.execute(sa.select(table.c.id).where(
                table.c.id.in_(asked[first:first + 500]), table.c.deleted_at.is_(None),
                access.row_filter(object_name, "read", table))).scalars()
            readable.update((object_name, rid) for rid in rows)
    out, anonymous = [], set()
    for match in matches:
        if match.get("id") in own or (match["object"], match.get("id")) in readable:
            out.append(match)
        elif (match["object"], match["rule"]) not in anonymous:
            anonymous.add((match["object"], match["rule"]))  # one line per rule: no count of hidden records
            out.append({"object": match["object"], "rule": match["rule"], "hidden": True,
                        "message": HIDDEN_MESSAGE})
    return out


def any_hidden(matches: list[dict]) -> bool:
    return any(m.get("hidden") for m in matches)
