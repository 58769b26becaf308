"""RecordService: the one write path for every object (the package docstring has the steps).

Create, update, delete (with the children's on_delete rules) and restore for one caller, and
system_update for the platform's own conditional writes. Reads, input checks, unique checks,
history and the batch path live in the modules named after them and are mixed in here, so
every caller still holds one object.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from ...metadata.model import FieldDef, ObjectDef
from ...metadata.registry import UnknownObject
from .. import schemas
from ..clock import utcnow
from ..errors import Conflict, Forbidden, NotFound, OwnerRefused, StaleVersion, ValidationFailed
from ..filters import FilterContext, compile_sql
from ..runtime import Runtime, Tx
from ..security import Access, Principal, principal_from_row
from .batch import BatchCreate
from .context import SaveContext, new_id
from .history import ALWAYS_TRACKED, RecordHistory
from .input import RecordInput
from .reads import RecordReads
from .unique import UniqueValues, unique_guard


class RecordService(RecordReads, RecordHistory, RecordInput, UniqueValues, BatchCreate):
    """Record operations for one principal; one instance per request or job."""

    def __init__(self, runtime: Runtime, principal: Principal, tx: Tx | None = None, source: str = "api"):
        self.runtime = runtime
        self.principal = principal
        self.source = source
        self._tx = tx
        compiled = runtime.compiled()
        self.compiled = compiled
        self.registry = compiled.registry
        self.access = Access(self.registry, principal, runtime.directory())
        self._writable: dict[str, tuple[list[FieldDef], dict[str, str]]] = {}
        self._known_refs: dict[str, tuple[set, set]] | None = None  # batch: target -> (asked, found)

    # --- plumbing ------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        if self._tx is not None:
            yield self._tx
            return
        with self.runtime.transaction() as tx:
            self._tx = tx
            try:
                yield tx
            finally:
                self._tx = None

    @contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        if self._tx is not None:
            yield self._tx.conn
            return
        with self.runtime.reading() as conn:
            yield conn

    def obj(self, name: str) -> ObjectDef:
        try:
            return self.registry.object(name)
        except UnknownObject:
            raise NotFound(f"Unknown object {name!r}.", code="unknown_object") from None

    def table(self, name: str) -> sa.Table:
        return self.compiled.tables[name]

    def _require_object_access(self, obj: ObjectDef, action: str) -> None:
        if not self.access.can(obj.name, action):
            if not self.access.can(obj.name, "read"):
                raise NotFound(f"Unknown object {obj.name!r}.", code="unknown_object")
            raise Forbidden(f"You may not {action} {obj.name} records.")

    # --- writing -------------------------------------------------------------------------

    def create(self, object_name: str, data: dict, **options: Any) -> dict:
        return self.to_json(self.obj(object_name), self.create_record(object_name, data, **options).record)

    def create_record(self, object_name: str, data: dict, **options: Any) -> SaveContext:
        obj = self.obj(object_name)
        self._require_object_access(obj, "create")
        with self.transaction() as tx:
            values = self.coerce(obj, data, creating=True, conn=tx.conn)
            ctx = self._prepare_create(tx, obj, values, data, options)
            self._write_create(ctx)
        return ctx

    def _prepare_create(self, tx: Tx, obj: ObjectDef, values: dict, data: dict, options: dict) -> SaveContext:
        now = utcnow()
        me = self.principal.user_id
        record = {name: None for name in obj.all_fields}
        record.update(values)
        if record.get("owner") and record["owner"] != me and self.access.scope(obj.name, "edit") != "all":
            raise ValidationFailed("You may not create records for another owner.",
                                   fields={"owner": ["Not allowed."]})
        if "owner" not in values and not options.get("no_owner"):
            record["owner"] = me
        if record["record_type"] is None and obj.record_types:
            record["record_type"] = obj.record_types[0]
        elif record["record_type"] is not None and record["record_type"] not in obj.record_types:
            raise ValidationFailed("Unknown record type.", fields={"record_type": ["Not one of this object's types."]})
        record.update(
            id=options.get("id") or new_id(),
            owner_since=now if record.get("owner") else None,
            created_at=now,
            created_by=me,
            updated_at=now,
            updated_by=me,
            version=1,
        )
        self._defaults(obj, record)
        ctx = SaveContext(self, tx, self.registry, obj, self.table(obj.name), "create", record, None,
                          self.principal, self.access, options.get("source", self.source), input=data,
                          options=options)
        return ctx

    def _write_create(self, ctx: SaveContext) -> None:
        obj = ctx.obj
        self.runtime.hooks.run("before_save", ctx)  # hooks may fill required fields
        self._check_required(obj, ctx.record)
        self.check_owner(ctx)
        self._check_unique(ctx.conn, obj, ctx.record, list(obj.fields))
        # Parameters, not .values(): the compiled INSERT is cached instead of rebuilt per record.
        with unique_guard(obj):
            ctx.conn.execute(ctx.table.insert(), self._storage_row(obj, ctx.table, ctx.record))
        changes = {name: [None, self._history_value(obj, name, ctx.record[name])]
                   for name in self._tracked(obj) if ctx.record.get(name) is not None}
        self.write_history(ctx.conn, obj.name, ctx.record["id"], "create", changes)
        self._write_notes(ctx)
        self.runtime.hooks.run("after_save", ctx)
        self._after_write(ctx)

    def update(self, object_name: str, record_id: str, data: dict, version: int | None = None,
               **options: Any) -> dict:
        ctx = self.update_record(object_name, record_id, data, version=version, **options)
        return self.to_json(ctx.obj, ctx.record)

    def update_record(self, object_name: str, record_id: str, data: dict, version: int | None = None,
                      **options: Any) -> SaveContext:
        obj = self.obj(object_name)
        self._require_object_access(obj, "read")
        with self.transaction() as tx:
            old = self._visible(obj, self.fetch(tx.conn, obj, record_id))
            if not self.access.allows_row(obj.name, "edit", old):
                raise Forbidden(f"You may not edit this {obj.name} record.")
            if version is not None and int(version) != old["version"]:
                raise StaleVersion(
                    f"The record has changed since you read it (version {version}, now {old['version']}).",
                    current_version=old["version"],
                )
            values = self.coerce(obj, data, creating=False, conn=tx.conn, old=old)
            if "record_type" in values and values["record_type"] not in obj.record_types:
                raise ValidationFailed("Unknown record type.", fields={"record_type": ["Not one of this object's types."]})
            ctx = self._apply_update(tx, obj, old, values, data, options)
        return ctx

    def _apply_update(self, tx: Tx, obj: ObjectDef, old: dict, values: dict, data: dict,
                      options: dict) -> SaveContext:
        record = dict(old)
        record.update(values)
        ctx = SaveContext(self, tx, self.registry, obj, self.table(obj.name), "update", record, old,
                          self.principal, self.access, options.get("source", self.source), input=data,
                          options=options)
        self.runtime.hooks.run("before_save", ctx)
        self._check_required(obj, ctx.record)
        self.check_owner(ctx)
        changed = [n for n in obj.all_fields if ctx.record.get(n) != old.get(n)]
        if not changed and not ctx.notes:
            return ctx
        now = utcnow()
        if ctx.record.get("owner") != old.get("owner"):
            ctx.record["owner_since"] = owner_since_after(old, ctx.record, now)
            ctx.record["previous_owner"] = old.get("owner") or old.get("previous_owner")
        ctx.record.update(updated_at=now, updated_by=self.principal.user_id, version=old["version"] + 1)
        self._check_unique(tx.conn, obj, ctx.record, changed)
        row = self._storage_row(obj, ctx.table, ctx.record)
        row.pop("id")
        with unique_guard(obj):
            result = tx.conn.execute(
                ctx.table.update()
                .where(ctx.table.c.id == old["id"], ctx.table.c.version == old["version"])
                .values(**row)
            )
        if result.rowcount != 1:
            raise StaleVersion("The record was changed by someone else meanwhile; read it again.")
        changes = {
            name: [self._history_value(obj, name, old.get(name)), self._history_value(obj, name, ctx.record.get(name))]
            for name in self._tracked(obj)
            if old.get(name) != ctx.record.get(name)
        }
        if changes:
            self.write_history(tx.conn, obj.name, old["id"], "update", changes)
        self._write_notes(ctx)
        self.runtime.hooks.run("after_save", ctx)
        self._after_write(ctx)
        self._hand_over(tx, obj, old, ctx.record)
        return ctx

    def system_update(self, object_name: str, record_id: str, values: dict, *, where: Any = None,
                      action: str = "update", note: str | None = None, track: bool = True) -> dict | None:
        """A conditional update by the platform itself (claims, recycles, approvals).

        `where` narrows the UPDATE (e.g. owner IS NULL for a claim), so concurrent callers
        cannot both win. Returns the new record, or None if the condition did not hold.
        Runs the same hooks and history as any save.
        """
        obj = self.obj(object_name)
        copied = [name for name in values if name in obj.fields and obj.fields[name].type == "password"]
        if copied:
            # a password is only ever stored as a hash the input path made for this record (its
            # own salt); a value written here would be a hash copied from elsewhere (issue 13.11)
            raise ValueError(f"system_update cannot write the password field(s) {copied}: use update()")
        with self.transaction() as tx:
            table = self.table(obj.name)
            old = self.fetch(tx.conn, obj, record_id, for_update=True)
            if old is None:
                return None
            record = dict(old)
            record.update(values)
            now = utcnow()
            if record.get("owner") != old.get("owner"):
                if "owner_since" not in values:
                    record["owner_since"] = owner_since_after(old, record, now)
                if "previous_owner" not in values:
                    record["previous_owner"] = old.get("owner") or old.get("previous_owner")
            record.update(updated_at=now, updated_by=self.principal.user_id, version=old["version"] + 1)
            ctx = SaveContext(self, tx, self.registry, obj, table, "update", record, old, self.principal,
                              self.access, "system", options={"system_action": action})
            self.runtime.hooks.run("before_save", ctx)
            self.check_owner(ctx)
            row = self._storage_row(obj, table, ctx.record)
            row.pop("id")
            query = table.update().where(table.c.id == old["id"], table.c.version == old["version"])
            if where is not None:
                query = query.where(where)
            with unique_guard(obj):
                if tx.conn.execute(query.values(**row)).rowcount != 1:
                    return None
            changes = {
                name: [self._history_value(obj, name, old.get(name)), self._history_value(obj, name, ctx.record.get(name))]
                for name in (self._tracked(obj) if track else ALWAYS_TRACKED)
                if old.get(name) != ctx.record.get(name)
            }
            self.write_history(tx.conn, obj.name, old["id"], action, changes, note)
            self._write_notes(ctx)
            self.runtime.hooks.run("after_save", ctx)
            self._after_write(ctx)
            self._hand_over(tx, obj, old, ctx.record)
            return ctx.record

    def delete(self, object_name: str, record_id: str) -> None:
        obj = self.obj(object_name)
        self._require_object_access(obj, "read")
        with self.transaction() as tx:
            old = self._visible(obj, self.fetch(tx.conn, obj, record_id))
            if not self.access.allows_row(obj.name, "delete", old):
                raise Forbidden(f"You may not delete this {obj.name} record.")
            self._soft_delete(tx, obj, old, set())

    def _soft_delete(self, tx: Tx, obj: ObjectDef, old: dict, seen: set, *, at: Any = None,
                     cascade_from: tuple[str, str] | None = None) -> None:
        """Delete one record and, by its children's on_delete rules, what hangs from it. A
        cascade removes a child only if the caller may delete that child (else the whole delete
        is refused, 403 naming the child object), and stamps it with the parent's deleted_at so
        restoring the parent brings back exactly what the cascade took."""
        if (obj.name, old["id"]) in seen:
            return
        seen.add((obj.name, old["id"]))
        now = at or utcnow()
        record = dict(old, deleted_at=now, updated_at=now, updated_by=self.principal.user_id,
                      version=old["version"] + 1)
        ctx = SaveContext(self, tx, self.registry, obj, self.table(obj.name), "delete", record, old,
                          self.principal, self.access, self.source)
        self.runtime.hooks.run("before_save", ctx)
        for child, fdef in self.registry.children_of(obj.name):
            ctable = self.table(child.name)
            condition = sa.and_(ctable.c[fdef.name] == old["id"], ctable.c.deleted_at.is_(None))
            if fdef.system:
                continue
            if fdef.on_delete == "restrict":
                if tx.conn.execute(sa.select(ctable.c.id).where(condition).limit(1)).first():
                    raise Conflict(
                        f"Cannot delete: {child.name} records still refer to it through {fdef.name}.",
                        code="delete_restricted",
                    )
            elif fdef.on_delete == "cascade":
                for row in tx.conn.execute(sa.select(ctable).where(condition)).fetchall():
                    child_record = self.row_to_record(child, row)
                    if not self.access.allows_row(child.name, "delete", child_record):
                        raise Forbidden(
                            f"Cannot delete: it has {child.name} records (through {fdef.name}) that you may "
                            f"not delete.", code="cascade_forbidden", object=child.name, field=fdef.name)
                    self._soft_delete(tx, child, child_record, seen, at=now,
                                      cascade_from=(obj.name, old["id"]))
            else:
                ids = [r.id for r in tx.conn.execute(sa.select(ctable.c.id).where(condition))]
                for child_id in ids:
                    self.system_update(child.name, child_id, {fdef.name: None}, note=f"{obj.name} deleted")
        result = tx.conn.execute(
            ctx.table.update()
            .where(ctx.table.c.id == old["id"], ctx.table.c.version == old["version"])
            .values(deleted_at=now, updated_at=now, updated_by=self.principal.user_id, version=old["version"] + 1)
        )
        if result.rowcount != 1:
            raise StaleVersion("The record was changed by someone else meanwhile; read it again.")
        self.write_history(tx.conn, obj.name, old["id"], "delete", {},
                           f"cascade from {cascade_from[0]} {cascade_from[1]}" if cascade_from else None)
        self.runtime.hooks.run("after_save", ctx)
        self._after_write(ctx)

    def _restore_cascaded(self, tx: Tx, obj: ObjectDef, parent: dict, seen: set) -> None:
        """Bring back the children a cascade removed with `parent`: those deleted in the same
        delete (the same deleted_at) through a cascading lookup to it. Children deleted on their
        own, before or after, stay in the recycle bin."""
        for child, fdef in self.registry.children_of(obj.name):
            if fdef.system or fdef.on_delete != "cascade":
                continue
            ctable = self.table(child.name)
            rows = tx.conn.execute(sa.select(ctable).where(
                ctable.c[fdef.name] == parent["id"], ctable.c.deleted_at == parent["deleted_at"])).fetchall()
            for row in rows:
                record = self.row_to_record(child, row)
                if (child.name, record["id"]) in seen:
                    continue
                if not self.access.allows_row(child.name, "delete", record):
                    raise Forbidden(
                        f"Cannot restore: the delete also removed {child.name} records that you may not restore.",
                        code="cascade_forbidden", object=child.name, field=fdef.name)
                self._restore_one(tx, child, record, seen, note=f"cascade from {obj.name} {parent['id']}")

    def _restore_one(self, tx: Tx, obj: ObjectDef, old: dict, seen: set, note: str | None = None) -> dict:
        seen.add((obj.name, old["id"]))
        now = utcnow()
        record = dict(old, deleted_at=None, updated_at=now, updated_by=self.principal.user_id,
                      version=old["version"] + 1)
        ctx = SaveContext(self, tx, self.registry, obj, self.table(obj.name), "restore", record, old,
                          self.principal, self.access, self.source)
        self.runtime.hooks.run("before_save", ctx)
        self._check_unique(tx.conn, obj, record, list(obj.fields))
        with unique_guard(obj):
            tx.conn.execute(
                ctx.table.update().where(ctx.table.c.id == old["id"])
                .values(deleted_at=None, updated_at=now, updated_by=self.principal.user_id,
                        version=record["version"])
            )
        self.write_history(tx.conn, obj.name, old["id"], "restore", {}, note)
        self.runtime.hooks.run("after_save", ctx)
        self._after_write(ctx)
        if old.get("deleted_at") is not None:
            self._restore_cascaded(tx, obj, old, seen)
        return record

    def restore(self, object_name: str, record_id: str) -> dict:
        obj = self.obj(object_name)
        self._require_object_access(obj, "read")
        with self.transaction() as tx:
            old = self._visible(obj, self.fetch(tx.conn, obj, record_id, deleted=True))
            if not self.access.allows_row(obj.name, "delete", old):
                raise Forbidden(f"You may not restore this {obj.name} record.")
            record = self._restore_one(tx, obj, old, set())
        return self.to_json(obj, record)

    # --- owners ----------------------------------------------------------------------------

    def _hand_over(self, tx: Tx, obj: ObjectDef, old: dict, record: dict) -> None:
        """A record changed owner: the children linked to it through a lookup declared
        `transfer_with_parent` (and matching its `when`, e.g. the open ones) that the previous
        owner held move to the new owner, each with a `transfer` history entry naming both
        owners and the parent. Runs inside the same transaction, through system_update, so the
        owner rule holds for every child (an ineligible new owner refuses the whole hand-over)
        and grandchildren follow in turn."""
        before, after = old.get("owner"), record.get("owner")
        if not before or not after or before == after:
            return
        for child, fdef in self.registry.children_of(obj.name):
            transfer = fdef.raw.get("transfer_with_parent")
            if not transfer or fdef.system or fdef.type != "lookup":
                continue
            ctable = self.table(child.name)
            where = [ctable.c[fdef.name] == old["id"], ctable.c.deleted_at.is_(None), ctable.c.owner == before]
            if isinstance(transfer, dict) and transfer.get("when"):
                where.append(compile_sql(transfer["when"], ctable, child.all_fields, FilterContext.current()))
            ids = [row.id for row in tx.conn.execute(sa.select(ctable.c.id).where(*where).order_by(ctable.c.id))]
            for child_id in ids:
                self.system_update(child.name, child_id, {"owner": after}, where=ctable.c.owner == before,
                                   action="transfer",
                                   note=f"moved with {obj.name} {old['id']} from owner {before} to {after}")

    def check_owner(self, ctx: SaveContext) -> None:
        """The one owner rule of the write path (every create, edit, import row, claim, pool
        assignment, round robin, workflow action and plugin hook ends here, after the hooks
        that may pick an owner):

        - a record is only given to someone who may hold it: a user whose roles may read the
          object and edit it (a role that grants the object read-only, e.g. a rep's payments or
          quotas, may still hold it). Otherwise 422 `owner_not_eligible` naming the user;
        - a record that had an owner keeps one, unless the caller may edit every record of the
          object (admins) or the platform moves it into a pool (release, recycle, a workflow's
          assign-to-pool): a rep cannot hide a record from the hierarchy by sending
          `"owner": null` (422 `owner_required`). A new record may start without an owner only
          if it enters a pool.
        """
        record, old = ctx.record, ctx.old
        new_owner = record.get("owner")
        before = (old or {}).get("owner")
        if new_owner == before and ctx.op != "create":
            return
        if new_owner is None:
            if self.principal.is_system or self.access.scope(ctx.obj.name, "edit") == "all":
                return
            asked = "owner" in (ctx.input or {})  # the caller's own input cleared it
            if ctx.op == "create" and (record.get("pool") or not asked):
                return  # a new record for a pool (or one a hook leaves for later assignment)
            if not asked and (ctx.options.get("system_action") or record.get("pool")):
                return  # the platform's own release / recycle / workflow move into a pool
            raise OwnerRefused(
                "A record cannot be left without an owner: give it to someone, or release it to its pool.",
                code="owner_required", fields={"owner": ["An owner is required."]})
        refusal = self.owner_refusal(ctx.conn, ctx.obj.name, new_owner)
        if refusal:
            raise OwnerRefused(refusal, fields={"owner": [refusal]}, user=new_owner)

    def owner_refusal(self, conn: sa.Connection, object_name: str, user_id: str) -> str | None:
        """Why `user_id` may not hold records of `object_name`, or None if they may."""
        cache = self.__dict__.setdefault("_owner_checks", {})
        key = (object_name, user_id)
        if key in cache:
            return cache[key]
        users = self.table("user")
        row = conn.execute(sa.select(users.c.id, users.c.username, users.c.display_name, users.c.roles,
                                     users.c.department, users.c.manager)
                           .where(users.c.id == user_id, users.c.deleted_at.is_(None))).mappings().first()
        if row is None:
            answer: str | None = f"{user_id} is not a user who can hold records."
        else:
            values = dict(row)
            if isinstance(values["roles"], str):
                import json

                values["roles"] = json.loads(values["roles"])
            # the live registry: a role applied since this service was made still counts
            holder = Access(self.runtime.compiled().registry, principal_from_row(values), self.access.directory)
            read_only = not any("edit" in ((role.get("objects") or {}).get(object_name) or {})
                                for role in holder._roles)
            if holder.can(object_name, "read") and (holder.can(object_name, "edit") or read_only):
                answer = None
            else:
                who = values.get("display_name") or values["username"]
                answer = (f"{who} ({values['username']}) may not hold {object_name} records: "
                          f"their roles cannot read and edit them.")
        cache[key] = answer
        return answer

    def _storage_row(self, obj: ObjectDef, table: sa.Table, record: dict) -> dict:
        plan = self.compiled.cache.get(("storage_plan", obj.name))
        if plan is None:
            converted = [(n, f) for n, f in obj.all_fields.items() if n in table.c and f.value_type == "multipicklist"]
            skip = {c for c, _ in converted}
            plain = [column.name for column in table.c if column.name not in skip]
            plan = self.compiled.cache[("storage_plan", obj.name)] = (converted, plain)
        converted, plain = plan
        row = {name: record.get(name) for name in plain if name in record or name in obj.all_fields}
        for name, fdef in converted:
            row[name] = schemas.to_storage(fdef, record.get(name))
        return row

    def _after_write(self, ctx: SaveContext) -> None:
        if ctx.obj.name in ("user", "department"):
            ctx.tx.after_commit(self.runtime.directory_changed)


def owner_since_after(old: dict, record: dict, now) -> Any:
    """owner_since after an owner change that does not name it: a record handed from one owner
    to another (admin reassignment, workflow action) keeps its clock, so pool protection and
    recycling are not restarted; a record that had no owner starts one; no owner, no clock.
    Claims and assignments from a pool set owner_since themselves."""
    if not record.get("owner"):
        return None
    if old.get("owner") and old.get("owner_since"):
        return old["owner_since"]
    return now
