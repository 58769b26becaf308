"""Idempotency-Key on every state-changing REST call (issue 13.12), on SQLite and PostgreSQL:
a repeat replays the stored first answer, another body with the key is 422, concurrent
requests with one key do the work once, keys are per user and kept 24 h."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform import db
from metacrm.platform.api import idempotency
from metacrm.platform.apply import apply_change
from metacrm.platform.clock import utcnow
from tests.conftest import make_user

DOCS = [
    {"kind": "object", "name": "ik_thing", "name_field": "name", "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "code", "type": "text", "unique": True},
        {"name": "size", "type": "integer"},
        {"name": "ref", "type": "text", "indexed": True},
    ]},
    {"kind": "role", "name": "ik_rep", "objects": {"ik_thing": {"create": "all", "read": "all", "edit": "all"}}},
]
URL = "/api/v1/records/ik_thing"


@pytest.fixture
def things(runtime):
    apply_change(runtime, documents_bundle(DOCS))
    runtime.compiled(force=True)
    return runtime


def count(runtime, *where) -> int:
    table = runtime.compiled().tables["ik_thing"]
    with runtime.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(
            table.c.deleted_at.is_(None), *where)).scalar()


def keyed(headers: dict, key: str) -> dict:
    return {**headers, "Idempotency-Key": key}


def test_a_repeated_create_is_replayed_not_done_twice(things, client, admin_headers):
    first = client.post(URL, json={"name": "Once"}, headers=keyed(admin_headers, "create-1"))
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = client.post(URL, json={"name": "Once"}, headers=keyed(admin_headers, "create-1"))
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert again.headers["Content-Type"] == first.headers["Content-Type"]
    # the same body with other whitespace or key order is the same request
    spaced = client.post(URL, data=json.dumps({"name": "Once"}, indent=2), content_type="application/json",
                         headers=keyed(admin_headers, "create-1"))
    assert spaced.status_code == 201 and spaced.get_json()["id"] == first.get_json()["id"]
    assert count(things) == 1
    # without a key, two POSTs are two creates (nothing changes for clients that send none)
    client.post(URL, json={"name": "Once"}, headers=admin_headers)
    assert count(things) == 2


def test_the_key_with_another_request_is_422_and_changes_nothing(things, client, admin_headers):
    assert client.post(URL, json={"name": "A"}, headers=keyed(admin_headers, "k")).status_code == 201
    other = client.post(URL, json={"name": "B"}, headers=keyed(admin_headers, "k"))
    assert other.status_code == 422 and other.get_json()["error"]["code"] == "idempotency_key_reused"
    elsewhere = client.post(f"{URL}/import", json=[{"name": "A"}], headers=keyed(admin_headers, "k"))
    assert elsewhere.status_code == 422
    assert count(things) == 1


def test_keys_are_per_user(things, client, admin_headers, runtime):
    rep = make_user(runtime, client, "ik_rita", ["ik_rep"])
    a = client.post(URL, json={"name": "Mine"}, headers=keyed(admin_headers, "shared"))
    b = client.post(URL, json={"name": "Mine"}, headers=keyed(rep.headers, "shared"))
    assert a.status_code == b.status_code == 201 and "Idempotent-Replayed" not in b.headers
    assert a.get_json()["id"] != b.get_json()["id"] and count(things) == 2


def test_bad_keys_are_400(things, client, admin_headers):
    for key in ["", "x" * 256, "tab\there", "ключ"]:
        answer = client.post(URL, json={"name": "No"}, headers={**admin_headers, "Idempotency-Key": key.encode().decode("latin-1")})
        assert answer.status_code == 400, key
        assert answer.get_json()["error"]["code"] == "invalid_idempotency_key"
    assert count(things) == 0


def test_update_delete_restore_import_and_errors_are_replayed(things, client, admin_headers):
    created = client.post(URL, json={"name": "Edit me"}, headers=admin_headers).get_json()
    item = f"{URL}/{created['id']}"
    patch = {"size": 5, "version": created["version"]}
    first = client.patch(item, json=patch, headers=keyed(admin_headers, "p"))
    assert first.status_code == 200
    # without the key, a retry of the same PATCH is a 409 (stale version); with it, the answer
    again = client.patch(item, json=patch, headers=keyed(admin_headers, "p"))
    assert again.status_code == 200 and again.get_json() == first.get_json()
    assert client.patch(item, json=patch, headers=admin_headers).status_code == 409
    assert client.delete(item, headers=keyed(admin_headers, "d")).status_code == 204
    replay = client.delete(item, headers=keyed(admin_headers, "d"))
    assert replay.status_code == 204 and replay.headers["Idempotent-Replayed"] == "true"
    restored = client.post(f"{item}/restore", headers=keyed(admin_headers, "r"))
    assert restored.status_code == 200
    assert client.post(f"{item}/restore", headers=keyed(admin_headers, "r")).get_json() == restored.get_json()
    rows = [{"name": "Imported 1"}, {"name": "Imported 2"}]
    one = client.post(f"{URL}/import", json=rows, headers=keyed(admin_headers, "i"))
    two = client.post(f"{URL}/import", json=rows, headers=keyed(admin_headers, "i"))
    assert one.status_code == two.status_code == 200 and two.get_json() == one.get_json()
    assert count(things) == 3
    # a 4xx is the answer too: replayed, not retried (the client must fix the request)
    bad = client.post(URL, json={"size": 1}, headers=keyed(admin_headers, "bad"))
    assert bad.status_code == 400
    replayed = client.post(URL, json={"size": 1}, headers=keyed(admin_headers, "bad"))
    assert replayed.status_code == 400 and replayed.headers["Idempotent-Replayed"] == "true"


def test_a_multipart_upload_is_one_request_whatever_its_boundary(things, client, admin_headers):
    from io import BytesIO

    def upload():
        return client.post(f"{URL}/import", headers=keyed(admin_headers, "csv"),
                           data={"file": (BytesIO(b"name\nFrom CSV\n"), "things.csv")},
                           content_type="multipart/form-data")

    assert upload().status_code == 200
    assert upload().headers.get("Idempotent-Replayed") == "true"
    assert count(things) == 1


def test_a_5xx_answer_frees_the_key_for_a_retry(things, client, admin_headers, monkeypatch):
    from metacrm.platform.records import RecordService

    real = RecordService.create_record

    def broken(self, *args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(RecordService, "create_record", broken)
    assert client.post(URL, json={"name": "Later"}, headers=keyed(admin_headers, "retry")).status_code == 500
    monkeypatch.setattr(RecordService, "create_record", real)
    retry = client.post(URL, json={"name": "Later"}, headers=keyed(admin_headers, "retry"))
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry.headers
    assert count(things) == 1


def test_keys_are_kept_24_hours_then_swept(things, client, admin_headers, runtime):
    client.post(URL, json={"name": "Old"}, headers=keyed(admin_headers, "old"))
    client.post(URL, json={"name": "New"}, headers=keyed(admin_headers, "new"))
    t = db.idempotency_key
    with runtime.transaction() as tx:
        tx.conn.execute(t.update().where(t.c.key == "old").values(created_at=utcnow() - timedelta(hours=25)))
    assert "1 idempotency key" in idempotency.sweep(runtime)
    with runtime.engine.connect() as conn:
        assert [k for (k,) in conn.execute(sa.select(t.c.key))] == ["new"]
    assert any(name == "idempotency_keys" for name, _ in runtime.sweeps)


def _parallel(app, n, request) -> list:
    barrier = threading.Barrier(n)
    answers, errors = [], []

    def run():
        try:
            client = app.test_client()
            barrier.wait(timeout=60)
            answers.append(request(client))
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[0]
    assert len(answers) == n
    return answers


def test_20_parallel_imports_with_one_key_import_once(things, app, admin_headers):
    rows = [{"name": f"Parallel {i}"} for i in range(5)]
    answers = _parallel(app, 20, lambda c: c.post(f"{URL}/import", json=rows, headers=keyed(admin_headers, "par")))
    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) <= {200, 409}, statuses
    done = [a for a in answers if a.status_code == 200]
    assert sum(1 for a in done if "Idempotent-Replayed" not in a.headers) == 1
    assert all(a.get_json() == done[0].get_json() for a in done)
    for answer in answers:
        if answer.status_code == 409:
            assert answer.get_json()["error"]["code"] == "idempotency_key_in_progress"
    assert count(things) == 5


def test_20_parallel_creates_with_one_key_create_once(things, app, admin_headers):
    answers = _parallel(app, 20, lambda c: c.post(URL, json={"name": "Racer"}, headers=keyed(admin_headers, "race")))
    assert {a.status_code for a in answers} <= {201, 409}
    assert sum(1 for a in answers if a.status_code == 201 and "Idempotent-Replayed" not in a.headers) == 1
    assert count(things) == 1


# --- upsert imports are exactly-once (issue 13.13) ------------------------------------------------


@pytest.mark.parametrize("key", ["code", "ref"])  # a unique field, and a plain one
def test_20_parallel_upserts_of_one_new_value_make_one_record(things, app, admin_headers, key):
    sizes = iter(range(20))

    def upsert(client):
        rows = [{key: "NEW-1", "name": "Upserted", "size": next(sizes)}]
        return client.post(f"{URL}/import?key={key}", json=rows, headers=admin_headers)

    answers = _parallel(app, 20, upsert)
    assert {a.status_code for a in answers} == {200}
    statuses = Counter(a.get_json()["rows"][0]["status"] for a in answers)
    assert statuses == {"created": 1, "updated": 19}, [a.get_json()["rows"][0] for a in answers]
    table = things.compiled().tables["ik_thing"]
    assert count(things, table.c[key] == "NEW-1") == 1
    ids = {a.get_json()["rows"][0]["id"] for a in answers}
    assert len(ids) == 1
