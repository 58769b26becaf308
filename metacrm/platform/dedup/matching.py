"""Finding duplicates: DuplicateFinder matches records against an object's active rules.

The check is set-based: one query per rule group for a whole batch (UNION ALL over the
compared objects, `= ANY(array)` on PostgreSQL, `IN (...)` on SQLite), the rows matched in
memory; fuzzy groups fetch candidate blocks (`dk_fb_<field>`: the first characters of the
company-name key) and compare similarity inside blocks only. On PostgreSQL, advisory locks
on the probed keys serialise concurrent saves of the same keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .. import normalize
from ..filters import FilterContext, FilterError, compile_predicate, compile_sql
from .rules import Cond, Rule, column_for, plan_for


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
        self.remembered: set[str] = set()  # ids of the batch's own accepted rows
        # what `remember` added since the last `savepoint()`, so an undone batch forgets just that
        # (a copy of the whole memory per batch made long imports quadratic)
        self._journal: list[tuple[str | None, list[tuple[tuple[str, int], tuple]]]] = []
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
        added_id = match_id if match_id and match_id not in self.remembered else None
        if added_id:
            self.remembered.add(added_id)
        entries = []
        for (name, index), probe in probes.items():
            if targets.get(name):
                match = {"object": self.object, "id": match_id, "rule": name}
                self.seen.setdefault((name, index), {}).setdefault(probe[0], []).append((probe[1], match))
                entries.append(((name, index), probe[0]))
        self._journal.append((added_id, entries))

    def savepoint(self) -> int:
        """Start remembering what can be undone: `rollback_to(token)` forgets every row
        remembered after this call, in O(rows undone), whatever was remembered before."""
        self._journal.clear()
        return 0

    def rollback_to(self, token: int) -> None:
        while len(self._journal) > token:
            added_id, entries = self._journal.pop()
            for key, eq in reversed(entries):
                items = self.seen[key][eq]
                items.pop()
                if not items:
                    del self.seen[key][eq]
            if added_id:
                self.remembered.discard(added_id)

    def lock_ids(self, probes: dict[tuple[str, int], tuple]) -> list[int]:
        return [_lock_id(name, index, probe[0]) for (name, index), probe in probes.items()]
