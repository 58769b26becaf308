"""API fuzzing with schemathesis against the OpenAPI document the app generates from its live
metadata (`GET /api/v1/openapi.json`), in-process over WSGI, on a SQLite database initialised
with the default metadata and the demo company (small scale).

Every generated request (positive and negative data, the coverage phase's boundary cases) must
get an answer that its own document describes: no 5xx, a documented status code, the documented
content type, a body that matches the documented schema and the documented headers.

`make test` runs a bounded, repeatable portion: a fixed seed, derandomized, a few examples per
operation (METACRM_FUZZ_EXAMPLES, default below). `make fuzz` runs a longer one with a random
seed (printed, so a failure can be replayed with METACRM_FUZZ_SEED=<seed>).

Two portions: the admin (every operation, the coverage phase too) and a sales rep (role sales_rep:
fewer objects, less allowed; 403 / 404 must be documented answers). Most generated record ids,
lookups and owners are swapped for real ones (World.prepare), and a PATCH that sends an integer
version gets the current one, so that cases reach the validation and hooks behind a lookup check,
a 404 or a stale version.

What is not fuzzed, and why:
- DELETE /auth/token revokes the very token the session authenticates with.
- Metadata and plugin changes (PUT/DELETE /meta/{kind}/{name}, POST /meta/apply, POST
  /plugins/{name}/install|upgrade|uninstall) are fuzzed, but always with `?dry_run=1`: a real
  apply could drop objects (and their tables) or uninstall the lead-to-cash plugin that the rest
  of the session fuzzes.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter, defaultdict
from typing import ClassVar

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, seed
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

schemathesis = pytest.importorskip("schemathesis")

from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from metacrm.platform.config import Config
from metacrm.platform.db import make_engine
from metacrm.platform.setup import build_runtime, initialise

ADMIN_PASSWORD = "fuzz-admin-pass-123"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
# Bounded by default (make test); `make fuzz` raises it and randomises the seed.
MAX_EXAMPLES = int(os.environ.get("METACRM_FUZZ_EXAMPLES", "10"))
REP_MAX_EXAMPLES = max(2, MAX_EXAMPLES // 2)
_seed_env = os.environ.get("METACRM_FUZZ_SEED", "20240917")
SEED = random.SystemRandom().getrandbits(32) if _seed_env == "random" else int(_seed_env)
DETERMINISTIC = _seed_env != "random"
# The sales rep's portion skips the coverage phase (boundary values of every field) in the bounded
# run: the admin's portion already sends those; the rep's is about 403 / 404 being documented.
REP_COVERAGE = not DETERMINISTIC or os.environ.get("METACRM_FUZZ_REP_COVERAGE") == "1"
# The bounded run must execute at least this many cases (checked at the end of the module).
MIN_CASES = int(os.environ.get("METACRM_FUZZ_MIN_CASES", "2000"))

# Operations that would destroy the fuzzing session itself.
EXCLUDED = {("DELETE", "/auth/token")}
# Operations fuzzed only as dry runs (their real effect would change the world under the fuzzer).
DRY_RUN_ONLY = (("PUT", "/meta/"), ("DELETE", "/meta/"), ("POST", "/meta/apply"), ("POST", "/plugins/"))

FUZZ_USERS = ("admin", "hardware.rep1")
cases_run: Counter = Counter()
statuses: dict = defaultdict(Counter)


def _config(examples: int, coverage: bool = True):
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "suppress-health-check": ["all"],
        "generation": {"mode": "all", "max-examples": examples, "deterministic": DETERMINISTIC,
                       "database": "none", "no-shrink": os.environ.get("METACRM_FUZZ_NO_SHRINK") == "1"},
        "phases": {"examples": {"enabled": False}, "coverage": {"enabled": coverage},
                   "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
    })


class World:
    """The fuzzed installation: a runtime, its Flask app, tokens and some real record ids."""

    def __init__(self, tmp_path):
        from metacrm.platform.app import create_app
        from metacrm.plugins.lead_to_cash.demo import DEFAULT_PASSWORD, seed_demo

        url = f"sqlite:///{tmp_path / 'fuzz.db'}"
        self.config = Config(database_url=url, secret_key="fuzz-secret", testing=True)
        self.runtime = build_runtime(self.config, make_engine(url))
        initialise(self.runtime, ADMIN_PASSWORD)
        seed_demo(self.runtime, scale=0.05)
        self.runtime.compiled(force=True)
        self.app = create_app(self.config, self.runtime)
        self.app.config["TESTING"] = True
        client = self.app.test_client()
        self.admin_token = self._token(client, FUZZ_USERS[0], ADMIN_PASSWORD)
        self.rep_token = self._token(client, FUZZ_USERS[1], os.environ.get("METACRM_DEMO_PASSWORD") or DEFAULT_PASSWORD)
        self.ids = self._sample_ids()
        self._turn = 0
        registry = self.runtime.registry()
        # Reference fields per object (lookups, users, owner) and their target object.
        self.refs = {name: {f.name: ("user" if f.type == "user" or f.name == "owner" else f.target[0])
                            for f in obj.all_fields.values()
                            if f.type in ("lookup", "user") or f.name == "owner"}
                     for name, obj in registry.objects.items()}

    @staticmethod
    def _token(client, username: str, password: str) -> str:
        response = client.post("/api/v1/auth/token", json={"username": username, "password": password})
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()["token"]

    def _sample_ids(self) -> dict[str, list[str]]:
        """A few real ids per object, so that /records/{object}/{id}... reaches real records too."""
        compiled = self.runtime.compiled()
        ids: dict[str, list[str]] = {}
        with self.runtime.engine.connect() as conn:
            for name in compiled.registry.objects:
                table = compiled.tables[name]
                rows = conn.execute(sa.select(table.c.id).order_by(table.c.id).limit(4)).scalars().all()
                ids[name] = list(rows)
        # The fuzzing users themselves are left alone: deactivating or deleting one ends its session.
        users = compiled.tables["user"]
        with self.runtime.engine.connect() as conn:
            ids["user"] = conn.execute(sa.select(users.c.id).where(users.c.username.not_in(FUZZ_USERS))
                                       .order_by(users.c.id).limit(4)).scalars().all()
        return ids

    def schema(self, token: str, examples: int, coverage: bool = True):
        schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", self.app, config=_config(examples, coverage),
                                               headers={"Authorization": f"Bearer {token}"})
        return schema

    def _pick(self, choices: list[str]) -> str | None:
        """Every 5th call None (keep the generated value), else a real one: deterministic, as the
        cases come in a fixed order."""
        self._turn += 1
        return choices[self._turn % len(choices)] if choices and self._turn % 5 else None

    def prepare(self, case) -> None:
        """Point most generated cases at real data: a random string as a record id only ever gets a
        404, and as a lookup or owner only ever tests the lookup check, hiding every other field's."""
        method, parts = case.operation.method.upper(), case.operation.path.split("/")
        params = case.path_parameters or {}
        object_name = params.get("object") or (parts[2] if len(parts) > 2 else None)
        if parts[1:2] != ["records"] or object_name not in self.refs:
            return
        if "id" in params and isinstance(params["id"], str):
            real = self._pick(self.ids.get(object_name, []))
            if real:
                case.path_parameters = {**params, "id": real}
        if method in ("POST", "PATCH") and isinstance(case.body, dict) and parts[2] == object_name:
            body = dict(case.body)
            for field, target in self.refs[object_name].items():
                if isinstance(body.get(field), str):
                    real = self._pick(self.ids.get(target, []))
                    if real:
                        body[field] = real
            case.body = body

    def current_version(self, object_name: str, record_id: str) -> int | None:
        compiled = self.runtime.compiled()
        if not compiled.registry.has_object(object_name):
            return None
        table = compiled.tables[object_name]
        with self.runtime.engine.connect() as conn:
            return conn.execute(sa.select(table.c.version).where(table.c.id == record_id)).scalar()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    print(f"\nfuzz: seed {SEED} (replay: METACRM_FUZZ_SEED={SEED}), {MAX_EXAMPLES} examples per operation")
    return World(tmp_path_factory.mktemp("fuzz"))


def _excluded(ctx) -> bool:
    return (ctx.operation.method.upper(), ctx.operation.path) in EXCLUDED


def _run(case, label: str, token: str, world: World) -> None:
    method, path = case.operation.method.upper(), case.operation.path
    if any(method == m and path.startswith(p) for m, p in DRY_RUN_ONLY):
        case.query = {**(case.query or {}), "dry_run": "1"}
    world.prepare(case)
    if method == "PATCH" and isinstance(case.body, dict) and isinstance(case.body.get("version"), int):
        # A generated integer version is nearly always stale: send the current one, so that the
        # update itself (validation, hooks, locks) is what gets fuzzed.
        current = world.current_version(path.split("/")[2], (case.path_parameters or {}).get("id", ""))
        if current is not None:
            case.body = {**case.body, "version": current}
    cases_run[label] += 1
    response = case.call(headers={"Authorization": f"Bearer {token}"})
    statuses[(label, f"{method} {path}")][_outcome(response)] += 1
    case.validate_response(response, checks=CHECKS, headers={"Authorization": f"Bearer {token}"})


def _outcome(response) -> str:
    """The status, with the error code of an error answer (for the METACRM_FUZZ_TIMINGS summary)."""
    if response.status_code < 400:
        return str(response.status_code)
    try:
        error = response.json()["error"]
        fields = ",".join(sorted(error.get("fields") or {}))[:40]
        return f"{response.status_code} {error['code']}" + (f" [{fields}]" if fields else "")
    except Exception:  # noqa: BLE001 - any body
        return str(response.status_code)


def fuzz(world: World, schema, label: str, token: str) -> None:
    """Run every operation's generated cases; collect every failing operation, then fail once with all
    of them (each with its reproduction), rather than stopping at the first."""
    from schemathesis.core.result import Ok
    from schemathesis.pytest.lazy import get_all_tests

    def test(case):
        _run(case, label, token, world)

    schema = schema.clone(test_function=test).exclude(_excluded)
    failures, timings = [], []
    for result in get_all_tests(schema=schema, test_func=test, settings=None, given_kwargs=None):
        if not isinstance(result, Ok):
            failures.append(f"invalid operation: {result.err()}")
            continue
        operation, run = result.ok()
        started, before = time.monotonic(), cases_run[label]
        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every failure is reported
            failures.append(f"{operation.label}: {type(exc).__name__}: {exc}")
        timings.append((time.monotonic() - started, cases_run[label] - before, operation.label))
    if os.environ.get("METACRM_FUZZ_TIMINGS"):
        for elapsed, count, name in sorted(timings, reverse=True):
            print(f"{elapsed:7.2f}s {count:4d} {name} {dict(statuses[(label, name)])}")
    assert not failures, f"{len(failures)} failing operation(s) as {label} (seed {SEED}):\n\n" + "\n\n".join(failures)


def test_fuzz_as_sales_rep(world):
    """A sales rep sees fewer objects and may do less: 403 / 404 must be documented answers too."""
    fuzz(world, world.schema(world.rep_token, REP_MAX_EXAMPLES, REP_COVERAGE), "sales_rep", world.rep_token)


def test_fuzz_as_admin(world):
    fuzz(world, world.schema(world.admin_token, MAX_EXAMPLES), "admin", world.admin_token)


def test_fuzz_case_count():
    """The bounded run executes enough cases to mean something (reported for `make test`)."""
    total = sum(cases_run.values())
    if not total:
        pytest.skip("the fuzz tests did not run")
    print(f"\nfuzz: seed {SEED}, {dict(cases_run)} cases, {total} in all")
    assert total >= MIN_CASES, f"only {total} fuzz cases ran; raise METACRM_FUZZ_EXAMPLES"


# Requests that once got a 500 (found by this fuzzer or alongside it): each must be a clean 400/404.
REGRESSIONS = [
    ("PUT", "/approvals/delegation", '{"delegate_to": [null, null], "until": "2000-01-01T00:00:00Z"}', 400),
    ("POST", "/records/lead/{lead}/submit", '{"process": ["x"]}', 400),
    ("POST", "/admin/outbox/6066049367330270285838396176728064/retry", None, 404),
    ("POST", "/notifications/6066049367330270285838396176728064/read", None, 404),
    ("GET", "/meta/changes/6066049367330270285838396176728064", None, 404),
    ("POST", "/meta/changes/2147483648/revert", None, 404),
    ("POST", "/meta/changes/1/revert", '{"document": 5}', 400),
    ("GET", "/meta/changes?cursor=Yzk5OTk5OTk5OTk5OTk5OTk5", None, 400),
    ("PATCH", "/records/lead/{lead}", '{"version": 1e400, "company": "x"}', 400),
    ("PATCH", "/records/lead/{lead}", '{"version": true, "company": "x"}', 400),
    ("POST", "/records/lead", '{"company": "\\ud800", "source": "web"}', 400),
    ("POST", "/records/lead", '{"company": "a\\u0000b", "source": "web"}', 400),
    ("POST", "/records/lead/import", '[{"company": "\\udfff", "source": "web"}]', 400),
    ("POST", "/records/lead/duplicates", '{"company": "\\ud800"}', 400),
    ("POST", "/auth/token", '{"username": "\\ud800", "password": "x"}', 400),
    ("GET", '/records/lead?filter={"company":{"eq":"\\ud800"}}', None, 400),
    ("GET", '/pools/general_leads/records?filter={"company":{"eq":"\\ud800"}}', None, 400),
    ("GET", '/reports/leads_by_month?filter={"company":{"eq":"\\ud800"}}', None, 400),
    ("GET", "/records/lead?filter=" + "[" * 100000, None, 400),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), REGRESSIONS,
                         ids=[f"{m} {p[:40]}" for m, p, _, _ in REGRESSIONS])
def test_fuzz_regressions(world, method, path, body, status):
    client = world.app.test_client()
    path = "/api/v1" + path.replace("{lead}", world.ids["lead"][-1])
    kwargs = {"data": body.encode(), "content_type": "application/json"} if body is not None else {}
    response = client.open(path, method=method, headers={"Authorization": f"Bearer {world.admin_token}"}, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] and error["message"]


# --- stateful sequences: create -> update -> delete -> restore, metadata changes in between ------
#
# A hypothesis state machine drives the REST API of a fresh installation (the `runtime` fixture:
# SQLite and PostgreSQL) through sequences of record writes on one object, with metadata changes
# (a new field, a changed picklist, a field made required or optional) between them. After every
# step: no 5xx; a refused request changed nothing (every live record reads back as before); an
# accepted write raised the version by exactly one (none for an edit that changed nothing); a
# restored record equals the one deleted (fields added meanwhile empty). Bounded in `make test`
# (the fixed seed, STATEFUL_EXAMPLES sequences of STATEFUL_STEPS steps); `make fuzz` scales both.

STATEFUL_EXAMPLES = max(3, MAX_EXAMPLES // 3)
STATEFUL_STEPS = 14 if DETERMINISTIC else 40
WRITES_PER_METADATA_CHANGE = 4  # an apply costs about a second: between every few writes, not each
FZ_OBJECT = {
    "kind": "object", "name": "fz_item", "label": {"en": "Item", "zh-CN": "条目"}, "name_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True, "max_length": 40},
        {"name": "qty", "type": "integer", "min": 0, "max": 1000},
        {"name": "status", "type": "picklist", "options": ["a", "b", "c"]},
        {"name": "note", "type": "text"},
    ],
}
URL = "/api/v1/records/fz_item"
# What every write changes besides the caller's values.
STAMPS = ("version", "updated_at", "updated_by", "deleted_at")


def _value(fdef: dict):
    """A value for a field: mostly plausible, sometimes wrong (type, range, option, NUL, length)."""
    wrong = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                      st.text(max_size=3).map(lambda s: s + "\x00"), st.just("x" * 300), st.lists(st.integers(),
                                                                                                   max_size=2))
    if fdef["type"] == "integer":
        good = st.integers(min_value=fdef.get("min", -5), max_value=fdef.get("max", 5000))
    elif fdef["type"] == "picklist":
        good = st.sampled_from(fdef["options"] + ["zz"])
    else:
        good = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1,
                       max_size=12)
    return st.one_of(good, good, good, good, wrong)


class RecordSequences(RuleBasedStateMachine):
    """Set per test by test_stateful_record_sequences: the Flask client and the admin's headers."""

    client: ClassVar = None
    headers: ClassVar[dict] = {}

    def __init__(self):
        super().__init__()
        self.live: dict[str, dict] = {}  # id -> the record as the API last answered it
        self.deleted: dict[str, dict] = {}  # id -> the record as it was when deleted
        doc = self.call("get", "/api/v1/meta/object/fz_item").get_json()
        if {k: v for k, v in doc.items() if k != "version"} != FZ_OBJECT:
            # every sequence starts from the same metadata (hypothesis replays sequences to shrink)
            self.call("put", "/api/v1/meta/object/fz_item", json=FZ_OBJECT)
            doc = self.call("get", "/api/v1/meta/object/fz_item").get_json()
        self.doc = {k: v for k, v in doc.items() if k != "version"}
        self.doc_version = doc["version"]
        self.writes = 0  # record writes since the last metadata change

    def call(self, method: str, url: str, **kwargs):
        response = getattr(self.client, method)(url, headers=self.headers, **kwargs)
        assert response.status_code < 500, (method, url, kwargs, response.get_data(as_text=True))
        return response

    def fields(self) -> dict[str, dict]:
        return {f["name"]: f for f in self.doc["fields"]}

    def payload(self, data, creating: bool) -> dict:
        self.writes += 1
        names = sorted(self.fields())
        chosen = data.draw(st.lists(st.sampled_from(names), unique=True, min_size=1, max_size=len(names)))
        body = {name: data.draw(_value(self.fields()[name])) for name in chosen}
        if creating and data.draw(st.integers(min_value=0, max_value=4)) < 4:
            # mostly a full, valid record (so that a value lost by a later step shows), then the drawn values
            full = {"name": data.draw(st.text(alphabet="abcdefgh ", min_size=1, max_size=10)), "note": "n",
                    "qty": 1, "status": self.fields()["status"]["options"][0]}
            body = {**{k: v for k, v in full.items() if k in self.fields()}, **body}
            body["name"] = full["name"]
        return body

    # --- record writes ---------------------------------------------------------------------

    @rule(data=st.data())
    def step(self, data):
        """One write, picked among those that can apply now (hypothesis' own rule choice switches
        whole rules off per sequence; this keeps every kind of write in every sequence)."""
        actions = ["update"] * 3 * bool(self.live) + ["create"] * (2 if len(self.live) < 4 else 0)
        actions += ["delete"] * bool(self.live) + ["restore"] * bool(self.deleted)
        if self.writes >= WRITES_PER_METADATA_CHANGE:
            actions.append("change_metadata")
        getattr(self, data.draw(st.sampled_from(actions), label="action"))(data)

    def create(self, data):
        body = self.payload(data, creating=True)
        before = self.count()
        response = self.call("post", URL, json=body)
        if response.status_code == 201:
            record = response.get_json()
            assert record["version"] == 1 and self.count() == before + 1
            self.live[record["id"]] = record
        else:
            assert self.count() == before, ("a refused create wrote a record", body, response.get_json())

    def update(self, data):
        record_id = data.draw(st.sampled_from(sorted(self.live)))
        before = self.live[record_id]
        body = self.payload(data, creating=False)
        stale = data.draw(st.integers(min_value=0, max_value=9)) == 9
        response = self.call("patch", f"{URL}/{record_id}",
                             json={**body, "version": before["version"] - 1 if stale else before["version"]})
        if response.status_code == 200:
            assert not stale
            after = response.get_json()
            changed = any(after.get(k) != before.get(k) for k in after if k not in STAMPS)
            assert after["version"] == before["version"] + (1 if changed else 0), (before, after)
            self.live[record_id] = after
        else:
            assert response.status_code in (400, 409, 422), response.get_json()

    def delete(self, data):
        record_id = data.draw(st.sampled_from(sorted(self.live)))
        response = self.call("delete", f"{URL}/{record_id}")
        assert response.status_code == 204, response.get_json()
        assert self.call("get", f"{URL}/{record_id}").status_code == 404
        self.deleted[record_id] = self.live.pop(record_id)

    def restore(self, data):
        record_id = data.draw(st.sampled_from(sorted(self.deleted)))
        response = self.call("post", f"{URL}/{record_id}/restore")
        assert response.status_code == 200, response.get_json()
        restored, gone = response.get_json(), self.deleted.pop(record_id)
        assert restored["version"] == gone["version"] + 2  # the delete, then the restore
        assert restored.get("deleted_at") is None
        for key, value in restored.items():
            if key not in STAMPS:
                assert gone.get(key) == value, (key, gone, restored)  # fields added meanwhile: both empty
        self.live[record_id] = restored

    # --- metadata changes between the writes --------------------------------------------------

    def change_metadata(self, data):
        self.writes = 0
        doc = json.loads(json.dumps(self.doc))
        fields = {f["name"]: f for f in doc["fields"]}
        change = data.draw(st.sampled_from(["add_field", "add_option", "drop_option", "toggle_required"]))
        if change == "add_field":
            kind = data.draw(st.sampled_from(["text", "integer"]))
            doc["fields"].append({"name": f"extra_{len(doc['fields'])}", "type": kind})
        elif change == "add_option":
            fields["status"]["options"].append(f"o{len(fields['status']['options'])}")
        elif change == "drop_option" and len(fields["status"]["options"]) > 1:
            fields["status"]["options"].pop()
        elif change == "toggle_required":
            note = fields["note"]
            note["required"] = not note.get("required", False)
        response = self.call("put", "/api/v1/meta/object/fz_item", json={**doc, "version": self.doc_version})
        if response.status_code != 200:
            assert response.status_code in (400, 409, 422), response.get_json()
            return
        self.doc, self.doc_version = doc, response.headers["ETag"].strip('"')
        names = set(self.fields())
        for record_id, record in self.live.items():
            current = self.call("get", f"{URL}/{record_id}").get_json()
            assert current["version"] == record["version"], "a metadata change rewrote a record's version"
            for key, value in current.items():
                assert record.get(key) == value, (key, record, current)  # new fields are empty
            assert names <= set(current), (names, current)
            self.live[record_id] = current

    # --- after every step ----------------------------------------------------------------------

    def count(self) -> int:
        answer = self.call("post", "/api/v1/aggregate/fz_item", json={})
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()["totals"]["count"]

    @invariant()
    def everything_reads_back_as_the_model_says(self):
        for record_id, record in self.live.items():
            current = self.call("get", f"{URL}/{record_id}")
            assert current.status_code == 200 and current.get_json() == record, (record, current.get_json())
        for record_id in self.deleted:
            assert self.call("get", f"{URL}/{record_id}").status_code == 404


def test_stateful_record_sequences(runtime, client, admin_headers):
    """Sequences of record writes and metadata changes keep the invariants (see above)."""
    from metacrm.metadata.bundle import documents_bundle
    from metacrm.platform.apply import apply_change

    apply_change(runtime, documents_bundle([FZ_OBJECT]))
    runtime.compiled(force=True)
    RecordSequences.client, RecordSequences.headers = client, admin_headers
    machine = seed(SEED)(RecordSequences)
    run_state_machine_as_test(machine, settings=hsettings(
        max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS, deadline=None, database=None,
        derandomize=False, suppress_health_check=list(HealthCheck), print_blob=True, report_multiple_bugs=False,
        phases=[Phase.generate] if os.environ.get("METACRM_FUZZ_NO_SHRINK") == "1" else list(Phase)))
