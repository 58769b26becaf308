"""The live registry: every applied metadata document, with a version number.

A Registry is immutable; an apply builds a new one. Each process caches the one
it read and swaps it when the stored version moves (see platform.runtime).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .model import ObjectDef

Key = tuple[str, str]


class UnknownObject(LookupError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


@dataclass(frozen=True)
class Registry:
    documents: dict[Key, dict] = field(default_factory=dict)
    version: int = 0

    def with_changes(self, documents: Iterable[dict], deletes: Iterable[Key] = ()) -> Registry:
        docs = dict(self.documents)
        for key in deletes:
            docs.pop(key, None)
        for doc in documents:
            docs[(doc["kind"], doc["name"])] = copy.deepcopy(doc)
        return Registry(docs, self.version)

    def get(self, kind: str, name: str) -> dict | None:
        return self.documents.get((kind, name))

    def of_kind(self, kind: str) -> list[dict]:
        return [doc for (k, _), doc in sorted(self.documents.items()) if k == kind]

    @cached_property
    def objects(self) -> dict[str, ObjectDef]:
        return {doc["name"]: ObjectDef.from_doc(doc) for doc in self.of_kind("object")}

    def object(self, name: str) -> ObjectDef:
        try:
            return self.objects[name]
        except KeyError:
            raise UnknownObject(name) from None

    def has_object(self, name: str) -> bool:
        return name in self.objects

    @cached_property
    def roles(self) -> dict[str, dict]:
        return {doc["name"]: doc for doc in self.of_kind("role")}

    def role_descendants(self, role: str) -> set[str]:
        """Roles strictly below `role` in the hierarchy (their owners' records are visible to it)."""
        children: dict[str, list[str]] = {}
        for name, doc in self.roles.items():
            parent = doc.get("parent")
            if parent:
                children.setdefault(parent, []).append(name)
        found: set[str] = set()
        stack = list(children.get(role, []))
        while stack:
            current = stack.pop()
            if current in found:
                continue
            found.add(current)
            stack.extend(children.get(current, []))
        return found

    def for_object(self, kind: str, object_name: str) -> list[dict]:
        return [doc for doc in self.of_kind(kind) if doc.get("object") == object_name]

    def layouts(self, object_name: str) -> list[dict]:
        return self.for_object("layout", object_name)

    def children_of(self, object_name: str) -> list[tuple[ObjectDef, Any]]:
        """(child object, lookup field) pairs whose lookup targets `object_name`."""
        found = []
        for obj in self.objects.values():
            for fdef in obj.fields.values():
                if fdef.type in ("lookup", "user") and object_name in fdef.target:
                    found.append((obj, fdef))
        return found
