"""Merging duplicates: one survivor keeps the chosen values and the children of the losers."""

from __future__ import annotations

import sqlalchemy as sa

from .. import schemas
from ..errors import BadRequest, Forbidden, StaleVersion


def merge(service, object_name: str, survivor_id: str, losers: list, values: dict | None = None,
          versions: dict | None = None) -> dict:
    """Merge `losers` into the survivor: chosen field values, children moved, losers deleted.

    values: {field: value} or {field: {"from": <survivor or loser id>}}. Children (lookups
    pointing at a loser) move to the survivor through system_update; both sides get a
    "merge" history entry; losers go to the recycle bin.
    versions: {id: version} as the caller read them (the merge page): a record changed since
    is refused with StaleVersion (409) before anything is written.
    """
    obj = service.obj(object_name)
    values = values or {}
    if not isinstance(losers, list) or not losers or not all(isinstance(i, str) for i in losers):
        raise BadRequest("losers must be a non-empty list of record ids.", fields={"losers": ["Required."]})
    if not isinstance(values, dict):
        raise BadRequest("values must be an object of field: value.", fields={"values": ["Not an object."]})
    losers = list(dict.fromkeys(losers))
    if survivor_id in losers:
        raise BadRequest("A record cannot be merged into itself.", fields={"losers": ["Contains the survivor."]})
    moved: dict[str, int] = {}
    with service.transaction() as tx:
        survivor = service.get_record(obj.name, survivor_id)
        if not service.access.allows_row(obj.name, "edit", survivor):
            raise Forbidden(f"You may not edit this {obj.name} record.")
        records = {survivor_id: survivor}
        for loser_id in losers:
            loser = service.get_record(obj.name, loser_id)
            if not service.access.allows_row(obj.name, "delete", loser):
                raise Forbidden(f"You may not delete the {obj.name} record {loser_id}.")
            records[loser_id] = loser
        for record_id, version in (versions or {}).items():
            current = records.get(record_id)
            if current is not None and version is not None and int(version) != current["version"]:
                raise StaleVersion(f"The record {record_id} has changed since you read it "
                                   f"(version {version}, now {current['version']}).",
                                   current_version=current["version"], record=record_id)
        data = {}
        for name, value in values.items():
            if isinstance(value, dict) and set(value) == {"from"}:
                source = records.get(value["from"])
                fdef = obj.all_fields.get(name)
                if source is None or fdef is None:
                    raise BadRequest("A merged value must come from the survivor or a loser.",
                                     fields={name: ["Unknown source record or field."]})
                data[name] = schemas.to_json_value(fdef, source.get(name))
            else:
                data[name] = value
        for child, fdef in service.registry.children_of(obj.name):
            if fdef.system:
                continue
            table = service.compiled.tables[child.name]
            condition = [table.c[fdef.name].in_(losers), table.c.deleted_at.is_(None)]
            if fdef.polymorphic:
                condition.append(table.c[f"{fdef.name}__object"] == obj.name)
            rows = tx.conn.execute(sa.select(table.c.id, table.c[fdef.name]).where(*condition)).fetchall()
            for row in rows:
                service.system_update(child.name, row.id, {fdef.name: survivor_id}, action="merge",
                                      note=f"moved from {obj.name} {row[1]} merged into {survivor_id}")
            if rows:
                moved[f"{child.name}.{fdef.name}"] = len(rows)
        for loser_id in losers:
            service.write_history(tx.conn, obj.name, loser_id, "merge", {}, f"merged into {obj.name} {survivor_id}")
            service.delete(obj.name, loser_id)
        if data:
            ctx = service.update_record(obj.name, survivor_id, data)
            record = ctx.record
        else:
            record = service.get_record(obj.name, survivor_id)
        service.write_history(tx.conn, obj.name, survivor_id, "merge", {"merged": [None, losers]},
                              f"merged {obj.name} {', '.join(losers)}")
    return {"record": service.to_json(obj, record), "merged": losers, "moved": moved}
