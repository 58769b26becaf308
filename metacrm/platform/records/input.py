"""Input: which fields the caller may set, and the validated, typed values a request's data
becomes (generated marshmallow schema, lookups checked, passwords hashed), then defaults and
required fields."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ...metadata.model import SETTABLE_SYSTEM_FIELDS, FieldDef, ObjectDef
from .. import schemas
from ..clock import today, utcnow
from ..errors import BadRequest, ValidationFailed
from ..security import Principal
from ..storage import WIDE


class RecordInput:
    """The input checks of RecordService (mixed into it; uses its access, registry and schemas)."""

    def writable_fields(self, obj: ObjectDef, creating: bool) -> tuple[list[FieldDef], dict[str, str]]:
        """(fields the caller may set, {field: why not} for the others it might try)."""
        cached = self._writable.get(obj.name)
        if cached is None:
            cached = self._writable[obj.name] = self._compute_writable(obj)
        return cached[0], dict(cached[1])

    def _compute_writable(self, obj: ObjectDef) -> tuple[list[FieldDef], dict[str, str]]:
        allowed, refused = [], {}
        privileged = self.access.is_admin or self.principal.is_system
        for name, fdef in obj.all_fields.items():
            access = self.access.field_access(obj.name, name)
            if access == "hidden" and fdef.type != "password":
                continue  # reported as unknown: its existence is not the caller's business
            if fdef.system and name not in SETTABLE_SYSTEM_FIELDS:
                refused[name] = "This field is read-only."
            elif fdef.system:
                allowed.append(fdef)  # owner and record_type: checked in _prepare_create / update_record
            elif fdef.type in ("formula", "rollup", "autonumber"):
                refused[name] = "This field is computed."
            elif access == "read_only" or (fdef.read_only and not privileged):
                refused[name] = "This field is read-only."
            else:
                allowed.append(fdef)
        return allowed, refused

    def coerce(self, obj: ObjectDef, data: dict, *, creating: bool, conn: sa.Connection,
               old: dict | None = None) -> dict:
        """Validated, typed values from input; raises ValidationFailed with every field's errors.

        A lookup must name a record the caller may read (else "No such record.", the same answer
        as for an id that does not exist, so ids cannot be probed); on update, a lookup that keeps
        its current value (`old`) is not checked again."""
        if not isinstance(data, dict):
            raise BadRequest("The record must be a JSON object.")
        data = dict(data)
        data.pop("version", None) if not creating else None
        if not creating:
            data.pop("id", None)
        allowed, refused = self.writable_fields(obj, creating)
        errors: dict[str, list[str]] = {}
        for name in list(data):
            if name in refused:
                errors[name] = [refused.pop(name)]
                data.pop(name)
        key = (obj.name, tuple(f.name for f in allowed))
        schema = self.compiled.schemas.get(key)
        if schema is None:
            schema = schemas.build_schema(obj, allowed, sorted(self.registry.roles))
            self.compiled.schemas[key] = schema
        values, load_errors = schemas.load(schema, data, partial=True)
        for name, messages in load_errors.items():
            errors.setdefault(name, []).extend(
                "Unknown field." if m == "Unknown field." else m for m in messages
            )
        for name, value in list(values.items()):
            fdef = obj.all_fields[name]
            if fdef.is_reference and value is not None:
                if old is not None and value == old.get(name) and not isinstance(value, dict):
                    continue  # unchanged: an edit form sends every field back
                resolved = self._resolve_reference(conn, fdef, value)
                if resolved is None:
                    errors.setdefault(name, []).append("No such record.")
                else:
                    values[name] = resolved[0]
                    if fdef.polymorphic:
                        values[f"{name}__object"] = resolved[1]
            elif fdef.type == "password" and value is not None:
                values[name] = _hash_password(value)
            elif value is not None and fdef.value_type in ("decimal", "currency", "percent") and (
                    conn.dialect.name == "sqlite") and not _fits_sqlite(fdef, value):
                # SQLite keeps a decimal as a 64-bit scaled integer (storage.ExactDecimal): a field
                # declared wider than 18 digits holds no more than that there (400, not a 500)
                errors.setdefault(name, []).append("Too large for this database: at most 18 digits in all.")
        if errors:
            raise ValidationFailed("Some fields are not valid.", fields=errors)
        return values

    def _resolve_reference(self, conn: sa.Connection, fdef: FieldDef, value: Any) -> tuple[str, str] | None:
        wanted_object = None
        if isinstance(value, dict):
            wanted_object, value = value.get("object"), value.get("id")
        if not isinstance(value, str) or not value or len(value) > 64:
            return None
        for target in fdef.target:
            if wanted_object and target != wanted_object:
                continue
            if not self.registry.has_object(target):
                continue
            known = self._known_refs.get(target) if self._known_refs else None
            if known is not None and value in known[0]:
                if value in known[1]:
                    return value, target
                continue
            table = self.table(target)
            found = conn.execute(
                sa.select(table.c.id).where(table.c.id == value, table.c.deleted_at.is_(None),
                                            self._readable(target, table))
            ).first()
            if found:
                return value, target
        return None

    def _readable(self, object_name: str, table: sa.Table) -> Any:
        """The rows a lookup may point at: those the caller can read (all, for the platform).
        Users and departments are the directory: anyone may name a colleague or a team."""
        if self.principal.is_system or self.access.is_admin or object_name in ("user", "department"):
            return sa.true()
        return self.access.row_filter(object_name, "read", table)

    def _defaults(self, obj: ObjectDef, record: dict) -> None:
        for name, fdef in obj.fields.items():
            if record.get(name) is None and fdef.default is not None and fdef.type not in ("formula", "rollup"):
                record[name] = resolve_default(fdef, fdef.default, self.principal)

    def _check_required(self, obj: ObjectDef, record: dict) -> None:
        missing = {
            name: ["This field is required."]
            for name, fdef in obj.fields.items()
            if fdef.required and record.get(name) in (None, "", [])
        }
        if missing:
            raise ValidationFailed("Some required fields are missing.", fields=missing)


def resolve_default(fdef: FieldDef, default: Any, principal: Principal) -> Any:
    if default == "$today":
        return today()
    if default == "$now":
        return utcnow()
    if default == "$user":
        return principal.user_id
    if fdef.value_type in ("decimal", "currency", "percent"):
        return Decimal(str(default))
    if fdef.value_type == "date" and isinstance(default, str):
        return date.fromisoformat(default)
    return default


def _hash_password(plain: str) -> str:
    """security.hash_password, looked up on this package at each call: the package re-exports it
    so that tests can swap in a fast hash (monkeypatch "metacrm.platform.records.hash_password")."""
    from . import hash_password

    return hash_password(plain)


def _fits_sqlite(fdef, value) -> bool:
    scale = fdef.scale if fdef.scale is not None else 2
    try:
        return abs(int(value.scaleb(scale, context=WIDE))) < 2**63
    except (AttributeError, ArithmeticError):
        return True  # not a Decimal: validation already answered for it
