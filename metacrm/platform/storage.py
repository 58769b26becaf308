"""Metadata -> real tables: one table per object, one typed column per field.

DDL goes through Alembic's Operations so SQLite's missing ALTER is handled by
batch mode. Removing a field only archives it: the column and its data stay,
and re-adding the field with the same name brings them back.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Context, Decimal

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from ..metadata.model import FieldDef, ObjectDef, is_valid_name
from ..metadata.registry import Registry

WIDE = Context(prec=200)


class ExactDecimal(TypeDecorator):
    """Exact money on both databases: NUMERIC on PostgreSQL, scaled integers on SQLite.

    SQLite has no decimal type (its NUMERIC affinity stores REAL), so a value is kept
    as value * 10**scale in an INTEGER column; comparisons and SUM stay exact because
    bound literals pass through the same conversion.
    """

    impl = sa.Numeric
    cache_ok = True

    def __init__(self, precision: int = 18, scale: int = 2):
        super().__init__()
        self.precision, self.scale = precision, scale

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = Decimal(str(value)) if not isinstance(value, Decimal) else value
        if dialect.name == "sqlite":
            return int(value.scaleb(self.scale, context=WIDE).to_integral_value(context=WIDE))
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        quantum = Decimal(1).scaleb(-self.scale)
        # a wide context: a 38-digit value, or a sum of many, has more digits than the default 28
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-self.scale, context=WIDE).quantize(quantum, context=WIDE)
        return Decimal(value).quantize(quantum, context=WIDE)

    @property
    def python_type(self):
        return Decimal


class UtcDateTime(TypeDecorator):
    """Naive UTC datetimes on both databases (the API adds the Z)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:

            value = value.astimezone(UTC).replace(tzinfo=None)
        return value


@dataclass(frozen=True)
class ExtraColumn:
    """A column that another kind contributes to an object's table (e.g. dedup match keys)."""

    name: str
    type: sa.types.TypeEngine
    indexed: bool = True


# Other kinds register functions here that say which extra columns an object's table needs.
COLUMN_PROVIDERS: list[Callable[[Registry, ObjectDef], list[ExtraColumn]]] = []


def sql_type(fdef: FieldDef) -> sa.types.TypeEngine:
    vtype = fdef.value_type
    if fdef.type == "id":
        return sa.String(32)
    if fdef.type in ("lookup", "user", "file"):
        return sa.String(32)
    if vtype in ("text",) and fdef.type != "formula":
        return sa.String(fdef.max_length or 255)
    if vtype in ("email", "url", "phone"):
        return sa.String(255)
    if vtype == "password":
        return sa.String(255)
    if vtype == "textarea":
        return sa.Text()
    if vtype == "picklist":
        longest = max((len(v) for v in fdef.option_values), default=0)
        return sa.String(max(64, longest))
    if vtype == "multipicklist":
        return sa.Text()
    if vtype == "integer":
        return sa.BigInteger() if fdef.name != "version" else sa.Integer()
    if vtype in ("decimal", "currency", "percent"):
        return ExactDecimal(fdef.precision or 18, fdef.scale if fdef.scale is not None else 2)
    if vtype == "boolean":
        return sa.Boolean()
    if vtype == "date":
        return sa.Date()
    if vtype == "datetime":
        return UtcDateTime()
    return sa.Text()


def column_name_ok(name: str) -> bool:
    return is_valid_name(name) or (name.startswith("dk_") and is_valid_name(name))


def field_columns(fdef: FieldDef) -> list[sa.Column]:
    """The column(s) one field needs; a polymorphic lookup also stores its target object."""
    if not column_name_ok(fdef.name):
        raise ValueError(f"unsafe column name {fdef.name!r}")
    cols = [sa.Column(fdef.name, sql_type(fdef), primary_key=fdef.name == "id", nullable=fdef.name != "id")]
    if fdef.polymorphic:
        cols.append(sa.Column(f"{fdef.name}__object", sa.String(64), nullable=True))
    return cols


def wants_index(fdef: FieldDef) -> bool:
    return fdef.name != "id" and (fdef.indexed or fdef.unique or fdef.is_reference)


def index_name(table: str, column: str) -> str:
    return f"ix_{table}_{column}"[:63]


def deleted_index_name(table: str) -> str:
    return f"px_{table}_deleted_at"[:63]


def unique_index_name(table: str, column: str) -> str:
    return f"ux_{table}_{column}"[:63]


def folded_unique_index_name(table: str, column: str) -> str:
    return f"uxl_{table}_{column}"[:63]


# --- unique emails: compared with A-Z folded --------------------------------------------------

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def folds_case(fdef: FieldDef | None) -> bool:
    """A unique email compares case-insensitively: Ann@X.com and ann@x.com are one address.
    The value is stored as typed; only the comparison (service check and database index) folds."""
    return fdef is not None and fdef.unique and fdef.type == "email"


def fold_value(value):
    """The Python side of `folded`: A-Z to a-z, every other character as it is."""
    return value.translate(_ASCII_LOWER) if isinstance(value, str) else value


class folded(FunctionElement):
    """A column's text with A-Z folded to a-z, identical on both databases: SQLite's lower()
    folds ASCII only, and PostgreSQL's lower() under COLLATE "C" does the same (under the
    database's own collation it would fold other scripts too, and the two would disagree).
    Plain lower() keeps the SQLite file usable by any SQLite (no application function in an
    index), and `fold_value` is the same rule in Python."""

    type = sa.String()
    name = "folded"
    inherit_cache = True


@compiles(folded)
def _folded_default(element: folded, compiler, **kw) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(folded, "postgresql")
def _folded_postgresql(element: folded, compiler, **kw) -> str:
    return f'lower(({compiler.process(element.clauses, **kw)}) COLLATE "C")'


def compared(column, fdef: FieldDef | None):
    """The column as unique checks and upsert keys compare it."""
    return folded(column) if folds_case(fdef) else column


def compared_value(value, fdef: FieldDef | None):
    return fold_value(value) if folds_case(fdef) else value


def field_index(table: sa.Table, fdef: FieldDef) -> sa.Index:
    """deleted_at gets a partial index of the deleted rows only (the recycle bin): a plain one
    is a trap, since every live query says `deleted_at IS NULL` and a planner without fresh
    statistics (SQLite always, PostgreSQL after a bulk load) picks it and filters every row."""
    column = table.c[fdef.name]
    if fdef.unique and "deleted_at" in table.c:
        # Unique among live records (the recycle bin may hold an old one), enforced by the database
        # so two concurrent saves cannot both pass the service's check.
        live = table.c.deleted_at.is_(None)
        if folds_case(fdef):  # one address whatever its case: the index is on the folded text
            return sa.Index(folded_unique_index_name(table.name, fdef.name), folded(column), unique=True,
                            sqlite_where=live, postgresql_where=live)
        return sa.Index(unique_index_name(table.name, fdef.name), column, unique=True, sqlite_where=live,
                        postgresql_where=live)
    if fdef.name == "deleted_at":
        return sa.Index(deleted_index_name(table.name), column, sqlite_where=column.isnot(None),
                        postgresql_where=column.isnot(None))
    return sa.Index(index_name(table.name, fdef.name), column)


@dataclass
class ObjectTable:
    obj: ObjectDef
    table: sa.Table
    extra: list[ExtraColumn] = field(default_factory=list)


def build_table(metadata: sa.MetaData, registry: Registry, obj: ObjectDef) -> ObjectTable:
    columns: list[sa.Column] = []
    indexes: list[sa.Index] = []
    for fdef in obj.all_fields.values():
        columns.extend(field_columns(fdef))
    extras: list[ExtraColumn] = []
    for provider in COLUMN_PROVIDERS:
        extras.extend(provider(registry, obj))
    seen = {c.name for c in columns}
    for extra in extras:
        if extra.name not in seen and column_name_ok(extra.name):
            columns.append(sa.Column(extra.name, extra.type, nullable=True))
            seen.add(extra.name)
    table = sa.Table(obj.table_name, metadata, *columns)
    for fdef in obj.all_fields.values():
        if wants_index(fdef):
            indexes.append(field_index(table, fdef))
    for extra in extras:
        if extra.indexed and extra.name in table.c:
            indexes.append(sa.Index(index_name(obj.table_name, extra.name), table.c[extra.name]))
    return ObjectTable(obj, table, extras)


class Tables:
    """SQLAlchemy Table objects for one registry version (built once per version per process)."""

    @classmethod
    def of(cls, registry: Registry) -> Tables:
        """The registry's tables, built once per Registry instance."""
        cached = registry.__dict__.get("_tables")
        if cached is None:
            cached = cls(registry)
            object.__setattr__(registry, "_tables", cached)
        return cached

    def __init__(self, registry: Registry):
        self.registry = registry
        self.metadata = sa.MetaData()
        self._tables = {name: build_table(self.metadata, registry, obj) for name, obj in registry.objects.items()}

    def __getitem__(self, object_name: str) -> sa.Table:
        return self._tables[object_name].table

    def get(self, object_name: str) -> ObjectTable | None:
        return self._tables.get(object_name)

    def items(self):
        return self._tables.items()


# --- diff -> DDL -----------------------------------------------------------------------


@dataclass
class ColumnChange:
    table: str
    column: str
    old_type: str
    new_type: str
    # False when only the stored values change (a decimal's scale on SQLite): no DDL is needed.
    ddl: bool = True

    def as_dict(self) -> dict:
        return {"table": self.table, "column": self.column, "old_type": self.old_type, "new_type": self.new_type}


def decimal_scale(fdef: FieldDef) -> int:
    return fdef.scale if fdef.scale is not None else 2


def rescaled(old_obj: ObjectDef | None, column: sa.Column) -> bool:
    """Whether a decimal column's scale differs from the live field's (the stored integers of
    SQLite's scaled representation then need converting even though the column type is the same)."""
    if old_obj is None or not isinstance(column.type, ExactDecimal):
        return False
    old_fdef = old_obj.all_fields.get(column.name)
    if old_fdef is None or old_fdef.value_type not in ("decimal", "currency", "percent"):
        return False
    return decimal_scale(old_fdef) != column.type.scale


@dataclass
class StorageDiff:
    new_tables: list[str] = field(default_factory=list)
    new_columns: list[tuple[str, str, str]] = field(default_factory=list)  # (table, column, type)
    restored_columns: list[tuple[str, str]] = field(default_factory=list)
    archived_columns: list[tuple[str, str]] = field(default_factory=list)
    changed_columns: list[ColumnChange] = field(default_factory=list)
    new_indexes: list[tuple[str, str]] = field(default_factory=list)
    dropped_indexes: list[tuple[str, str]] = field(default_factory=list)  # (table, index): superseded ones

    def as_dict(self) -> dict:
        return {
            "new_tables": self.new_tables,
            "new_columns": [{"table": t, "column": c, "type": ty} for t, c, ty in self.new_columns],
            "restored_columns": [{"table": t, "column": c} for t, c in self.restored_columns],
            "archived_columns": [{"table": t, "column": c} for t, c in self.archived_columns],
            "changed_columns": [change.as_dict() for change in self.changed_columns],
            "new_indexes": [{"table": t, "column": c} for t, c in self.new_indexes],
            "dropped_indexes": [{"table": t, "index": i} for t, i in self.dropped_indexes],
        }

    @property
    def empty(self) -> bool:
        return not any(vars(self).values())


def type_label(column: sa.Column, dialect) -> str:
    try:
        return column.type.compile(dialect=dialect)
    except Exception:  # noqa: BLE001 - exotic types have no compiled name
        return str(column.type)


def existing_columns(conn: sa.Connection, table: str) -> dict[str, dict] | None:
    inspector = sa.inspect(conn)
    if not inspector.has_table(table):
        return None
    return {col["name"]: col for col in inspector.get_columns(table)}


def existing_indexes(conn: sa.Connection, table: str) -> set[str]:
    """The names of a table's indexes. SQLite's reflection skips expression indexes (the
    folded unique index of an email), so its catalogue is read directly."""
    if conn.dialect.name == "sqlite":
        return {name for (name,) in conn.execute(sa.text(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :table AND sql IS NOT NULL"),
            {"table": table})}
    inspector = sa.inspect(conn)
    return {ix["name"] for ix in inspector.get_indexes(table)}


def plan_storage(conn: sa.Connection, old: Registry, new: Registry) -> StorageDiff:
    """Compare the new registry's tables with what the database holds now."""
    diff = StorageDiff()
    dialect = conn.dialect
    new_tables = Tables.of(new)
    old_objects = old.objects
    for name, otable in new_tables.items():
        table = otable.table
        present = existing_columns(conn, table.name)
        if present is None:
            diff.new_tables.append(table.name)
            continue
        old_fields = old_objects[name].fields if name in old_objects else {}
        for column in table.columns:
            if column.name not in present:
                diff.new_columns.append((table.name, column.name, type_label(column, dialect)))
            else:
                if column.name in otable.obj.fields and column.name not in old_fields:
                    diff.restored_columns.append((table.name, column.name))
                current = present[column.name]["type"]
                if not same_storage_type(current, column.type, dialect):
                    diff.changed_columns.append(
                        ColumnChange(table.name, column.name, str(current), type_label(column, dialect))
                    )
                elif rescaled(old_objects.get(name), column):
                    # SQLite keeps decimals as scaled integers: the column type is the same, but
                    # every stored value must be multiplied out (2000.00 at scale 2 is 200000).
                    old_type = old_objects[name].all_fields[column.name]
                    diff.changed_columns.append(ColumnChange(
                        table.name, column.name, f"{type_label(column, dialect)} (scale {decimal_scale(old_type)})",
                        f"{type_label(column, dialect)} (scale {column.type.scale})", ddl=False,
                    ))
        for removed in set(old_fields) - set(otable.obj.fields):
            diff.archived_columns.append((table.name, removed))
        have = existing_indexes(conn, table.name)
        for index in table.indexes:
            if index.name not in have:
                diff.new_indexes.append((table.name, next(iter(index.columns)).name))
        wanted = {index.name for index in table.indexes}
        superseded = index_name(table.name, "deleted_at")  # the plain index px_..._deleted_at replaced
        if superseded in have and "deleted_at" in table.c:
            diff.dropped_indexes.append((table.name, superseded))
        for name in sorted(have - wanted):
            field_name = name[len(f"ix_{table.name}_"):] if name.startswith(f"ix_{table.name}_") else None
            if name.startswith((f"ux_{table.name}_", f"uxl_{table.name}_")):
                # the field is no longer unique, or its comparison changed (an email became text)
                diff.dropped_indexes.append((table.name, name))
            elif field_name and field_name in otable.obj.fields and otable.obj.fields[field_name].unique:
                diff.dropped_indexes.append((table.name, name))  # now a unique index (ux_)
    return diff


def same_storage_type(current, wanted, dialect) -> bool:
    """Loose comparison of a reflected column type with the wanted one."""
    cur = current.compile(dialect=dialect).upper()
    want = wanted.compile(dialect=dialect).upper()
    if cur == want:
        return True
    aliases = {
        "TIMESTAMP WITHOUT TIME ZONE": "DATETIME",
        "TIMESTAMP": "DATETIME",
        "DOUBLE PRECISION": "FLOAT",
        "CHARACTER VARYING": "VARCHAR",
        "INT": "INTEGER",
    }
    norm = lambda s: aliases.get(s, s)
    return norm(cur) == norm(want)


def apply_storage(conn: sa.Connection, new: Registry, diff: StorageDiff) -> None:
    """Create tables, add columns, convert types and add indexes, inside the caller's transaction."""
    tables = Tables.of(new)
    ops = Operations(MigrationContext.configure(conn))
    by_table = {ot.table.name: ot for _, ot in tables.items()}
    for table_name in diff.new_tables:
        by_table[table_name].table.create(conn)
    for table_name, column_name, _ in diff.new_columns:
        column = by_table[table_name].table.c[column_name]
        ops.add_column(table_name, sa.Column(column.name, column.type, nullable=True))
    changes_by_table: dict[str, list[ColumnChange]] = {}
    for change in diff.changed_columns:
        if change.ddl:  # a rescaled SQLite decimal keeps its column; apply.convert_columns rewrites it
            changes_by_table.setdefault(change.table, []).append(change)
    for table_name, changes in changes_by_table.items():
        table = by_table[table_name].table
        with warnings.catch_warnings(), ops.batch_alter_table(table_name) as batch:
            # SQLite: reflection skips the folded (expression) index; it is put back below
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
            for change in changes:
                column = table.c[change.column]
                kwargs = {}
                if conn.dialect.name == "postgresql":
                    # Values were read out and are written back converted (apply.convert_columns).
                    kwargs["postgresql_using"] = f"NULL::{column.type.compile(dialect=conn.dialect)}"
                batch.alter_column(change.column, type_=column.type, **kwargs)
        if conn.dialect.name == "sqlite":
            # batch mode rebuilt the table from SQLAlchemy's reflection, which skips expression
            # indexes (a unique email's folded index): put back every wanted index it lost
            have = existing_indexes(conn, table_name)
            for index in table.indexes:
                if index.name not in have and (table_name, next(iter(index.columns)).name) not in diff.new_indexes:
                    index.create(conn)
    for table_name, column_name in diff.new_indexes:
        if table_name in diff.new_tables:
            continue  # table.create() made its indexes
        for index in by_table[table_name].table.indexes:
            if next(iter(index.columns)).name == column_name:
                index.create(conn)
    for table_name, name in diff.dropped_indexes:
        ops.drop_index(name, table_name=table_name)
