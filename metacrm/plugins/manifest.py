"""A plugin's MANIFEST: what it is, which metacrm it supports, what it ships and asks for.

The manifest is the contract the admin reviews before installing, so it is checked
strictly: a missing or malformed key refuses the install with every problem listed,
a declaration that setup() does not honour is refused by the installer (prepare.py).

    MANIFEST = {
        "name": "erp_connector",                  # required; ^[a-z][a-z0-9_]*$, no "__", <= 40 chars
        "version": "1.0.0",                       # required; PEP 440
        "metacrm": ">=0.1,<1",                    # required; the metacrm versions it supports (PEP 440)
        "label": "ERP connector", "description": "...",
        "bundle": "metadata",                     # folder next to the module; documents <name>__*
        "extends": {"order": [{"name": "erp_connector__number", "type": "text"}]},
        "hooks": {"before_save": ["order"], "after_save": ["*"]},
        "record_actions": {"order": ["resend"]},
        "workflow_actions": ["erp_connector__push"],       # named <plugin>__<action>
        "jobs": ["retry"],
        "blueprint": True,                        # serves /api/v1/x/<name>/...
        "permissions": ["elevated"],              # granted by the admin at install
        "depends": ["lead_to_cash>=1.0"],
        "settings": {"url": {"label": "ERP URL", "env": "METACRM_ERP_URL", "secret": False}},
    }
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from .. import __version__ as METACRM_VERSION
from ..platform.errors import BadRequest, Conflict

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
ITEM_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
HOOK_EVENTS = ("before_save", "after_save")
REQUIRED = ("name", "version", "metacrm")
INFO_KEYS = ("label", "description", "author", "homepage", "license")
KNOWN_KEYS = set(REQUIRED) | set(INFO_KEYS) | {
    "bundle", "extends", "hooks", "record_actions", "workflow_actions", "jobs", "blueprint",
    "permissions", "depends", "settings",
}

# Permissions a plugin may ask for; the admin grants them at install (`--grant NAME`).
PERMISSIONS = {
    "elevated": "Read and write every record as the platform itself, whatever the acting user may do "
                "(ctx.system_service()); needed by jobs and after-commit handlers that write records.",
}


class PluginInvalid(BadRequest):
    """The plugin (manifest, bundle, setup) is not installable as it stands."""

    code = "plugin_invalid"

    def __init__(self, plugin: str, problems: list[str]):
        self.problems = list(problems)
        text = f"Plugin {plugin!r} cannot be installed: " + "; ".join(self.problems)
        super().__init__(text, plugin=plugin, problems=self.problems)


class PluginIncompatible(Conflict):
    code = "plugin_incompatible"


@dataclass
class Manifest:
    raw: dict
    name: str
    version: Version
    metacrm: SpecifierSet
    bundle: str | None = None
    extends: dict[str, list[dict]] = field(default_factory=dict)
    hooks: dict[str, list[str]] = field(default_factory=dict)
    record_actions: dict[str, list[str]] = field(default_factory=dict)
    workflow_actions: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    blueprint: bool = False
    permissions: list[str] = field(default_factory=list)
    depends: list[Requirement] = field(default_factory=list)
    settings: dict[str, dict] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def label(self) -> Any:
        return self.raw.get("label") or self.name

    def supports(self, metacrm_version: str = METACRM_VERSION) -> bool:
        return self.metacrm.contains(Version(metacrm_version), prereleases=True)

    def check_compatible(self, metacrm_version: str = METACRM_VERSION) -> None:
        if not self.supports(metacrm_version):
            raise PluginIncompatible(
                f"Plugin {self.name!r} {self.version} supports metacrm {self.metacrm}; this is metacrm "
                f"{metacrm_version}. Install a version of the plugin made for metacrm {metacrm_version}.",
                plugin=self.name, supports=str(self.metacrm), metacrm=metacrm_version,
            )


def _names(value: Any, where: str, problems: list[str], pattern: re.Pattern = ITEM_RE) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{where} must be a list of names")
        return []
    for item in value:
        if not pattern.match(item) and item != "*":
            problems.append(f"{where}: {item!r} is not a valid name")
    return list(value)


def parse_manifest(raw: Any, expected_name: str | None = None) -> Manifest:
    """Check a MANIFEST; raises PluginInvalid listing every problem found."""
    label = expected_name or (raw.get("name") if isinstance(raw, dict) else None) or "?"
    if not isinstance(raw, dict):
        raise PluginInvalid(str(label), ["MANIFEST must be a dict"])
    problems: list[str] = []
    warnings: list[str] = []
    for key in REQUIRED:
        if key not in raw or raw[key] in (None, ""):
            problems.append(f"the manifest has no {key!r}")
    for key in sorted(set(raw) - KNOWN_KEYS):
        warnings.append(f"unknown manifest key {key!r} is ignored")
    try:
        json.dumps(raw)
    except (TypeError, ValueError) as exc:
        problems.append(f"the manifest must be plain JSON data ({exc})")

    name = raw.get("name")
    if "name" in raw:
        if not isinstance(name, str) or not NAME_RE.match(name) or "__" in name:
            problems.append(f"name {name!r} must match ^[a-z][a-z0-9_]*$, be at most 40 characters "
                            "and contain no '__'")
        elif expected_name and name != expected_name:
            problems.append(f"the manifest calls the plugin {name!r} but it is registered as {expected_name!r}")
    version = None
    if raw.get("version") not in (None, ""):
        try:
            version = Version(str(raw["version"]))
        except InvalidVersion:
            problems.append(f"version {raw['version']!r} is not a PEP 440 version")
    spec = None
    if raw.get("metacrm") not in (None, ""):
        try:
            spec = SpecifierSet(str(raw["metacrm"]))
        except InvalidSpecifier:
            problems.append(f"metacrm {raw['metacrm']!r} is not a version range such as '>=0.1,<1'")

    bundle = raw.get("bundle")
    if bundle is not None and (not isinstance(bundle, str) or not bundle or bundle.startswith("/")
                               or ".." in bundle.replace("\\", "/").split("/")):
        problems.append("bundle must be a folder path relative to the plugin's module")
        bundle = None

    extends: dict[str, list[dict]] = {}
    raw_extends = raw.get("extends", {})
    if not isinstance(raw_extends, dict):
        problems.append("extends must map an object name to a list of field documents")
    else:
        for obj, fields in raw_extends.items():
            if not isinstance(fields, list) or not fields:
                problems.append(f"extends.{obj} must be a non-empty list of field documents")
                continue
            for index, fdoc in enumerate(fields):
                fname = fdoc.get("name") if isinstance(fdoc, dict) else None
                if not isinstance(fname, str):
                    problems.append(f"extends.{obj}[{index}] must be a field document with a name")
                elif isinstance(name, str) and not fname.startswith(f"{name}__"):
                    problems.append(f"extends.{obj}[{index}]: field {fname!r} must be named '{name}__<field>'")
            extends[obj] = [dict(f) for f in fields if isinstance(f, dict)]

    hooks: dict[str, list[str]] = {}
    raw_hooks = raw.get("hooks", {})
    if not isinstance(raw_hooks, dict):
        problems.append("hooks must map before_save / after_save to a list of objects ('*' for all)")
    else:
        for event, objects in raw_hooks.items():
            if event not in HOOK_EVENTS:
                problems.append(f"hooks: unknown event {event!r} (use {', '.join(HOOK_EVENTS)})")
                continue
            hooks[event] = _names(objects, f"hooks.{event}", problems)

    record_actions: dict[str, list[str]] = {}
    raw_actions = raw.get("record_actions", {})
    if not isinstance(raw_actions, dict):
        problems.append("record_actions must map an object ('*' for any) to a list of action names")
    else:
        for obj, names in raw_actions.items():
            record_actions[obj] = _names(names, f"record_actions.{obj}", problems)

    workflow_actions = _names(raw.get("workflow_actions", []), "workflow_actions", problems)
    for action in workflow_actions:
        if isinstance(name, str) and not action.startswith(f"{name}__"):
            problems.append(f"workflow_actions: {action!r} must be named '{name}__<action>' "
                            "(metadata calls plugin actions by that name)")
    jobs = _names(raw.get("jobs", []), "jobs", problems)
    blueprint = raw.get("blueprint", False)
    if not isinstance(blueprint, bool):
        problems.append("blueprint must be true or false")

    permissions = _names(raw.get("permissions", []), "permissions", problems)
    for perm in permissions:
        if perm not in PERMISSIONS:
            problems.append(f"permissions: unknown permission {perm!r} (known: {', '.join(sorted(PERMISSIONS))})")

    depends: list[Requirement] = []
    raw_depends = raw.get("depends", [])
    if not isinstance(raw_depends, list):
        problems.append("depends must be a list such as ['lead_to_cash>=1.0']")
    else:
        for item in raw_depends:
            try:
                req = Requirement(str(item))
            except InvalidRequirement:
                problems.append(f"depends: {item!r} is not a plugin name with an optional version range")
                continue
            if req.name == name:
                problems.append("a plugin cannot depend on itself")
            depends.append(req)

    settings: dict[str, dict] = {}
    raw_settings = raw.get("settings", {})
    if not isinstance(raw_settings, dict):
        problems.append("settings must map a setting name to {label, env, default, secret}")
    else:
        for key, spec_doc in raw_settings.items():
            if not isinstance(key, str) or not ITEM_RE.match(key) or not isinstance(spec_doc, dict):
                problems.append(f"settings.{key}: must be a name mapped to an object")
                continue
            if isinstance(name, str) and len(f"plugin:{name}:{key}") > 64:
                problems.append(f"settings.{key}: the name is too long")
            settings[key] = dict(spec_doc)

    if problems:
        raise PluginInvalid(str(name if isinstance(name, str) else label), problems)
    return Manifest(raw=raw, name=name, version=version, metacrm=spec, bundle=bundle, extends=extends,
                    hooks=hooks, record_actions=record_actions, workflow_actions=workflow_actions, jobs=jobs,
                    blueprint=blueprint, permissions=permissions, depends=depends, settings=settings,
                    warnings=warnings)
