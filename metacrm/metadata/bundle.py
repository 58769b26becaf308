"""Bundles: folders of metadata documents at any depth; each file holds one document
(or a list of documents). Errors name the file and the JSON path."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class MetaIssue:
    source: str  # a file path, or "kind/name" for documents that came over the API
    path: str  # JSON pointer inside the document ("" for the whole document)
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.path or '/'}: {self.message}"

    def as_dict(self) -> dict:
        return {"document": self.source, "path": self.path or "/", "message": self.message}


@dataclass
class Bundle:
    documents: list[dict] = field(default_factory=list)
    sources: dict[tuple[str, str], str] = field(default_factory=dict)
    issues: list[MetaIssue] = field(default_factory=list)


def load_bundle(root: str | Path, namespace: str | None = None) -> Bundle:
    """Read every *.json below `root` (sorted, so errors come in a stable order)."""
    root = Path(root)
    bundle = Bundle()
    if root.is_file():
        files, base = [root], root.parent
    elif root.is_dir():
        files, base = sorted(p for p in root.rglob("*.json") if p.is_file()), root
    else:
        bundle.issues.append(MetaIssue(str(root), "", "no such file or folder"))
        return bundle
    for path in files:
        label = str(path.relative_to(base))
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            bundle.issues.append(MetaIssue(label, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})"))
            continue
        except json.JSONDecodeError as exc:
            bundle.issues.append(MetaIssue(label, "", f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"))
            continue
        except RecursionError:
            bundle.issues.append(MetaIssue(label, "", f"the JSON is nested more than {MAX_DEPTH} levels deep"))
            continue
        items = content if isinstance(content, list) else [content]
        for index, doc in enumerate(items):
            source = label if not isinstance(content, list) else f"{label}[{index}]"
            add_document(bundle, doc, source, namespace)
    return bundle


MAX_DEPTH = 64  # objects / arrays inside one another in a document; far beyond any real one


def nesting_depth(value: object) -> int:
    """How deeply objects and arrays nest (iterative: a hostile document cannot exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                return depth
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def add_document(bundle: Bundle, doc: object, source: str, namespace: str | None = None) -> None:
    if not isinstance(doc, dict):
        bundle.issues.append(MetaIssue(source, "", "a document must be a JSON object"))
        return
    if nesting_depth(doc) > MAX_DEPTH:
        bundle.issues.append(MetaIssue(source, "", f"the document is nested more than {MAX_DEPTH} levels deep"))
        return
    kind, name = doc.get("kind"), doc.get("name")
    if namespace and isinstance(name, str) and not name.startswith(f"{namespace}__"):
        bundle.issues.append(MetaIssue(source, "/name", f"plugin documents must be named '{namespace}__<name>'"))
    key = (str(kind), str(name))
    if key in bundle.sources:
        bundle.issues.append(MetaIssue(source, "/name", f"{kind}/{name} is also defined in {bundle.sources[key]}"))
        return
    bundle.documents.append(doc)
    bundle.sources[key] = source


def documents_bundle(documents: list, label_by_key: bool = True) -> Bundle:
    """A bundle from documents that came over the API; each is named as kind/name."""
    bundle = Bundle()
    for index, doc in enumerate(documents):
        if isinstance(doc, dict) and isinstance(doc.get("kind"), str) and isinstance(doc.get("name"), str):
            source = f"{doc['kind']}/{doc['name']}"
        else:
            source = f"documents[{index}]"
        add_document(bundle, doc, source)
    return bundle
