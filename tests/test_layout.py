"""The code layout tells the truth about the architecture (docs/architecture.md, "where things
live"): the core imports no feature, every feature has the same face, messages are complete in
both locales, workflow does not import approval, and modules stay small."""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

import pytest

from metacrm.platform import i18n
from metacrm.platform.features import Feature
from metacrm.platform.setup import FEATURES

PACKAGE = Path(__file__).resolve().parent.parent / "metacrm"

# Modules allowed over MAX_LINES, each with the reason (none today).
MAX_LINES = 500
LONG_MODULES: dict[str, str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it (function-level imports too), resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _feature_packages() -> list[str]:
    return list(FEATURES)


def _core_files() -> list[Path]:
    platform = PACKAGE / "platform"
    files = [p for p in platform.glob("*.py")]
    files += list((platform / "api").rglob("*.py")) + list((platform / "web").rglob("*.py"))
    files += list((platform / "records").rglob("*.py")) + list((platform / "filters").rglob("*.py"))
    files += list((PACKAGE / "metadata").rglob("*.py"))
    return sorted(files)


def test_the_core_imports_no_feature():
    features = _feature_packages()
    offences = []
    for path in _core_files():
        for module in _imports(path):
            if any(module == f or module.startswith(f + ".") for f in features):
                offences.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not offences, "\n".join(offences)


def test_workflow_does_not_import_approval():
    offences = [f"{p.relative_to(PACKAGE)} imports {m}" for p in sorted((PACKAGE / "workflow").rglob("*.py"))
                for m in _imports(p) if m == "metacrm.approval" or m.startswith("metacrm.approval.")]
    assert not offences, "\n".join(offences)


@pytest.mark.parametrize("name", FEATURES)
def test_every_feature_has_the_same_face(name):
    module = importlib.import_module(name)
    assert callable(getattr(module, "register", None)), f"{name} has no register(runtime)"
    feature = module.FEATURE
    assert isinstance(feature, Feature) and feature.name
    folder = Path(module.__file__).parent
    for attr, filename in (("api", "api.py"), ("pages", "pages.py")):
        if getattr(feature, attr) is not None and name != "metacrm.plugins":  # plugins/api.py is the hook API
            assert (folder / filename).exists(), f"{name}: its {attr} routes live in {filename}"
    if feature.templates is not None:
        assert feature.templates.is_dir() and feature.templates.parent == folder
    if feature.messages is not None:
        assert feature.messages == folder / "messages"


def _message_folders() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("messages") if p.is_dir() and (p / "en.json").exists())


@pytest.mark.parametrize("folder", _message_folders(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_message_files_have_the_same_keys_and_placeholders_in_both_locales(folder):
    data = {locale: json.loads((folder / f"{locale}.json").read_text(encoding="utf-8")) for locale in i18n.LOCALES}
    english = data["en"]
    for locale, messages in data.items():
        assert set(messages) == set(english), f"{locale}: {set(messages) ^ set(english)}"
        for key, text in messages.items():
            assert text, f"{locale} {key} is empty"
            assert sorted(re.findall(r"{(\w+)}", text)) == sorted(re.findall(r"{(\w+)}", english[key])), key


def test_every_message_key_used_anywhere_is_in_the_catalogue(runtime):
    # building the runtime registered every feature, so the catalogue holds all their messages
    used: dict[str, str] = {}
    for path in list(PACKAGE.rglob("*.py")) + list(PACKAGE.rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        for key in re.findall(r"""\bt\(\s*['"]([a-z_]+\.[a-z_.]+)['"]""", text):
            if not key.endswith(("_", ".")):  # a prefix the page completes ('studio.people_' ~ kind)
                used.setdefault(key, str(path.relative_to(PACKAGE)))
    missing = {key: where for key, where in used.items() if key not in i18n.MESSAGES["en"]}
    assert used and not missing, missing


def test_no_two_features_give_one_message_key_different_texts():
    """The catalogue is one dictionary: a key two features define differently shows whichever
    loaded last on both features' pages (it did: the studio's field editors read the rule forms'
    texts)."""
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    clashes = []
    for folder in _message_folders():
        for locale in i18n.LOCALES:
            for key, text in json.loads((folder / f"{locale}.json").read_text(encoding="utf-8")).items():
                where = str(folder.parent.relative_to(PACKAGE))
                first = seen.setdefault((locale, key), (where, text))
                if first[1] != text:
                    clashes.append(f"{locale} {key}: {first[0]} and {where}")
    assert not clashes, "\n".join(clashes)


def test_no_module_is_longer_than_the_limit_without_a_reason():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    unexplained = {path: n for path, n in long.items() if path not in LONG_MODULES}
    assert not unexplained, unexplained
    stale = [path for path in LONG_MODULES if path not in long]
    assert not stale, f"no longer over {MAX_LINES} lines, drop from LONG_MODULES: {stale}"
