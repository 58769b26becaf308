"""Global search: the caller's query against the index, then through the record service, so
row scope, soft deletes and field access decide what is shown, as on every other read path.

1. Only objects the caller may read, and only their searchable fields the caller may read, are
   looked at (a hidden field's value never finds a record: no oracle).
2. Candidates come from the trigram index: every entry sharing a 3-character piece with the
   query (SQLite FTS5 trigram), or containing it / word-similar to it (PostgreSQL pg_trgm); a
   query under 3 characters (two Chinese characters, say) is a substring match.
3. Each candidate is scored the same way on both databases, word by word: 1 for a word found
   as a substring, otherwise the share of the word's trigrams found in the value; the weakest
   word decides, and below THRESHOLD the candidate is dropped (so "Acme Corporaton" finds
   "Acme Corporation", "umbrella group" does not find "Umbrella Health", "xyz" finds nothing).
4. The surviving ids of each object are read with RecordService.list (scope + deleted_at), best
   first, at most `per_object` records per object.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

import sqlalchemy as sa

from ..errors import BadRequest
from ..records import RecordService
from . import index
from .index import entry, searchable_fields

MAX_QUERY = 100
CANDIDATES = 400
THRESHOLD = 0.5


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def trigrams(text: str) -> set[str]:
    text = fold(text)
    return {text[i:i + 3] for i in range(max(len(text) - 2, 0))} or ({text} if text else set())


def words(text: str) -> list[str]:
    return fold(text).split()


def _word_score(word: str, value: str) -> float:
    if word in value:
        return 1.0
    grams = trigrams(word)
    if len(word) < 3 or not grams:
        return 0.0
    return len(grams & trigrams(value)) / len(grams)


def score(query: str, value: str) -> float:
    """The weakest word's match (1 for a substring, else its share of trigrams in the value),
    plus a bonus when the whole query is a prefix of or equal to the value."""
    q, v = fold(query).strip(), fold(value)
    parts = q.split()
    if not parts:
        return 0.0
    base = min(_word_score(w, v) for w in parts)
    if base < THRESHOLD:
        return base
    return base + (0.5 if v.startswith(q) else 0.0) + (0.5 if v == q else 0.0) + (0.25 if q in v else 0.0)


@dataclass
class Hit:
    record_id: str
    field: str
    body: str
    score: float


@dataclass
class Group:
    object: str
    records: list[dict] = field(default_factory=list)
    hits: dict[str, Hit] = field(default_factory=dict)
    more: bool = False


def allowed_fields(service: RecordService) -> dict[str, list[str]]:
    """object -> the searchable fields the caller may read, for objects the caller may read."""
    access = service.access
    out: dict[str, list[str]] = {}
    for obj in service.registry.objects.values():
        if obj.system_object or not access.can(obj.name, "read"):
            continue
        hidden = access.hidden_fields(obj.name)
        names = [n for n in searchable_fields(obj) if n not in hidden]
        if names:
            out[obj.name] = names
    return out


def _candidates(conn: sa.Connection, q: str, scope: dict[str, list[str]]) -> list[tuple]:
    where = sa.or_(*[sa.and_(entry.c.object == o, entry.c.field.in_(names)) for o, names in scope.items()])
    folded = fold(q)
    parts = folded.split()
    cols = (entry.c.object, entry.c.record_id, entry.c.field, entry.c.body)
    body = sa.func.lower(entry.c.body)

    def like(word: str):
        return body.like("%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",
                         escape="\\")

    long_words = [w for w in parts if len(w) >= 3]
    if conn.dialect.name == "sqlite" and long_words:
        grams = sorted(set().union(*(trigrams(w) for w in long_words)))
        match = " OR ".join('"' + g.replace('"', '""') + '"' for g in grams)
        fts = sa.table("mc_search_fts", sa.column("rowid"))
        query = (sa.select(*cols).select_from(entry.join(fts, fts.c.rowid == entry.c.id))
                 .where(sa.text("mc_search_fts MATCH :m").bindparams(m=match), where)
                 .order_by(sa.text("mc_search_fts.rank")).limit(CANDIDATES))
    elif conn.dialect.name == "postgresql" and long_words:
        # pg_trgm may sit in a schema off this connection's search_path (a schema per org): name it
        trgm = index.quote_ident(index.trgm_schema(conn) or "public")
        similar = [sa.literal(w).op(f"OPERATOR({trgm}.<%)")(body) for w in long_words]
        ranking = sa.text(f"{trgm}.word_similarity(:folded, lower(mc_search_entry.body)) DESC").bindparams(
            folded=folded)
        query = (sa.select(*cols).where(where, sa.or_(*[like(w) for w in parts], *similar))
                 .order_by(ranking).limit(CANDIDATES))
    else:
        query = sa.select(*cols).where(where, sa.and_(*[like(w) for w in parts])).limit(CANDIDATES)
    try:
        return [tuple(r) for r in conn.execute(query)]
    except sa.exc.ProgrammingError:  # PostgreSQL without pg_trgm: no `<%`, substrings only
        conn.rollback()
        query = sa.select(*cols).where(where, sa.or_(*[like(w) for w in parts])).limit(CANDIDATES)
        return [tuple(r) for r in conn.execute(query)]


def search(service: RecordService, q: str, *, per_object: int = 5, objects: list[str] | None = None) -> list[Group]:
    q = (q or "").strip()
    if not q:
        return []
    if len(q) > MAX_QUERY:
        raise BadRequest(f"A search is at most {MAX_QUERY} characters.", code="bad_query",
                         fields={"q": [f"At most {MAX_QUERY} characters."]})
    if not 1 <= per_object <= 50:
        raise BadRequest("limit must be between 1 and 50.", fields={"limit": ["out of range"]})
    scope = allowed_fields(service)
    if objects:
        unknown = [o for o in objects if o not in scope]
        if unknown:  # unknown and unreadable look the same
            raise BadRequest("Unknown object.", code="unknown_object", fields={"object": unknown})
        scope = {o: scope[o] for o in objects}
    if not scope:
        return []
    with service.runtime.engine.connect() as conn:
        rows = _candidates(conn, q, scope)
    best: dict[str, dict[str, Hit]] = {}
    for object_name, record_id, field_name, body in rows:
        s = score(q, body)
        if s < THRESHOLD:
            continue
        hits = best.setdefault(object_name, {})
        if record_id not in hits or hits[record_id].score < s:
            hits[record_id] = Hit(record_id, field_name, body, s)
    groups: list[Group] = []
    for object_name in scope:
        hits = best.get(object_name)
        if not hits:
            continue
        ranked = sorted(hits.values(), key=lambda h: -h.score)[:200]
        records, _ = service.list(object_name, filter={"id": {"in": [h.record_id for h in ranked]}},
                                  limit=len(ranked))
        by_id = {r["id"]: r for r in records}
        kept = [h for h in ranked if h.record_id in by_id]
        if not kept:
            continue
        group = Group(object_name, [by_id[h.record_id] for h in kept[:per_object]],
                      {h.record_id: h for h in kept[:per_object]}, len(kept) > per_object)
        groups.append(group)
    groups.sort(key=lambda g: -max(h.score for h in g.hits.values()))
    return groups
