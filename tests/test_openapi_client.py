"""A typed client generated from the live /api/v1/openapi.json keeps every schema (no record
model dropped) and works: create / read / update / list round trip against a live server."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from tests.conftest import ADMIN_PASSWORD

GENERATOR = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent)) or \
    shutil.which("openapi-python-client")
# Not a dropped schema: the import route also takes text/csv, which the generator has no type for
# (the JSON form of the same body is generated).
KNOWN_WARNINGS = ("Unsupported content type text/csv",)


def walk(node, path=""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}/{index}")


def pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace(".", "_").split("_") if part)


@pytest.fixture
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def test_every_array_in_the_document_says_what_it_holds(client, admin_headers):
    doc = client.get("/api/v1/openapi.json", headers=admin_headers).get_json()
    missing = [path for path, node in walk(doc) if node.get("type") == "array" and "items" not in node]
    assert missing == []


def test_a_generated_python_client_keeps_every_schema_and_round_trips(live_server, tmp_path, monkeypatch):
    if GENERATOR is None:
        pytest.skip("openapi-python-client is not installed (pip install -e '.[test]')")
    token = requests.post(f"{live_server}/api/v1/auth/token",
                          json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=30).json()["token"]
    doc = requests.get(f"{live_server}/api/v1/openapi.json", headers={"Authorization": f"Bearer {token}"},
                       timeout=30).json()
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(doc))
    package = f"crm_client_{os.getpid()}_{tmp_path.name.replace('-', '_')}"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run([GENERATOR, "generate", "--path", str(spec), "--output-path", str(tmp_path / package),
                          "--meta", "none"], check=False, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    output = run.stdout + run.stderr
    warnings = [line for line in output.splitlines() if line.startswith("WARNING") or "Unable to" in line
                or "Cannot parse" in line]
    unexpected = [w for w in warnings if not any(k in output[output.find(w):output.find(w) + 400]
                                                 for k in KNOWN_WARNINGS)]
    assert unexpected == [], output

    monkeypatch.syspath_prepend(str(tmp_path))
    models = importlib.import_module(f"{package}.models")
    record_schemas = [name for name in doc["components"]["schemas"]]
    assert len(record_schemas) > 20
    dropped = [name for name in record_schemas if not hasattr(models, pascal(name))]
    assert dropped == []

    client_mod = importlib.import_module(f"{package}.client")
    post = importlib.import_module(f"{package}.api.account.post_records_account")
    get = importlib.import_module(f"{package}.api.account.get_records_account_id")
    patch = importlib.import_module(f"{package}.api.account.patch_records_account_id")
    listing = importlib.import_module(f"{package}.api.account.get_records_account")
    api = client_mod.AuthenticatedClient(base_url=f"{live_server}/api/v1", token=token, raise_on_unexpected_status=True)

    created = post.sync(client=api, body=models.AccountInput(name="Typed Client Co", phone="+86 21 5555 0101"))
    assert isinstance(created, models.Account), created
    assert created.name == "Typed Client Co" and created.version == 1
    read = get.sync(client=api, id=created.id)
    assert isinstance(read, models.Account) and read.phone == "+86 21 5555 0101"
    updated = patch.sync(client=api, id=created.id, body=models.AccountUpdate(name="Typed Client Ltd", version=1))
    assert isinstance(updated, models.Account), updated
    assert updated.name == "Typed Client Ltd" and updated.version == 2
    stale = patch.sync(client=api, id=created.id, body=models.AccountUpdate(name="Old", version=1))
    assert isinstance(stale, models.Error) and stale.error.code == "stale_version"
    page = listing.sync(client=api, filter_=json.dumps({"name": "Typed Client Ltd"}))
    assert [item.id for item in page.items] == [created.id]
    assert isinstance(page.items[0], models.Account)
