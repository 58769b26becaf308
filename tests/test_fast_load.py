"""The fast loader of schemas.py must never disagree with marshmallow: for any payload it
either defers (returns None) or returns exactly what Schema.load returns."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from metacrm.metadata.model import FieldDef, ObjectDef
from metacrm.platform import schemas

FIELDS = [
    {"name": "name", "type": "text", "required": True, "max_length": 20},
    {"name": "notes", "type": "textarea"},
    {"name": "title", "type": "text"},
    {"name": "email", "type": "email"},
    {"name": "site", "type": "url"},
    {"name": "phone", "type": "phone"},
    {"name": "status", "type": "picklist", "options": ["new", "working", "已转化"]},
    {"name": "status_req", "type": "picklist", "required": True, "options": ["a", "b"]},
    {"name": "tags", "type": "multipicklist", "options": ["x", "y"]},
    {"name": "score", "type": "integer", "min": -5, "max": 100},
    {"name": "count", "type": "integer"},
    {"name": "amount", "type": "currency", "precision": 12, "scale": 2, "min": 0},
    {"name": "rate", "type": "percent", "precision": 5, "scale": 2},
    {"name": "flag", "type": "boolean"},
    {"name": "flag_req", "type": "boolean", "required": True},
    {"name": "due", "type": "date"},
    {"name": "at", "type": "datetime"},
    {"name": "account", "type": "lookup", "target": "account"},
    {"name": "parent", "type": "lookup", "target": "account", "required": True},
    {"name": "owner2", "type": "user"},
]
OBJ = ObjectDef.from_doc({"kind": "object", "name": "thing", "fields": FIELDS})
WRITABLE = [FieldDef.from_doc(doc) for doc in FIELDS]
SCHEMA = schemas.build_schema(OBJ, WRITABLE, ["admin", "sales_rep"])

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-10, max_value=200),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["new", "working", "已转化", "a", "b", "x", "x;y", " 138 0013 8000 ", "+86 138-0013-8000",
                     "a@b.example", "not an email", "https://crm.example/x", "12.345", "1e3", "2026-11-27",
                     "2026-11-27T10:00:00Z", "2026-13-01", " padded ", "", "\n", "12345678901234567890123"]),
    st.lists(st.sampled_from(["x", "y", "z"]), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
)
# values near each field's valid range, so both the fast path and its edges are exercised
near = {
    "text": st.text(max_size=300), "textarea": st.text(max_size=50),
    "email": st.emails(), "url": st.sampled_from(["https://a.example", "ftp://x", "http://"]),
    "phone": st.from_regex(r"\s?\+?[0-9 ()\-]{0,45}\s?", fullmatch=True),
    "picklist": st.sampled_from(["new", "working", "已转化", "a", "b", "New", "new "]),
    "multipicklist": st.lists(st.sampled_from(["x", "y", "z"]), max_size=3),
    "integer": st.integers(min_value=-10, max_value=150),
    "currency": st.decimals(min_value=-1, max_value=10**11, places=3).map(str),
    "percent": st.decimals(min_value=-999, max_value=999, places=2),
    "boolean": st.sampled_from([True, False, None, 0, 1, "true"]),
    "date": st.dates().map(str), "datetime": st.datetimes().map(lambda d: d.isoformat() + "Z"),
    "lookup": st.text(max_size=40), "user": st.text(max_size=40),
}
names = [f["name"] for f in FIELDS] + ["unknown", "id"]
by_name = {f["name"]: st.one_of(near[f["type"]], near[f["type"]], near[f["type"]], values) for f in FIELDS}
payloads = st.lists(st.sampled_from(names), unique=True, min_size=1, max_size=5).flatmap(
    lambda chosen: st.fixed_dictionaries({n: by_name.get(n, values) for n in chosen}))


def reference(data: dict):
    try:
        return SCHEMA.load(data, partial=True)
    except schemas.ValidationError:
        return "error"


@seed(20261127)
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_fast_load_agrees_with_marshmallow(data):
    fast = schemas.fast_load(SCHEMA, data)
    if fast is None:
        return
    expected = reference(data)
    assert expected != "error", f"fast path accepted an invalid payload {data!r}"
    assert fast == expected
    assert {k: type(v) for k, v in fast.items()} == {k: type(v) for k, v in expected.items()}


def test_fast_path_takes_the_common_valid_rows():
    row = {"name": "Acme", "title": "CEO", "status": "new", "status_req": "a", "score": 7, "flag": True,
           "phone": " +86 138-0013-8000 ", "account": "abc", "notes": "x" * 1000, "email": "a@b.example",
           "amount": "12.50", "due": "2026-11-27", "tags": ["x"]}
    fast = schemas.fast_load(SCHEMA, row)
    assert fast is not None
    assert fast == SCHEMA.load(row, partial=True)
    assert fast["phone"] == "+86 138-0013-8000" and fast["amount"] == Decimal("12.50")


def test_invalid_or_unknown_values_go_to_marshmallow_for_their_message():
    for bad in ({"name": "x" * 21}, {"status": "old"}, {"score": 101}, {"score": True}, {"flag_req": None},
                {"parent": None}, {"unknown": 1}, {"phone": "call me"}, {"amount": "1.234"},
                {"title": "nul\x00inside"}):
        assert schemas.fast_load(SCHEMA, bad) is None, bad
        _values, errors = schemas.load(SCHEMA, bad, partial=True)
        assert errors, bad


single = st.sampled_from(FIELDS).flatmap(lambda f: st.fixed_dictionaries({f["name"]: near[f["type"]]}))


@seed(20261128)
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(single)
def test_fast_load_agrees_field_by_field(data):
    test_fast_load_agrees_with_marshmallow.hypothesis.inner_test(data)
