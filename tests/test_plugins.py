"""Plugins: discovery, install / upgrade / uninstall (CLI, API), hooks on the record service,
permissions, bad input refused with nothing applied, and other processes following."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
import uuid

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from metacrm.metadata.bundle import Bundle
from metacrm.metadata.validate import EXTRA_ACTIONS
from metacrm.platform import metastore
from metacrm.platform.actions import actions
from metacrm.platform.apply import apply_change
from metacrm.platform.errors import CrmError, MetadataInvalid, ValidationFailed
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from metacrm.platform.setup import build_runtime
from metacrm.platform.sweeps import run_all
from metacrm.plugins import install as plugins
from metacrm.plugins import loader, store
from metacrm.plugins.api import PluginFailed
from tests.conftest import make_user

GADGET = {"kind": "object", "name": "gadget", "label": "Gadget", "name_field": "name",
          "fields": [{"name": "name", "type": "text", "required": True},
                     {"name": "size", "type": "integer"}]}
ROLE = {"kind": "role", "name": "gadget_user",
        "objects": {"gadget": {"create": "all", "read": "own", "edit": "own"}}}


@pytest.fixture
def base(runtime):
    """A core object `gadget` the test plugins extend and hook, and a role for it."""
    apply_change(runtime, Bundle(documents=[GADGET, ROLE]))
    return runtime


@pytest.fixture
def make_plugin(tmp_path):
    """Write a plugin package (MANIFEST + code + bundle) and make it discoverable by module path."""
    root = tmp_path / "plugin_pkgs"
    root.mkdir()
    sys.path.insert(0, str(root))
    made: list[tuple[str, str]] = []
    actions_before = set(EXTRA_ACTIONS)

    def make(manifest: dict, code: str = "def setup(ctx):\n    pass\n", bundle: dict | None = None,
             module: str | None = None, register: bool = True) -> str:
        module = module or f"tp_{manifest.get('name', 'x')}_{uuid.uuid4().hex[:8]}"
        pkg = root / module
        pkg.mkdir()
        (pkg / "__init__.py").write_text(f"MANIFEST = {manifest!r}\n\n" + textwrap.dedent(code))
        for rel, doc in (bundle or {}).items():
            path = pkg / "metadata" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        if register:
            loader.register_module(module, name=manifest.get("name"))
        made.append((manifest.get("name"), module))
        return module

    yield make
    for name, module in made:
        loader.unregister_module(name)
        sys.modules.pop(module, None)
    sys.path.remove(str(root))
    EXTRA_ACTIONS.difference_update({a for a in EXTRA_ACTIONS - actions_before if a.startswith("tp")})


def manifest(name: str = "tp", version: str = "1.0.0", **extra) -> dict:
    return {"name": name, "version": version, "metacrm": ">=0.1,<1", **extra}


NOTE = {"kind": "object", "name": "tp__note", "fields": [{"name": "title", "type": "text"}]}

HOOKS = """
from metacrm.platform.errors import ValidationFailed

def setup(ctx):
    def check(sctx):
        size = sctx.record.get("size")
        if size is not None and size > 100:
            raise ValidationFailed("Too big.", fields={"size": ["At most 100."]})
        sctx.record["tp__label"] = (sctx.record.get("name") or "").upper()

    def crash(sctx):
        if sctx.record.get("name") == "boom":
            raise ZeroDivisionError("boom")

    ctx.before_save("gadget", check)
    ctx.after_save("gadget", crash)
"""


def system(runtime) -> RecordService:
    """A fresh service (a RecordService keeps the metadata version it was made with)."""
    return RecordService(runtime, Principal.system(), source="test")


def version_of(runtime) -> int:
    with runtime.engine.connect() as conn:
        return metastore.current_version(conn)


def rows(runtime) -> dict:
    with runtime.engine.connect() as conn:
        return store.read_all(conn)


def columns(runtime, table: str) -> set[str]:
    with runtime.engine.connect() as conn:
        inspector = sa.inspect(conn)
        return {c["name"] for c in inspector.get_columns(table)} if inspector.has_table(table) else set()


# --- install and hooks -------------------------------------------------------------------------


def test_install_shows_the_diff_applies_it_and_hooks_work(base, make_plugin, client, admin_headers):
    make_plugin(manifest(extends={"gadget": [{"name": "tp__label", "type": "text"}]},
                         hooks={"before_save": ["gadget"], "after_save": ["gadget"]}, bundle="metadata"),
                HOOKS, bundle={"note.object.json": NOTE})
    before = version_of(base)

    plan = plugins.install(base, "tp", dry_run=True)
    assert plan["applied"] is False
    assert plan["diff"]["documents"]["added"] == ["object/tp__note"]
    assert plan["diff"]["documents"]["changed"] == ["object/gadget"]
    assert {"table": "rec_gadget", "column": "tp__label", "type": "VARCHAR(255)"} in plan["diff"]["storage"][
        "new_columns"]
    assert plan["registers"]["hooks"] == {"before_save": ["gadget"], "after_save": ["gadget"]}
    assert version_of(base) == before and rows(base) == {} and not base.registry().has_object("tp__note")

    result = plugins.install(base, "tp")
    assert result["applied"] and result["version"] == "1.0.0"
    registry = base.registry()
    assert registry.get("object", "tp__note")["plugin"] == "tp"
    assert "tp__label" in registry.object("gadget").fields
    row = rows(base)["tp"]
    assert (row.status, row.version, row.enabled, row.granted) == ("installed", "1.0.0", True, [])
    assert row.manifest["name"] == "tp" and row.documents == [("object", "tp__note")]

    # before_save derives a value, and refuses with field errors that name the plugin
    created = client.post("/api/v1/records/gadget", json={"name": "box", "size": 3}, headers=admin_headers)
    assert created.status_code == 201 and created.get_json()["tp__label"] == "BOX"
    refused = client.post("/api/v1/records/gadget", json={"name": "huge", "size": 101}, headers=admin_headers)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["fields"] == {"size": ["At most 100."]}
    assert refused.get_json()["error"]["plugin"] == "tp"


def test_a_crashing_plugin_rolls_the_save_back_and_is_named(base, make_plugin, client, admin_headers):
    make_plugin(manifest(extends={"gadget": [{"name": "tp__label", "type": "text"}]}), HOOKS)
    plugins.install(base, "tp")
    answer = client.post("/api/v1/records/gadget", json={"name": "boom"}, headers=admin_headers)
    assert answer.status_code == 500  # a plugin bug is a server-side error, not the caller's
    error = answer.get_json()["error"]
    assert error["code"] == "plugin_error" and error["plugin"] == "tp" and "after_save" in error["hook"]
    assert "'tp'" in error["message"] and "ZeroDivisionError" in error["message"]
    assert system(base).list("gadget")[0] == []  # the row written before the after_save hook is gone
    with pytest.raises(PluginFailed):
        system(base).create("gadget", {"name": "boom"})


def test_plugin_services_are_bound_to_the_acting_user_unless_elevated(base, make_plugin, app, client):
    from metacrm.plugins.loader import mount_blueprints

    mount_blueprints(app)
    other = system(base).create("gadget", {"name": "not yours"})
    assert client.get("/api/v1/x/tp/peek/1").status_code == 404  # the app has served requests already
    make_plugin(manifest(blueprint=True, permissions=["elevated"]), """
        from flask import Blueprint, jsonify

        def setup(ctx):
            bp = Blueprint("tp", __name__)

            @bp.get("/peek/<record_id>")
            def peek(record_id):
                return jsonify(ctx.service().get("gadget", record_id))

            @bp.get("/peek-all/<record_id>")
            def peek_all(record_id):
                return jsonify(ctx.system_service().get("gadget", record_id))

            @bp.get("/boom")
            def boom():
                raise KeyError("secret detail")

            ctx.blueprint(bp)

            def census(save):  # counts every gadget, also those the saving user cannot see
                if save.record["name"] == "census":
                    save.record["size"] = len(ctx.system_service(save).list("gadget")[0])

            ctx.before_save("gadget", census)
    """)
    plugins.install(base, "tp")
    user = make_user(base, client, "gina", ["gadget_user"])
    crashed = client.get("/api/v1/x/tp/boom", headers=user.headers)
    assert crashed.status_code == 500 and crashed.get_json()["error"]["plugin"] == "tp"
    assert "secret detail" not in crashed.get_data(as_text=True)
    mine = RecordService(base, user.principal).create("gadget", {"name": "mine"})

    assert client.get(f"/api/v1/x/tp/peek/{mine['id']}").status_code == 401  # authenticated like the API
    assert client.get(f"/api/v1/x/tp/peek/{mine['id']}", headers=user.headers).get_json()["name"] == "mine"
    assert client.get(f"/api/v1/x/tp/peek/{other['id']}", headers=user.headers).status_code == 404
    refused = client.get(f"/api/v1/x/tp/peek-all/{other['id']}", headers=user.headers)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "plugin_not_elevated"

    census = client.post("/api/v1/records/gadget", json={"name": "census"}, headers=user.headers)
    assert census.status_code == 403 and census.get_json()["error"]["code"] == "plugin_not_elevated"

    plugins.upgrade(base, "tp", grant=["elevated"])
    assert rows(base)["tp"].granted == ["elevated"]
    census = client.post("/api/v1/records/gadget", json={"name": "census"}, headers=user.headers)
    assert census.status_code == 201 and census.get_json()["size"] == 2  # "not yours" and "mine"
    granted = client.get(f"/api/v1/x/tp/peek-all/{other['id']}", headers=user.headers)
    assert granted.status_code == 200 and granted.get_json()["name"] == "not yours"

    plugins.uninstall(base, "tp")
    assert client.get(f"/api/v1/x/tp/peek/{mine['id']}", headers=user.headers).status_code == 404


# --- bad input: refused with a clear error, nothing applied ---------------------------------------


def _refused(runtime, name: str, code: str, fragment: str, **kwargs) -> CrmError:
    before = version_of(runtime)
    with pytest.raises(CrmError) as caught:
        plugins.install(runtime, name, **kwargs)
    assert caught.value.code == code, caught.value.message
    text = caught.value.message + " " + " ".join(str(i) for i in getattr(caught.value, "issues", []))
    assert fragment in text, text
    assert version_of(runtime) == before and name not in rows(runtime)
    return caught.value


def test_bad_plugins_are_refused_and_nothing_is_applied(base, make_plugin):
    make_plugin({"name": "tp_nover", "metacrm": ">=0.1"})
    _refused(base, "tp_nover", "plugin_invalid", "the manifest has no 'version'")

    make_plugin(manifest("tp_badbundle", bundle="metadata"), bundle={
        "broken.object.json": {"kind": "object", "name": "tp_badbundle__x",
                               "fields": [{"name": "a", "type": "strng"}]}})
    error = _refused(base, "tp_badbundle", "metadata_invalid", "strng")
    assert error.issues[0].source.startswith("tp_badbundle/")

    make_plugin(manifest("tp_plain", bundle="metadata"), bundle={"x.object.json": dict(NOTE, name="plain")})
    _refused(base, "tp_plain", "metadata_invalid", "plugin documents must be named 'tp_plain__<name>'")

    apply_change(base, Bundle(documents=[dict(NOTE, name="tp_clash__note")]))  # an admin made it first
    make_plugin(manifest("tp_clash", bundle="metadata"), bundle={"n.object.json": dict(NOTE, name="tp_clash__note")})
    _refused(base, "tp_clash", "plugin_invalid", "object/tp_clash__note already exists and belongs to the installation")

    make_plugin(manifest("tp_hookless", hooks={"before_save": ["gadget"]}, record_actions={"gadget": ["go"]}))
    error = _refused(base, "tp_hookless", "plugin_invalid", "declares a before_save hook on 'gadget'")
    assert any("record action gadget.go" in p for p in error.problems)

    loader.register_module("tp_does_not_exist.module", name="tp_ghost")
    try:
        _refused(base, "tp_ghost", "plugin_invalid", "does not import: ModuleNotFoundError")
    finally:
        loader.unregister_module("tp_ghost")

    make_plugin(manifest("tp_future", metacrm=">=2,<3"))
    error = _refused(base, "tp_future", "plugin_incompatible", "supports metacrm <3,>=2; this is metacrm 0.1.0")
    assert error.status == 409

    make_plugin(manifest("tp_needy", depends=["tp_base>=1.0"]))
    _refused(base, "tp_needy", "plugin_invalid", "needs the plugin 'tp_base', which is not installed")

    make_plugin(manifest("tp_ext", extends={"nothing_here": [{"name": "tp_ext__a", "type": "text"}],
                                            "gadget": [{"name": "unprefixed", "type": "text"}]}))
    error = _refused(base, "tp_ext", "plugin_invalid", "must be named 'tp_ext__<field>'")

    make_plugin(manifest("tp_wf"), """
        def setup(ctx):
            ctx.workflow_action("notify", lambda actx, params: None)
    """)
    _refused(base, "tp_wf", "plugin_invalid", "'notify' is a built-in action")

    make_plugin(manifest("tp_wf2", workflow_actions=["send_sms"]))
    _refused(base, "tp_wf2", "plugin_invalid", "'send_sms' must be named 'tp_wf2__<action>'")

    sync = """
        def setup(ctx):
            ctx.record_action("gadget", "sync", lambda service, record, params: {})
    """
    make_plugin(manifest("tp_ra", record_actions={"gadget": ["sync"]}), sync)
    make_plugin(manifest("tp_rb", record_actions={"gadget": ["sync"]}), sync)
    plugins.install(base, "tp_ra")
    _refused(base, "tp_rb", "plugin_invalid", "the record action gadget.sync already belongs to the plugin 'tp_ra'")

    make_plugin(manifest("tp_perm"))
    _refused(base, "tp_perm", "plugin_permission", "does not ask for the permission 'elevated'", grant=["elevated"])

    make_plugin(manifest("tp_setupfail"), "def setup(ctx):\n    raise RuntimeError('no config')\n")
    _refused(base, "tp_setupfail", "plugin_invalid", "setup() failed: RuntimeError: no config")

    with pytest.raises(CrmError) as caught:
        plugins.install(base, "nobody_has_this")
    assert caught.value.status == 404 and caught.value.code == "unknown_plugin"


def test_two_packages_claiming_one_name_are_refused(base, make_plugin, monkeypatch):
    first = make_plugin(manifest("tp_twin"))
    second = make_plugin(manifest("tp_twin"), register=False)
    real = loader.discover

    def twice():
        found = real()
        found["tp_twin"].conflicts.append(second)
        return found

    monkeypatch.setattr(loader, "discover", twice)
    _refused(base, "tp_twin", "plugin_invalid", "several packages provide a plugin named 'tp_twin'")
    assert first


# --- upgrade -----------------------------------------------------------------------------------------


def test_upgrade_applies_the_difference_between_bundles(base, make_plugin, tmp_path):
    v1_note, v1_old = NOTE, {"kind": "object", "name": "tp__old", "fields": [{"name": "a", "type": "text"}]}
    module = make_plugin(manifest(bundle="metadata", extends={"gadget": [{"name": "tp__x", "type": "text"}]},
                                  hooks={"before_save": ["gadget"]}), """
        def setup(ctx):
            def v1(sctx):
                sctx.record["tp__x"] = "v1"
            ctx.before_save("gadget", v1)
    """, bundle={"note.object.json": v1_note, "old.object.json": v1_old})
    plugins.install(base, "tp")
    kept = system(base).create("gadget", {"name": "kept"})
    assert kept["tp__x"] == "v1"

    # version 2 of the same package: tp__old is gone, tp__note gains a field, tp__x -> tp__y
    sys.modules.pop(module)
    pkg = tmp_path / "plugin_pkgs" / module
    v2_note = dict(NOTE, fields=[*NOTE["fields"], {"name": "body", "type": "textarea"}])
    (pkg / "metadata" / "old.object.json").unlink()
    (pkg / "metadata" / "note.object.json").write_text(json.dumps(v2_note))
    (pkg / "__init__.py").write_text(f"MANIFEST = {manifest(version='2.0.0', bundle='metadata', extends={'gadget': [{'name': 'tp__y', 'type': 'integer'}]}, hooks={'before_save': ['gadget']})!r}\n" + textwrap.dedent("""
        def setup(ctx):
            def v2(sctx):
                sctx.record["tp__y"] = 2
            ctx.before_save("gadget", v2)
    """))
    plan = plugins.upgrade(base, "tp", dry_run=True)
    assert plan["diff"]["documents"]["removed"] == ["object/tp__old"]
    assert sorted(plan["diff"]["documents"]["changed"]) == ["object/gadget", "object/tp__note"]
    assert rows(base)["tp"].version == "1.0.0"

    result = plugins.upgrade(base, "tp")
    assert (result["from_version"], result["version"]) == ("1.0.0", "2.0.0")
    registry = base.registry()
    assert registry.get("object", "tp__old") is None and "body" in registry.object("tp__note").fields
    assert "tp__x" not in registry.object("gadget").fields and "tp__y" in registry.object("gadget").fields
    assert "tp__x" in columns(base, "rec_gadget") and "rec_tp__old" in sa.inspect(base.engine).get_table_names()
    row = rows(base)["tp"]
    assert row.version == "2.0.0" and row.applied["archived_fields"] == {"gadget": ["tp__x"]}
    fresh = system(base).create("gadget", {"name": "fresh"})
    assert fresh["tp__y"] == 2 and "tp__x" not in fresh  # the v1 hook is gone, v2's runs

    (pkg / "__init__.py").write_text(f"MANIFEST = {manifest(version='0.9.0')!r}\ndef setup(ctx):\n    pass\n")
    sys.modules.pop(module)
    with pytest.raises(CrmError) as caught:
        plugins.upgrade(base, "tp")
    assert caught.value.code == "plugin_downgrade"


# --- uninstall ------------------------------------------------------------------------------------------


def test_uninstall_archives_reinstall_restores_purge_drops(base, make_plugin):
    make_plugin(manifest(bundle="metadata", extends={"gadget": [{"name": "tp__label", "type": "text"}]},
                         hooks={"before_save": ["gadget"], "after_save": ["gadget"]}),
                HOOKS, bundle={"note.object.json": NOTE})
    plugins.install(base, "tp")
    gadget = system(base).create("gadget", {"name": "kept"})
    note = system(base).create("tp__note", {"title": "hello"})

    result = plugins.uninstall(base, "tp")
    assert result["diff"]["documents"]["removed"] == ["object/tp__note"]
    assert not base.registry().has_object("tp__note") and "tp__label" not in base.registry().object("gadget").fields
    assert "tp__label" in columns(base, "rec_gadget") and "title" in columns(base, "rec_tp__note")  # data kept
    assert rows(base)["tp"].status == "archived"
    assert system(base).create("gadget", {"name": "plain", "size": 1000})["size"] == 1000  # its hooks are gone
    with pytest.raises(CrmError) as caught:
        plugins.uninstall(base, "tp")
    assert caught.value.code == "plugin_archived"

    plugins.install(base, "tp")  # restores the documents and with them the data
    assert system(base).get("gadget", gadget["id"])["tp__label"] == "KEPT"
    assert system(base).get("tp__note", note["id"])["title"] == "hello"

    plan = plugins.uninstall(base, "tp", purge=True, dry_run=True)
    assert plan["purge"] == {"tables": ["rec_tp__note"], "columns": {"rec_gadget": ["tp__label"]},
                             "history_of": ["tp__note"]}
    assert "rec_tp__note" in sa.inspect(base.engine).get_table_names()
    plugins.uninstall(base, "tp", purge=True)
    assert "rec_tp__note" not in sa.inspect(base.engine).get_table_names()
    assert "tp__label" not in columns(base, "rec_gadget") and "size" in columns(base, "rec_gadget")
    assert "tp" not in rows(base)
    assert system(base).get("gadget", gadget["id"])["name"] == "kept"


def test_dependencies_order_install_and_uninstall(base, make_plugin):
    make_plugin(manifest("tp_base", version="1.2.0"))
    make_plugin(manifest("tp_top", depends=["tp_base>=1.0"]))
    make_plugin(manifest("tp_picky", depends=["tp_base>=2"]))
    _refused(base, "tp_top", "plugin_invalid", "needs the plugin 'tp_base'")
    plugins.install(base, "tp_base")
    _refused(base, "tp_picky", "plugin_invalid", "it needs tp_base>=2, but tp_base 1.2.0 is installed")
    plugins.install(base, "tp_top")
    before = version_of(base)
    with pytest.raises(CrmError) as caught:
        plugins.uninstall(base, "tp_base")
    assert caught.value.code == "plugin_required_by" and caught.value.extra["required_by"] == ["tp_top"]
    assert "tp_top depends on it" in caught.value.message
    assert version_of(base) == before and rows(base)["tp_base"].status == "installed"
    plugins.uninstall(base, "tp_top")
    plugins.uninstall(base, "tp_base")
    assert {r.status for r in rows(base).values()} == {"archived"}


def test_workflow_actions_jobs_and_an_uninstall_that_a_rule_still_needs(base, make_plugin):
    make_plugin(manifest(workflow_actions=["tp__stamp"], jobs=["tidy", "broken"]), """
        def setup(ctx):
            def stamp(actx, params):
                return params
            ctx.workflow_action("tp__stamp", stamp, description="Stamps a gadget")
            ctx.job("tidy", lambda runtime: "3 tidied")
            ctx.job("broken", lambda runtime: 1 / 0)
    """)
    plugins.install(base, "tp")
    assert actions(base).workflow["tp__stamp"].plugin == "tp" and "tp__stamp" in EXTRA_ACTIONS
    lines, failed = run_all(base)
    assert "tp.tidy: 3 tidied" in lines and failed
    assert any(line.startswith("tp.broken: FAILED: Plugin 'tp' failed in job broken") for line in lines)

    rule = {"kind": "workflow_rule", "name": "stamp_gadgets", "object": "gadget", "trigger": {"on": "create"},
            "actions": [{"action": "tp__stamp", "params": {"x": 1}}]}
    apply_change(base, Bundle(documents=[rule]))
    with pytest.raises(MetadataInvalid) as caught:
        plugins.uninstall(base, "tp")
    assert "unknown action 'tp__stamp'" in str(caught.value.issues)
    assert rows(base)["tp"].status == "installed" and "tp__stamp" in EXTRA_ACTIONS  # nothing changed
    apply_change(base, Bundle(), deletes=[("workflow_rule", "stamp_gadgets")])
    plugins.uninstall(base, "tp")
    assert "tp__stamp" not in EXTRA_ACTIONS and "tp__stamp" not in actions(base).workflow
    assert not any(name.startswith("tp.") for name, _ in base.sweeps)


# --- processes, the loader ------------------------------------------------------------------------------


def test_other_processes_follow_installs_and_uninstalls(base, make_plugin):
    make_plugin(manifest(extends={"gadget": [{"name": "tp__label", "type": "text"}]},
                         hooks={"before_save": ["gadget"], "after_save": ["gadget"]}), HOOKS)
    other = build_runtime(base.config, base.engine)  # another server process on the same database
    other.compiled(force=True)
    plugins.install(base, "tp")
    other.compiled(force=True)  # what the next request does within a second
    assert "tp" in loader.loaded(other)
    with pytest.raises(ValidationFailed):
        RecordService(other, Principal.system()).create("gadget", {"name": "big", "size": 500})
    plugins.uninstall(base, "tp")
    other.compiled(force=True)
    assert "tp" not in loader.loaded(other)
    assert RecordService(other, Principal.system()).create("gadget", {"name": "big", "size": 500})["size"] == 500


def test_a_plugin_whose_package_is_gone_is_logged_and_skipped(base, make_plugin, caplog):
    make_plugin(manifest(extends={"gadget": [{"name": "tp__label", "type": "text"}]},
                         hooks={"before_save": ["gadget"], "after_save": ["gadget"]}), HOOKS)
    plugins.install(base, "tp")
    loader.unregister_module("tp")
    with caplog.at_level(logging.ERROR, logger="metacrm.plugins"):
        restarted = build_runtime(base.config, base.engine)
    assert "tp" not in loader.loaded(restarted)
    assert "plugin 'tp' is installed but no package provides it any more" in caplog.text
    assert RecordService(restarted, Principal.system()).create("gadget", {"name": "ok"})["name"] == "ok"
    listed = {item["name"]: item for item in plugins.list_plugins(restarted)}
    assert listed["tp"]["status"] == "installed" and listed["tp"]["loaded"] is False
    assert "no package provides it" in listed["tp"]["error"]
    plugins.uninstall(restarted, "tp")  # still possible: what it applied is recorded in mc_plugin
    assert "tp__label" not in restarted.compiled(force=True).registry.object("gadget").fields


def test_builtin_plugins_are_discovered_like_entry_points_and_installed_by_init(base, make_plugin, monkeypatch):
    assert loader.BUILTIN_PLUGINS["lead_to_cash"] == "metacrm.plugins.lead_to_cash"
    module = make_plugin(manifest("tp_builtin", permissions=["elevated"]), register=False)
    monkeypatch.setattr(loader, "BUILTIN_PLUGINS", {"tp_builtin": module})
    found = loader.discover()["tp_builtin"]
    assert (found.origin, found.target) == ("builtin", module)
    assert plugins.install_builtins(base) == ["plugin tp_builtin 1.0.0 installed"]
    assert rows(base)["tp_builtin"].granted == ["elevated"]  # built-ins are trusted
    assert plugins.install_builtins(base) == []
    plugins.uninstall(base, "tp_builtin")
    assert plugins.install_builtins(base) == []  # an admin's uninstall sticks


def test_metacrm_init_installs_the_builtin_plugins(make_plugin, monkeypatch, tmp_path):
    from metacrm.platform.cli import main

    module = make_plugin(manifest("tp_builtin"), register=False)
    monkeypatch.setattr(loader, "BUILTIN_PLUGINS", {"tp_builtin": module})
    monkeypatch.setenv("METACRM_DATABASE_URL", f"sqlite:///{tmp_path / 'init.db'}")
    monkeypatch.setenv("METACRM_ADMIN_PASSWORD", "init-admin-pass")
    first = CliRunner().invoke(main, ["init"])
    assert first.exit_code == 0, first.output
    assert "admin user created" in first.output and "plugin tp_builtin 1.0.0 installed" in first.output
    again = CliRunner().invoke(main, ["init"])
    assert again.exit_code == 0 and "tp_builtin" not in again.output


def test_entry_point_discovery_uses_the_metacrm_plugins_group(monkeypatch):
    class EP:
        name, value = "tp_ep", "tp_ep_module:Plugin"
        dist = type("Dist", (), {"name": "tp-ep-dist"})()

    calls = []

    def entry_points(group):
        calls.append(group)
        return [EP()]

    monkeypatch.setattr(loader.importlib.metadata, "entry_points", entry_points)
    found = loader.discover()["tp_ep"]
    assert calls == ["metacrm.plugins"]
    assert (found.origin, found.target, found.source) == ("entry_point", "tp_ep_module:Plugin", "tp-ep-dist")
    with pytest.raises(CrmError) as caught:
        found.load()
    assert "does not import" in caught.value.message


# --- settings --------------------------------------------------------------------------------------------


def test_settings_come_from_env_then_stored_then_default(base, make_plugin, monkeypatch):
    make_plugin(manifest(settings={"url": {"env": "TP_URL"}, "secret": {"secret": True},
                                   "tries": {"default": 3}}), """
        def setup(ctx):
            ctx.runtime.extensions["tp_ctx"] = ctx
    """)
    plugins.install(base, "tp")
    ctx = loader.loaded(base)["tp"].ctx
    assert (ctx.setting("url"), ctx.setting("tries")) == (None, 3)
    shown = plugins.set_settings(base, "tp", {"url": "http://stored", "secret": "s3"})
    assert shown["secret"]["value"] == "********" and shown["url"]["source"] == "stored"
    assert (ctx.setting("url"), ctx.setting("secret")) == ("http://stored", "s3")
    monkeypatch.setenv("TP_URL", "http://env")
    assert ctx.setting("url") == "http://env"
    with pytest.raises(CrmError) as caught:
        plugins.set_settings(base, "tp", {"nope": 1})
    assert caught.value.code == "unknown_setting"


# --- CLI and API --------------------------------------------------------------------------------------------


def test_cli_list_install_dry_run_upgrade_uninstall(base, make_plugin, monkeypatch):
    from metacrm.platform.cli import main
    from metacrm.plugins import cli

    monkeypatch.setattr(cli, "_runtime", lambda: base)
    make_plugin(manifest(bundle="metadata", permissions=["elevated"]), bundle={"note.object.json": NOTE})
    runner = CliRunner()

    listed = runner.invoke(main, ["plugin", "list"])
    assert listed.exit_code == 0 and "tp " in listed.output and "available" in listed.output

    dry = runner.invoke(main, ["plugin", "install", "tp", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "+ object/tp__note" in dry.output and "+ table rec_tp__note" in dry.output
    assert "dry run: nothing was applied" in dry.output and "tp" not in rows(base)

    bad = runner.invoke(main, ["plugin", "install", "tp", "--grant", "root"])
    assert bad.exit_code == 1 and "does not ask for the permission 'root'" in bad.output

    done = runner.invoke(main, ["plugin", "install", "tp", "--grant", "elevated"])
    assert done.exit_code == 0, done.output
    assert "installed tp 1.0.0" in done.output and "granted: elevated" in done.output

    again = runner.invoke(main, ["plugin", "install", "tp"])
    assert again.exit_code == 1 and "already installed; use upgrade" in again.output

    as_json = json.loads(runner.invoke(main, ["plugin", "list", "--json"]).output)
    assert [i["status"] for i in as_json if i["name"] == "tp"] == ["installed"]

    assert runner.invoke(main, ["plugin", "upgrade", "tp"]).exit_code == 0
    gone = runner.invoke(main, ["plugin", "uninstall", "tp"])
    assert gone.exit_code == 0 and "its data is archived" in gone.output
    purge = runner.invoke(main, ["plugin", "uninstall", "tp", "--purge"], input="n\n")
    assert purge.exit_code == 1 and "DROP table rec_tp__note" in purge.output  # asked, and said no
    assert runner.invoke(main, ["plugin", "uninstall", "tp", "--purge", "--yes"]).exit_code == 0
    assert "tp" not in rows(base)
    assert runner.invoke(main, ["plugin", "install"]).exit_code == 2


def test_api_for_admins(base, make_plugin, client, admin_headers):
    make_plugin(manifest(bundle="metadata", label="Test plugin"), bundle={"note.object.json": NOTE})
    user = make_user(base, client, "ursula", ["gadget_user"])
    assert client.get("/api/v1/plugins", headers=user.headers).status_code == 403
    assert client.post("/api/v1/plugins/tp/install", headers=user.headers).status_code == 403

    items = client.get("/api/v1/plugins", headers=admin_headers).get_json()["items"]
    assert {"name": "tp", "status": "available", "label": "Test plugin"}.items() <= \
        next(i for i in items if i["name"] == "tp").items()

    dry = client.post("/api/v1/plugins/tp/install?dry_run=1", headers=admin_headers)
    assert dry.status_code == 200 and dry.get_json()["applied"] is False
    assert client.post("/api/v1/plugins/tp/install", json={"grant": "x"}, headers=admin_headers).status_code == 400
    assert client.post("/api/v1/plugins/tp/install", json={"purge": True}, headers=admin_headers).status_code == 400
    done = client.post("/api/v1/plugins/tp/install", json={}, headers=admin_headers)
    assert done.status_code == 201 and done.get_json()["diff"]["documents"]["added"] == ["object/tp__note"]
    conflict = client.post("/api/v1/plugins/tp/install", headers=admin_headers)
    assert conflict.status_code == 409 and conflict.get_json()["error"]["code"] == "plugin_installed"

    shown = client.get("/api/v1/plugins/tp", headers=admin_headers).get_json()
    assert shown["status"] == "installed" and shown["applied"]["documents"] == [["object", "tp__note"]]
    assert client.post("/api/v1/plugins/tp/upgrade", headers=admin_headers).status_code == 200
    gone = client.post("/api/v1/plugins/tp/uninstall", json={"purge": True}, headers=admin_headers)
    assert gone.status_code == 200 and gone.get_json()["purge"]["tables"] == ["rec_tp__note"]
    missing = client.post("/api/v1/plugins/nothing_here/install", headers=admin_headers)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "unknown_plugin"
