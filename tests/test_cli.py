"""The `metacrm` command as an admin runs it: init, metadata validate|diff|apply|export,
user create, sweep; exit codes 0 ok, 1 failed, 2 usage. Runs on SQLite in a temp folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "metacrm.platform.cli"]


@pytest.fixture
def workdir(tmp_path):
    env = dict(os.environ)
    env.update(METACRM_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}", METACRM_ADMIN_PASSWORD="cli-admin-pass")
    env.pop("METACRM_REDIS_URL", None)

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, *args], cwd=tmp_path, env=env, input=input, capture_output=True, text=True,
                              timeout=120, check=False)

    run.path = tmp_path  # type: ignore[attr-defined]
    assert run("init").returncode == 0
    return run


def write_bundle(root: Path, docs: dict[str, dict]) -> Path:
    for name, doc in docs.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(doc, indent=2))
    return root


GADGET = {"kind": "object", "name": "gadget", "label": "Gadget", "name_field": "title",
          "fields": [{"name": "title", "type": "text"}]}


def test_init_is_idempotent_and_uses_the_given_password(workdir):
    again = workdir("init")
    assert again.returncode == 0 and "password" not in again.stdout.lower().replace("admin_password", "")


def test_validate_names_file_and_json_path(workdir):
    bundle = write_bundle(workdir.path / "b", {
        "objects/ok.json": GADGET,
        "deep/er/bad.json": {"kind": "object", "name": "bad", "label": "Bad",
                             "fields": [{"name": "a", "type": "text"}, {"name": "b", "type": "strng"}]},
    })
    result = workdir("metadata", "validate", str(bundle))
    assert result.returncode == 1
    assert "deep/er/bad.json" in result.stdout and "/fields/1/type" in result.stdout


def test_validate_reports_malformed_json_with_position(workdir):
    bundle = workdir.path / "m"
    bundle.mkdir()
    (bundle / "broken.json").write_text('{"kind": "object",\n "name": }')
    result = workdir("metadata", "validate", str(bundle))
    assert result.returncode == 1 and "broken.json" in result.stdout and "line 2" in result.stdout


def test_diff_then_apply_then_export(workdir):
    bundle = write_bundle(workdir.path / "g", {"gadget.json": GADGET})
    diff = workdir("metadata", "diff", str(bundle))
    assert diff.returncode == 0 and "rec_gadget" in diff.stdout
    applied = workdir("metadata", "apply", str(bundle))
    assert applied.returncode == 0 and "applied" in applied.stdout
    exported = workdir("metadata", "export", str(workdir.path / "out"))
    assert exported.returncode == 0
    assert json.loads((workdir.path / "out" / "object" / "gadget.json").read_text())["name"] == "gadget"


def test_apply_of_a_bad_bundle_changes_nothing(workdir):
    bundle = write_bundle(workdir.path / "x", {
        "gadget.json": GADGET,
        "layout.json": {"kind": "layout", "name": "gl", "object": "gadget",
                        "sections": [{"label": "S", "fields": ["nope"]}]},
    })
    result = workdir("metadata", "apply", str(bundle))
    assert result.returncode == 1 and "layout.json" in result.stderr and "/sections/0/fields/0" in result.stderr
    exported = workdir("metadata", "export", str(workdir.path / "out2"))
    assert exported.returncode == 0 and not (workdir.path / "out2" / "object" / "gadget.json").exists()


def test_user_create_and_usage_errors(workdir):
    made = workdir("user", "create", "--username", "bob", "--password", "bob-pass-123", "--role", "sales_rep")
    assert made.returncode == 0, made.stderr
    dup = workdir("user", "create", "--username", "bob", "--password", "bob-pass-123", "--role", "sales_rep")
    assert dup.returncode == 1 and "username" in dup.stderr
    bad_role = workdir("user", "create", "--username", "eve", "--password", "eve-pass-123", "--role", "emperor")
    assert bad_role.returncode == 1 and "roles" in bad_role.stderr
    assert workdir("serve", "--bogus").returncode == 2
    assert workdir("nonsense").returncode == 2


def test_sweep_runs_and_reports(workdir):
    result = workdir("sweep")
    assert result.returncode == 0 and result.stdout.strip()
