"""Global search (metacrm.platform.search): what it finds (substrings, typos, Chinese, phone
digits, case), that the write path keeps it current (update, delete, restore, import, metadata
change), and that it finds only what the caller may read (row scope, hidden fields), through
the REST API, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy

import pytest

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from metacrm.platform.records import RecordService
from metacrm.platform.search import query, reindex
from tests.conftest import make_user
from tests.test_dedup import fast_hash


@pytest.fixture(autouse=True)
def quick_passwords(monkeypatch):
    monkeypatch.setattr("metacrm.platform.records.hash_password", fast_hash)


def lead(svc: RecordService, company: str, **values) -> dict:
    return svc.create("lead", {"company": company, "source": "web", **values})


def found(client, headers, q: str, **params) -> dict[str, list[str]]:
    response = client.get("/api/v1/search", query_string={"q": q, **params}, headers=headers)
    assert response.status_code == 200, response.get_json()
    return {g["object"]: [r["title"] for r in g["records"]] for g in response.get_json()["groups"]}


def test_substrings_typos_chinese_digits_and_case(admin, client, admin_headers):
    lead(admin, "Acme Corporation", phone="+86 138-0013-8000", email="Zoe@Acme.example")
    lead(admin, "北京数据科技有限公司", contact_name="张伟")
    lead(admin, "Globex Ltd")
    admin.create("account", {"name": "Acme Holdings"})
    assert found(client, admin_headers, "corpor") == {"lead": ["Acme Corporation"]}  # substring
    assert found(client, admin_headers, "Acme Corporaton")["lead"] == ["Acme Corporation"]  # a typo
    assert found(client, admin_headers, "acme") == {"lead": ["Acme Corporation"], "account": ["Acme Holdings"]}
    assert found(client, admin_headers, "数据科技") == {"lead": ["北京数据科技有限公司"]}
    assert found(client, admin_headers, "张伟") == {"lead": ["北京数据科技有限公司"]}  # two characters
    assert found(client, admin_headers, "13800138000") == {"lead": ["Acme Corporation"]}  # digits of a phone
    assert found(client, admin_headers, "ZOE@ACME") == {"lead": ["Acme Corporation"]}  # case
    assert found(client, admin_headers, "xyzzy") == {}
    body = client.get("/api/v1/search?q=acme%20corp", headers=admin_headers).get_json()
    record = body["groups"][0]["records"][0]
    assert record["matched"] == {"field": "company", "value": "Acme Corporation"} and len(record["id"]) == 32


def test_the_write_path_keeps_the_index_current(admin, client, admin_headers):
    record = lead(admin, "Initech")
    assert found(client, admin_headers, "initech") == {"lead": ["Initech"]}
    admin.update("lead", record["id"], {"company": "Initrode"}, record["version"])
    assert found(client, admin_headers, "initech") == {}
    assert found(client, admin_headers, "initrode") == {"lead": ["Initrode"]}
    admin.delete("lead", record["id"])
    assert found(client, admin_headers, "initrode") == {}
    admin.restore("lead", record["id"])
    assert found(client, admin_headers, "initrode") == {"lead": ["Initrode"]}
    admin.create_many("lead", [{"company": f"Batch Import {i}", "source": "web"} for i in range(3)])
    assert sorted(found(client, admin_headers, "batch import")["lead"]) == [f"Batch Import {i}" for i in range(3)]


def test_a_field_marked_searchable_is_found_at_once(runtime, admin, client, admin_headers):
    lead(admin, "Hooli", project_name="Nucleus rollout")
    lead_doc = copy.deepcopy(runtime.registry().get("object", "lead"))
    fdef = next(f for f in lead_doc["fields"] if f["name"] == "project_name")
    fdef["searchable"] = False
    apply_change(runtime, documents_bundle([lead_doc]))
    assert found(client, admin_headers, "nucleus") == {}
    fdef["searchable"] = True
    apply_change(runtime, documents_bundle([lead_doc]))
    assert found(client, admin_headers, "nucleus") == {"lead": ["Hooli"]}
    assert reindex(runtime) == {}  # nothing left stale: the sweep has no work


def test_only_what_the_caller_may_read(runtime, admin, client, admin_headers):
    rosa = make_user(runtime, client, "rosa", ["sales_rep"])
    sam = make_user(runtime, client, "sam", ["sales_rep"])
    lead(admin, "Umbrella Health", owner=rosa.id)
    lead(admin, "Umbrella Foods", owner=sam.id)
    account = admin.create("account", {"name": "Umbrella Group", "phone": "+86 10 5555 0101", "owner": rosa.id})
    assert found(client, rosa.headers, "umbrella") == {"lead": ["Umbrella Health"], "account": ["Umbrella Group"]}
    assert found(client, sam.headers, "umbrella") == {"lead": ["Umbrella Foods"]}
    # a field the role may not read never finds a record (no oracle) and is never shown
    assert found(client, rosa.headers, "5555 0101") == {"account": ["Umbrella Group"]}
    role = copy.deepcopy(runtime.registry().get("role", "sales_rep"))
    role.setdefault("fields", {}).setdefault("account", {})["phone"] = "hidden"
    apply_change(runtime, documents_bundle([role]))
    assert found(client, rosa.headers, "5555 0101") == {}
    assert found(client, rosa.headers, "umbrella group") == {"account": ["Umbrella Group"]}
    assert found(client, admin_headers, "5555 0101") == {"account": ["Umbrella Group"]}
    # a deleted record is not found, even by its owner
    admin.delete("account", account["id"])
    assert "account" not in found(client, rosa.headers, "umbrella")


def test_bad_queries_are_clear_4xx(client, admin_headers):
    for params, field in (({"q": ""}, "q"), ({"q": "x" * 101}, "q"), ({"q": "acme", "limit": "0"}, "limit"),
                          ({"q": "acme", "limit": "many"}, "limit"), ({"q": "acme", "objects": "nope"}, "object")):
        response = client.get("/api/v1/search", query_string=params, headers=admin_headers)
        assert response.status_code == 400, params
        assert field in response.get_json()["error"]["fields"], response.get_json()
    assert client.get("/api/v1/search?q=acme").status_code == 401
    # quotes, FTS operators and LIKE wildcards are text, not syntax
    for q in ('"', 'a" OR "b', "NEAR(x y)", "%_%", "\\", "*", "acme'--"):
        assert client.get("/api/v1/search", query_string={"q": q}, headers=admin_headers).status_code == 200, q


def test_scoring_is_the_same_on_both_databases():
    assert query.score("acme", "Acme Corporation") > query.score("corporation", "Acme Corporation") >= 1
    assert 0.5 <= query.score("Acme Corporaton", "Acme Corporation") < 1
    assert query.score("xyz", "Acme Corporation") == 0


def test_openapi_documents_search(client, admin_headers):
    doc = client.get("/api/v1/openapi.json", headers=admin_headers).get_json()
    op = doc["paths"]["/search"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"q", "limit", "objects"}
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["groups"]["items"]


def test_every_word_must_match():
    assert query.score("umbrella group", "Umbrella Health") < query.THRESHOLD
    assert query.score("group umbrella", "Umbrella Group") >= 1
    assert query.score("li wei", "Li Wei") > query.score("wei", "Li Wei")


def test_search_works_when_pg_trgm_sits_off_the_search_path(tmp_path):
    """pg_trgm is installed once per database (here in public); a runtime whose connections use
    another schema (a schema per org or per test) must still build the index and rank typos."""
    import sqlalchemy as sa

    from tests.conftest import PG_URL, require_pg
    from tests.test_outbox import installation

    require_pg()
    admin_engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
    admin_engine.dispose()
    with installation("postgresql", tmp_path) as inst:
        with inst.runtime.engine.connect() as conn:
            assert "public" not in conn.exec_driver_sql("SHOW search_path").scalar()
        lead(inst.admin, "Acme Corporation")
        assert found(inst.client, inst.admin_headers, "Acme Corporaton")["lead"] == ["Acme Corporation"]
