"""Duplicate rules (`dedup_rule` metadata) on the one write path.

Match keys live in indexed columns `dk_<method>_<field>` that this module adds to every
object a rule's fields live on (storage.COLUMN_PROVIDERS), so a check is an index lookup.
A before_save hook keeps the keys current and applies the active rules:

- a rule is OR of AND-groups; each group compares the incoming record with the rule's
  object and its `compare_with` objects (`other_field` names the field there);
- `ignore` drops existing records (and an incoming record that matches it is not checked);
- the entry path picks the action: `on_create` (default block), `on_update` (default
  on_create; only when a matched field changed), `on_import` (default report);
- block raises DuplicateBlocked (409, `duplicates: [{object, id, rule}]`), warn adds
  `ctx.warnings`, report (import) makes the row a "duplicate" and skips it.

The check is set-based: DuplicateFinder runs ONE query per rule group for a whole batch
(UNION ALL over the compared objects, `= ANY(array)` on PostgreSQL, `IN (...)` on
SQLite) and matches the rows in memory; fuzzy groups fetch candidate blocks
(`dk_fb_<field>`: the first characters of the company-name key) and compare similarity
inside blocks only.

When rules change, `after_apply` (to be called by apply.py) re-keys the objects whose key
columns changed, and until then the first save under a new metadata version re-keys rows
whose key is NULL while their source field is not ("" marks a value with nothing to match).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ...metadata.registry import Registry
from .. import normalize
from ..errors import BadRequest, DuplicateBlocked, Forbidden, NotFound
from ..filters import FilterContext, FilterError, compile_predicate, compile_sql
from ..storage import COLUMN_PROVIDERS, ExtraColumn

log = logging.getLogger(__name__)

HOOK_ORDER = 700
KEY_TYPE_LENGTH = 255
REKEY_BATCH = 1000
ABBR = {"exact": "ex", "normalized": "nm", "company_name": "cn", "email": "em", "phone": "ph", "fuzzy": "fz"}
BLOCK_ABBR = "fb"


# --- the plan: rules and key columns derived from one registry ---------------------------


@lru_cache(maxsize=4096)
def column_for(method: str, field_name: str, block: bool = False) -> str:
    abbr = BLOCK_ABBR if block else ABBR[method]
    name = f"dk_{abbr}_{field_name}"
    if len(name) > 63:
        digest = hashlib.sha1(field_name.encode()).hexdigest()[:8]
        name = f"dk_{abbr}_{field_name[:48]}_{digest}"
    return name


@dataclass(frozen=True)
class KeySpec:
    column: str
    method: str  # a match method, or "block" (the fuzzy candidate block)
    field: str
    region: str | None = None

    @property
    def indexed(self) -> bool:
        return self.method != "fuzzy"


@dataclass(frozen=True)
class Cond:
    field: str
    method: str
    threshold: float
    region: str | None
    other_field: str | None

    def field_on(self, target: str, rule_object: str) -> str:
        return self.field if target == rule_object else (self.other_field or self.field)

    @property
    def fuzzy(self) -> bool:
        return self.method == "fuzzy"


@dataclass(frozen=True)
class Rule:
    name: str
    object: str
    targets: tuple[str, ...]
    groups: tuple[tuple[Cond, ...], ...]
    ignore: Any
    on_create: str
    on_update: str
    on_import: str
    active: bool

    def fields(self) -> set[str]:
        return {cond.field for group in self.groups for cond in group}

    def mode(self, op: str, source: str) -> str:
        if source == "import":
            return self.on_import
        return self.on_update if op == "update" else self.on_create


@dataclass
class Plan:
    rules: dict[str, list[Rule]] = field(default_factory=dict)  # object -> active rules on it
    specs: dict[str, dict[str, KeySpec]] = field(default_factory=dict)  # object -> column -> spec


def _rule_from_doc(doc: dict) -> Rule:
    groups = []
    for group in doc.get("match_any") or []:
        conds = tuple(
            Cond(
                field=c["field"],
                method=c["method"],
                threshold=float(c.get("threshold", normalize.DEFAULT_FUZZY_THRESHOLD)),
                region=c.get("region"),
                other_field=c.get("other_field"),
            )
            for c in group.get("all") or []
        )
        if conds:
            groups.append(conds)
    on_create = doc.get("on_create") or "block"
    return Rule(
        name=doc["name"],
        object=doc["object"],
        targets=tuple(doc.get("compare_with") or [doc["object"]]),
        groups=tuple(groups),
        ignore=doc.get("ignore"),
        on_create=on_create,
        on_update=doc.get("on_update") or on_create,
        on_import=doc.get("on_import") or "report",
        active=doc.get("active", True) is not False,
    )


def build_plan(registry: Registry) -> Plan:
    plan = Plan()
    for doc in registry.of_kind("dedup_rule"):
        rule = _rule_from_doc(doc)
        if rule.object not in registry.objects:
            continue
        if rule.active:
            plan.rules.setdefault(rule.object, []).append(rule)
        for target in {rule.object, *rule.targets}:
            if target not in registry.objects:
                continue
            fields = registry.objects[target].all_fields
            specs = plan.specs.setdefault(target, {})
            for group in rule.groups:
                for cond in group:
                    name = cond.field_on(target, rule.object)
                    if name not in fields:
                        continue
                    wanted = [KeySpec(column_for(cond.method, name), cond.method, name, cond.region)]
                    if cond.fuzzy:
                        wanted.append(KeySpec(column_for("fuzzy", name, block=True), "block", name))
                    for spec in wanted:
                        specs.setdefault(spec.column, spec)
    for name in [n for n, s in plan.specs.items() if not s]:
        del plan.specs[name]
    return plan


_PLANS: dict[int, tuple[Registry, Plan]] = {}


def plan_for(registry: Registry) -> Plan:
    """The plan for a registry (cached; registries are immutable)."""
    cached = _PLANS.get(id(registry))
    if cached is not None and cached[0] is registry:
        return cached[1]
    plan = build_plan(registry)
    if len(_PLANS) > 16:
        _PLANS.clear()
    _PLANS[id(registry)] = (registry, plan)
    return plan


def key_columns(registry: Registry, obj) -> list[ExtraColumn]:
    """storage.COLUMN_PROVIDERS entry: the match-key columns an object's table needs."""
    specs = plan_for(registry).specs.get(obj.name, {})
    return [ExtraColumn(s.column, sa.String(KEY_TYPE_LENGTH), s.indexed) for s in specs.values()]


# --- keys ----------------------------------------------------------------------------------


def spec_key(spec: KeySpec, value: Any, default_region: str) -> str | None:
    if value is None:
        return None
    if spec.method == "block":
        return normalize.block_key(normalize.company_name(value))
    return normalize.match_key(spec.method, value, spec.region or default_region)


def record_keys(specs: Iterable[KeySpec], record: dict, default_region: str) -> dict[str, str | None]:
    return {spec.column: spec_key(spec, record.get(spec.field), default_region) for spec in specs}


def _probe(group: tuple[Cond, ...], record: dict, default_region: str) -> tuple[tuple, tuple] | None:
    """(equality keys, fuzzy keys) of an incoming record for one group; None if it cannot match.

    Keys the hook already stored in the record (its dk_* columns) are reused.
    """
    eq, fz = [], []
    for cond in group:
        value = record.get(cond.field)
        if value is None:
            return None
        if cond.fuzzy:
            key = record.get(column_for("fuzzy", cond.field)) or normalize.company_name(value)
            if not key:
                return None
            eq.append(normalize.block_key(key))
            fz.append(key)
        else:
            column = column_for(cond.method, cond.field)
            key = record[column] if column in record else normalize.match_key(
                cond.method, value, cond.region or default_region)
            if not key:
                return None
            eq.append(key)
    return tuple(eq), tuple(fz)


LOCK_BUCKETS = 128  # advisory locks per rule group: a batch takes at most this many, whatever its size


def _lock_id(rule: str, index: int, eq: tuple) -> int:
    bucket = int.from_bytes(hashlib.blake2b(repr(eq).encode(), digest_size=4).digest(), "big") % LOCK_BUCKETS
    digest = hashlib.blake2b(repr(("dedup", rule, index, bucket)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_keys(conn: sa.Connection, lock_ids: Iterable[int]) -> None:
    """PostgreSQL: serialise concurrent saves of the same keys until commit (SQLite's writer
    lock already does)."""
    ids = sorted(set(lock_ids))
    if not ids or conn.dialect.name != "postgresql":
        return
    conn.execute(
        sa.text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:ids AS BIGINT[])) AS k"),
        {"ids": ids},
    )


def _in(column, values: list, dialect_name: str):
    if dialect_name == "postgresql":
        return column == sa.any_(sa.bindparam(None, value=values, type_=postgresql.ARRAY(sa.String)))
    return column.in_(values)


# --- finding matches -------------------------------------------------------------------


@dataclass
class _Fetched:
    values: list[set]  # per equality position: the values the query covered
    index: dict[tuple, list[tuple[tuple, dict]]]  # eq keys -> [(fuzzy keys, match)]


class DuplicateFinder:
    """Matches records of one object against the active rules, one query per rule group.

    `prefetch` loads the candidates of a whole batch; `find` then matches a record from
    memory (querying only for a probe the batch did not cover). `remember` adds an accepted
    record, so later rows of the same import match it too.
    """

    def __init__(self, runtime, compiled, object_name: str):
        self.runtime = runtime
        self.compiled = compiled
        self.registry = compiled.registry
        self.object = object_name
        self.region = runtime.config.phone_region or "CN"
        self.rules = plan_for(self.registry).rules.get(object_name, [])
        self.fetched: dict[tuple[str, int], _Fetched] = {}
        self.seen: dict[tuple[str, int], dict[tuple, list[tuple[tuple, dict]]]] = {}
        self.queries = 0
        self._ignore_predicates: dict[str, Callable | None] = {}
        self._probes: dict[int, tuple[dict, dict]] = {}

    # incoming side

    def ignored(self, rule: Rule, record: dict) -> bool:
        if rule.ignore in (None, {}):
            return False
        if rule.name not in self._ignore_predicates:
            fields = self.registry.object(rule.object).all_fields
            try:
                self._ignore_predicates[rule.name] = compile_predicate(rule.ignore, fields, FilterContext.current())
            except FilterError:
                self._ignore_predicates[rule.name] = None
        predicate = self._ignore_predicates[rule.name]
        return bool(predicate and predicate(record))

    def _probe_of(self, record: dict, group: tuple[Cond, ...], rule: Rule, index: int) -> tuple | None:
        """A record's probe, remembered for `find` on the same record object (the API path)."""
        cached = self._probes.get(id(record))
        if cached is None or cached[0] is not record:
            cached = self._probes[id(record)] = (record, {})
        key = (rule.name, index)
        if key not in cached[1]:
            cached[1][key] = _probe(group, record, self.region)
        return cached[1][key]

    def probes(self, record: dict, rules: Iterable[Rule] | None = None) -> dict[tuple[str, int], tuple]:
        """{(rule, group): probe} for the rules that check this record (not ignoring it)."""
        found = {}
        for rule in self.rules if rules is None else rules:
            if self.ignored(rule, record):
                continue
            for index, group in enumerate(rule.groups):
                probe = self._probe_of(record, group, rule, index)
                if probe is not None:
                    found[(rule.name, index)] = probe
        return found

    # the query

    def _query(self, conn: sa.Connection, rule: Rule, index: int, values: list[list[str]],
               exclude_ids: Iterable[str]) -> dict[tuple, list[tuple[tuple, dict]]]:
        group = rule.groups[index]
        dialect = conn.dialect.name
        selects = []
        ctx = FilterContext.current()
        for target in rule.targets:
            table = self.compiled.tables[target]
            fields = self.registry.object(target).all_fields
            eq_cols, fz_cols = [], []
            for cond in group:
                name = cond.field_on(target, rule.object)
                if cond.fuzzy:
                    eq_cols.append(table.c.get(column_for("fuzzy", name, block=True)))
                    fz_cols.append(table.c.get(column_for("fuzzy", name)))
                else:
                    eq_cols.append(table.c.get(column_for(cond.method, name)))
            if any(col is None for col in eq_cols + fz_cols):
                continue  # the compared object has no such field (metadata validation reports it)
            where = [_in(col, vals, dialect) for col, vals in zip(eq_cols, values)]
            where.append(table.c.deleted_at.is_(None))
            if rule.ignore not in (None, {}):
                try:
                    where.append(sa.not_(compile_sql(rule.ignore, table, fields, ctx)))
                except FilterError:
                    pass  # the ignore filter names fields this object does not have
            excluded = sorted(set(exclude_ids))
            if excluded and target == self.object:
                where.append(table.c.id.not_in(excluded))
            selects.append(
                sa.select(
                    sa.literal_column(f"'{target}'").label("o"),
                    table.c.id.label("id"),
                    *[col.label(f"e{i}") for i, col in enumerate(eq_cols)],
                    *[col.label(f"f{i}") for i, col in enumerate(fz_cols)],
                ).where(*where)
            )
        index_: dict[tuple, list[tuple[tuple, dict]]] = {}
        if not selects:
            return index_
        query = selects[0] if len(selects) == 1 else sa.union_all(*selects)
        self.queries += 1
        n_eq = len(group)
        n_fz = sum(1 for c in group if c.fuzzy)
        for row in conn.execute(query):
            eq = tuple(row[2 : 2 + n_eq])
            fz = tuple(row[2 + n_eq : 2 + n_eq + n_fz])
            index_.setdefault(eq, []).append((fz, {"object": row[0], "id": row[1], "rule": rule.name}))
        return index_

    def prefetch(self, conn: sa.Connection, records: list[dict], *, lock: bool = True,
                 exclude_ids: Iterable[str] = ()) -> None:
        """One query per rule group for all `records` (raw or typed values)."""
        self._probes.clear()  # probes of the previous batch
        locking = lock and conn.dialect.name == "postgresql"
        lock_ids: set[int] = set()
        wanted: list[tuple[Rule, int, list[set]]] = []
        for rule in self.rules:
            for index, group in enumerate(rule.groups):
                values: list[set] = [set() for _ in group]
                for record in records:
                    probe = self._probe_of(record, group, rule, index)
                    if probe is None:
                        continue
                    for position, key in enumerate(probe[0]):
                        values[position].add(key)
                    if locking:
                        lock_ids.add(_lock_id(rule.name, index, probe[0]))
                if all(values):
                    wanted.append((rule, index, values))
        if locking:
            lock_keys(conn, lock_ids)  # before reading: a concurrent save of the same keys commits first
        for rule, index, values in wanted:
            fetched = self._query(conn, rule, index, [sorted(v) for v in values], exclude_ids)
            self.fetched[(rule.name, index)] = _Fetched(values, fetched)

    def _candidates(self, conn: sa.Connection, rule: Rule, index: int, probe: tuple,
                    exclude_ids: Iterable[str]) -> list[tuple[tuple, dict]]:
        fetched = self.fetched.get((rule.name, index))
        eq = probe[0]
        if fetched is not None and all(key in covered for key, covered in zip(eq, fetched.values)):
            return fetched.index.get(eq, [])
        return self._query(conn, rule, index, [[key] for key in eq], exclude_ids).get(eq, [])

    def find(self, conn: sa.Connection, record: dict, *, rules: Iterable[Rule] | None = None,
             exclude_ids: Iterable[str] = (), with_seen: bool = False,
             probes: dict[tuple[str, int], tuple] | None = None) -> dict[str, list[dict]]:
        """{rule name: [{"object", "id", "rule"}]} for the rules the record matches."""
        chosen = list(self.rules if rules is None else rules)
        probes = self.probes(record, chosen) if probes is None else probes
        exclude = set(exclude_ids)
        own_id = record.get("id")
        found: dict[str, list[dict]] = {}
        for rule in chosen:
            matches: dict[tuple[str, str], dict] = {}
            for index, group in enumerate(rule.groups):
                probe = probes.get((rule.name, index))
                if probe is None:
                    continue
                candidates = self._candidates(conn, rule, index, probe, exclude)
                if with_seen:
                    candidates = [*candidates, *self.seen.get((rule.name, index), {}).get(probe[0], [])]
                thresholds = [c.threshold for c in group if c.fuzzy]
                for fz, match in candidates:
                    if match["object"] == self.object and (match["id"] == own_id or match["id"] in exclude):
                        continue
                    if not thresholds or all(
                        b is not None and normalize.similarity(a, b) >= t
                        for a, b, t in zip(probe[1], fz, thresholds)
                    ):
                        matches.setdefault((match["object"], match["id"]), match)
            if matches:
                found[rule.name] = list(matches.values())
        return found

    def remember(self, record: dict, probes: dict[tuple[str, int], tuple] | None = None) -> None:
        """An accepted row of a batch: later rows are matched against it as well."""
        probes = self.probes(record) if probes is None else probes
        targets = {rule.name: self.object in rule.targets for rule in self.rules}
        match_id = record.get("id")
        for (name, index), probe in probes.items():
            if targets.get(name):
                match = {"object": self.object, "id": match_id, "rule": name}
                self.seen.setdefault((name, index), {}).setdefault(probe[0], []).append((probe[1], match))

    def lock_ids(self, probes: dict[tuple[str, int], tuple]) -> list[int]:
        return [_lock_id(name, index, probe[0]) for (name, index), probe in probes.items()]


# --- re-keying -----------------------------------------------------------------------------


def _missing(table: sa.Table, specs: Iterable[KeySpec]):
    """Rows not keyed yet: a key column is NULL while its source field is not."""
    return sa.or_(*(sa.and_(table.c[s.column].is_(None), table.c[s.field].isnot(None)) for s in specs))


def _rekey_batch(conn: sa.Connection, table: sa.Table, specs: list[KeySpec], condition, last: str,
                 batch_size: int, region: str) -> tuple[int, str]:
    sources = sorted({s.field for s in specs})
    rows = conn.execute(
        sa.select(table.c.id, *[table.c[name] for name in sources])
        .where(condition, table.c.id > last).order_by(table.c.id).limit(batch_size)
    ).fetchall()
    if not rows:
        return 0, last
    update = table.update().where(table.c.id == sa.bindparam("_id")).values(
        {s.column: sa.bindparam(f"_k_{s.column}") for s in specs}
    )
    params = []
    for row in rows:
        record = row._mapping
        entry = {"_id": row.id}
        for spec in specs:
            value = record.get(spec.field)
            key = spec_key(spec, value, region)
            entry[f"_k_{spec.column}"] = "" if key is None and value is not None else key
        params.append(entry)
    conn.execute(update, params)
    return len(rows), rows[-1].id


def _rekey_setup(runtime, compiled, object_name: str, only_missing: bool):
    specs = list(plan_for(compiled.registry).specs.get(object_name, {}).values())
    if not specs:
        return None
    table = compiled.tables[object_name]
    condition = _missing(table, specs) if only_missing else sa.true()
    return table, specs, condition, runtime.config.phone_region or "CN"


def rekey_conn(conn: sa.Connection, runtime, compiled, object_name: str, *, batch_size: int = REKEY_BATCH,
               only_missing: bool = True) -> int:
    """Re-key an object's rows inside the caller's transaction, in batches of UPDATEs."""
    setup = _rekey_setup(runtime, compiled, object_name, only_missing)
    if setup is None:
        return 0
    table, specs, condition, region = setup
    done, last = 0, ""
    while True:
        count, last = _rekey_batch(conn, table, specs, condition, last, batch_size, region)
        done += count
        if count < batch_size:
            return done


def rekey(runtime, object_name: str, batch_size: int = REKEY_BATCH,
          progress: Callable[[int, int], Any] | None = None, *, only_missing: bool = True) -> int:
    """Re-key an object's rows, one transaction per batch; `progress(done, total)` after each.

    only_missing: just the rows whose key is NULL while the source field is set (new key
    columns); False recomputes every row (a rule's method or region changed).
    """
    compiled = runtime.compiled()
    setup = _rekey_setup(runtime, compiled, object_name, only_missing)
    if setup is None:
        return 0
    table, specs, condition, region = setup
    with runtime.reading() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(table).where(condition)).scalar() or 0
    if progress:
        progress(0, total)
    done, last = 0, ""
    while True:
        with runtime.transaction() as tx:
            count, last = _rekey_batch(tx.conn, table, specs, condition, last, batch_size, region)
        done += count
        if progress and count:
            progress(done, total)
        if count < batch_size:
            return done


def ensure_keyed(tx, runtime, compiled) -> None:
    """Once per metadata version and process: key the rows a rule change left without keys.

    Runs inside the caller's transaction (SQLite allows one writer); marked done only after
    that transaction commits, so a refused save does not lose the re-keying.
    """
    if compiled.cache.get("dedup_keyed") or getattr(tx, "dedup_keyed", None) is compiled:
        return
    tx.dedup_keyed = compiled
    plan = plan_for(compiled.registry)
    for object_name, specs in plan.specs.items():
        table = compiled.tables[object_name]
        if tx.conn.execute(sa.select(table.c.id).where(_missing(table, specs.values())).limit(1)).first():
            count = rekey_conn(tx.conn, runtime, compiled, object_name)
            log.info("dedup: keyed %d %s record(s) for metadata version %s", count, object_name,
                     compiled.registry.version)
    tx.after_commit(lambda: compiled.cache.__setitem__("dedup_keyed", True))


def after_apply(runtime, old_registry: Registry, new_registry: Registry,
                progress: Callable[[str, int, int], Any] | None = None) -> dict[str, int]:
    """Re-key the objects whose key columns a metadata change added or redefined.

    To be called by apply.py after a successful apply (with the registries before and
    after); returns {object: rows keyed}.
    """
    old_plan, new_plan = plan_for(old_registry), plan_for(new_registry)
    runtime.compiled(force=True)
    results = {}
    for object_name, specs in new_plan.specs.items():
        old_specs = old_plan.specs.get(object_name, {})
        if specs == old_specs:
            continue
        # Every row: a key column that comes back after its rule was removed may hold stale keys.
        report = (lambda done, total, name=object_name: progress(name, done, total)) if progress else None
        results[object_name] = rekey(runtime, object_name, progress=report, only_missing=False)
    return results


# --- the hook ------------------------------------------------------------------------------


def _message(matches: list[dict], obj_name: str) -> str:
    rules = sorted({m["rule"] for m in matches})
    return (f"This {obj_name} record duplicates {len(matches)} existing record(s) "
            f"(duplicate rule {', '.join(rules)}).")


def before_save(ctx) -> None:
    if ctx.op not in ("create", "update"):
        return
    plan = plan_for(ctx.registry)
    specs = plan.specs.get(ctx.obj.name)
    if not specs:
        return
    runtime, compiled = ctx.service.runtime, ctx.service.compiled
    ensure_keyed(ctx.tx, runtime, compiled)
    region = runtime.config.phone_region or "CN"
    for spec in specs.values():
        if ctx.op == "create" or ctx.changed(spec.field):
            value = ctx.record.get(spec.field)
            key = spec_key(spec, value, region)
            ctx.record[spec.column] = "" if key is None and value is not None else key
    rules = plan.rules.get(ctx.obj.name)
    if not rules or ctx.source == "system" or ctx.options.get("system_action") or ctx.options.get("dedup") is False:
        return
    applicable = []
    for rule in rules:
        mode = rule.mode(ctx.op, ctx.source)
        if mode == "none":
            continue
        if ctx.op == "update" and not any(ctx.changed(name) for name in rule.fields()):
            continue
        applicable.append((rule, mode))
    if not applicable:
        return
    finder = ctx.options.get("dedup_batch")
    batch = isinstance(finder, DuplicateFinder) and finder.object == ctx.obj.name
    chosen = [rule for rule, _ in applicable]
    if not batch:
        finder = DuplicateFinder(runtime, compiled, ctx.obj.name)
    probes = finder.probes(ctx.record, chosen)
    if not batch:
        lock_keys(ctx.conn, finder.lock_ids(probes))
    exclude = [ctx.record["id"]] if ctx.op == "update" else []
    found = finder.find(ctx.conn, ctx.record, rules=chosen, exclude_ids=exclude, with_seen=batch, probes=probes)
    refused, reported, warned = [], [], []
    for rule, mode in applicable:
        matches = found.get(rule.name)
        if matches:
            {"block": refused, "report": reported}.get(mode, warned).extend(matches)
    if refused or reported:
        extra = {"import_status": "error" if refused else "duplicate"} if ctx.source == "import" else {}
        raise DuplicateBlocked(_message(refused + reported, ctx.obj.name), duplicates=refused + reported, **extra)
    if warned:
        ctx.warnings.append({"code": "possible_duplicate", "message": _message(warned, ctx.obj.name),
                             "duplicates": warned})
    if batch:
        finder.remember(ctx.record, probes)


# --- checks and merges for the API ---------------------------------------------------------


def check(service, object_name: str, *, record: dict | None = None, record_id: str | None = None) -> list[dict]:
    """Matches of a payload or of an existing record under every active rule of the object."""
    obj = service.obj(object_name)
    access = service.access
    if not (access.can(obj.name, "read") or access.can(obj.name, "create")):
        raise NotFound(f"Unknown object {obj.name!r}.", code="unknown_object")
    with service.transaction() as tx:
        ensure_keyed(tx, service.runtime, service.compiled)
        if record_id is not None:
            current = service.get_record(obj.name, str(record_id))
        else:
            if not isinstance(record, dict):
                raise BadRequest("Send the record to check as a JSON object, or {\"id\": ...}.")
            values = service.coerce(obj, record, creating=True, conn=tx.conn)
            current = {name: None for name in obj.all_fields}
            current.update(values)
        finder = DuplicateFinder(service.runtime, service.compiled, obj.name)
        found = finder.find(tx.conn, current, exclude_ids=[current["id"]] if current.get("id") else [])
    return [match for matches in found.values() for match in matches]


def merge(service, object_name: str, survivor_id: str, losers: list, values: dict | None = None) -> dict:
    """Merge `losers` into the survivor: chosen field values, children moved, losers deleted.

    values: {field: value} or {field: {"from": <survivor or loser id>}}. Children (lookups
    pointing at a loser) move to the survivor through system_update; both sides get a
    "merge" history entry; losers go to the recycle bin.
    """
    from .. import schemas

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
            service.write_history(tx.conn, obj.name, loser_id, "merge", {}, f"merged into {survivor_id}")
            service.delete(obj.name, loser_id)
        if data:
            ctx = service.update_record(obj.name, survivor_id, data)
            record = ctx.record
        else:
            record = service.get_record(obj.name, survivor_id)
        service.write_history(tx.conn, obj.name, survivor_id, "merge", {"merged": [None, losers]},
                              f"merged {', '.join(losers)}")
    return {"record": service.to_json(obj, record), "merged": losers, "moved": moved}


# --- registration --------------------------------------------------------------------------


if key_columns not in COLUMN_PROVIDERS:
    COLUMN_PROVIDERS.append(key_columns)


def register(runtime) -> None:
    if key_columns not in COLUMN_PROVIDERS:
        COLUMN_PROVIDERS.append(key_columns)
    runtime.hooks.register("before_save", before_save, name="dedup.rules", order=HOOK_ORDER)
    runtime.extensions.setdefault("after_apply", {})["dedup"] = after_apply
    runtime.features.add(FEATURE)


from ..features import Feature
from . import api

FEATURE = Feature("dedup", api=api.routes, openapi=api.openapi_paths)
