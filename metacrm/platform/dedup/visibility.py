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
TRANSFER_OFFER = {"method": "POST", "path": "/api/v1/transfer-requests"}


def owner_names(conn: sa.Connection, tables, object_name: str, ids: Iterable[str]) -> list[str]:
    """The display names (or usernames) of the owners of these records, sorted, once each:
    what a registration (报备) conflict may say about a record the caller cannot read."""
    table = tables[object_name]
    if tables.get("user") is None or "owner" not in table.c:
        return []
    users = tables["user"]
    asked = sorted(i for i in ids if isinstance(i, str))[:500]
    rows = conn.execute(sa.select(users.c.display_name, users.c.username).select_from(
        table.join(users, users.c.id == table.c.owner)).where(table.c.id.in_(asked))).fetchall()
    return sorted({row.display_name or row.username for row in rows})


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
    out, anonymous = [], {}
    for match in matches:
        if match.get("id") in own or (match["object"], match.get("id")) in readable:
            out.append(match)
        else:
            anonymous.setdefault((match["object"], match["rule"]), []).append(match.get("id"))
    for (object_name, rule), ids in anonymous.items():  # one line per rule: no count of hidden records
        line = {"object": object_name, "rule": rule, "hidden": True, "message": HIDDEN_MESSAGE}
        owners = owner_names(conn, tables, object_name, ids)
        if owners:
            # 报备: the holder's name (and only that) is said, with the way to ask for the record
            line.update(owners=owners, message=f"{HIDDEN_MESSAGE[:-1]}, held by {', '.join(owners)}.",
                        transfer=TRANSFER_OFFER)
        out.append(line)
    return out


def any_hidden(matches: list[dict]) -> bool:
    return any(m.get("hidden") for m in matches)
