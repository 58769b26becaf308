"""docs/plugins.md is tested: its `file=` code blocks make a plugin package, which is
installed through the loader's discovery (by module path) and used over the API."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from metacrm.plugins import install, loader

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
BLOCK = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str, str]]:
    """(language, file or "", code) of every fenced block in the guide."""
    found = []
    for lang, info, code in BLOCK.findall(GUIDE.read_text(encoding="utf-8")):
        match = re.search(r"\bfile=(\S+)", info)
        found.append((lang, match.group(1) if match else "", code))
    return found


def test_every_python_snippet_in_the_guide_compiles():
    snippets = [code for lang, _, code in blocks() if lang == "python"]
    assert len(snippets) >= 4
    for code in snippets:
        compile(code, str(GUIDE), "exec")


@pytest.fixture
def guide_plugin(tmp_path):
    files = {name: code for _, name, code in blocks() if name}
    assert {"pyproject.toml", "acme_rating/__init__.py", "acme_rating/metadata/review.object.json"} <= set(files)
    for name, code in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code, encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    name = loader.register_module("acme_rating")
    yield tmp_path, name
    loader.unregister_module(name)
    sys.path.remove(str(tmp_path))
    for module in [m for m in sys.modules if m == "acme_rating" or m.startswith("acme_rating.")]:
        del sys.modules[module]


def test_the_guides_plugin_installs_and_works(runtime, app, client, admin_headers, guide_plugin):
    root, name = guide_plugin
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["metacrm.plugins"] == {"acme_rating": "acme_rating"}
    assert name == "acme_rating"

    plan = install.install(runtime, name, dry_run=True)
    assert plan["diff"]["documents"]["added"] == ["object/acme_rating__review"]
    assert plan["warnings"] == []
    install.install(runtime, name)
    loader.mount_blueprints(app)

    account = client.post("/api/v1/records/account", json={"name": "Acme"}, headers=admin_headers).get_json()
    reviews = "/api/v1/records/acme_rating__review"
    low = client.post(reviews, json={"account": account["id"], "score": 2}, headers=admin_headers)
    assert low.status_code == 400
    assert low.get_json()["error"]["fields"] == {"comment": ["Required for a score of 1 or 2."]}
    assert client.post(reviews, json={"account": account["id"], "score": 5}, headers=admin_headers).status_code == 201
    assert client.post(reviews, json={"account": account["id"], "score": 2, "comment": "late"},
                       headers=admin_headers).status_code == 201
    rated = client.get(f"/api/v1/records/account/{account['id']}", headers=admin_headers).get_json()
    assert (rated["acme_rating__average"], rated["acme_rating__reviews"]) == ("3.50", 2)

    assert client.post(reviews, json={"account": account["id"], "score": 5}, headers=admin_headers).status_code == 201
    top = client.get("/api/v1/x/acme_rating/top", headers=admin_headers).get_json()["items"]
    assert [(a["name"], a["acme_rating__average"]) for a in top] == [("Acme", "4.00")]

    reset = client.post(f"/api/v1/records/account/{account['id']}/actions/reset_rating", headers=admin_headers)
    assert reset.status_code == 200 and reset.get_json() == {"reset": account["id"]}
    assert client.get("/api/v1/x/acme_rating/top", headers=admin_headers).get_json()["items"] == []

    install.uninstall(runtime, name)
    assert not runtime.compiled(force=True).registry.has_object("acme_rating__review")
