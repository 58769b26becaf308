"""A history note as the reader should see it: in their language (platform/notes.py finds the
template it was written from), with the values a note keeps in English or as ids turned into the
reader's words — process, step and pool labels, object labels, people and records by name (a
record only if the reader may read it; otherwise "a record")."""

from __future__ import annotations

from typing import Any

from ...metadata.model import label_text
from .. import notes
from ..i18n import translate
from . import display
from .i18n import current_locale

PEOPLE = ("who", "approvers", "target")
USER_IDS = ("before", "after")


def _english(label: Any, fallback: str) -> str:
    return label_text(label, "en", fallback)


class NoteText:
    """Localises the notes of one page (lookups shared across its entries)."""

    def __init__(self, service, names: display.Names, locale: str | None = None):
        self.service = service
        self.registry = service.registry
        self.names = names
        self.locale = locale or current_locale()  # an API call or an email names the reader's locale

    def t(self, key: str, **values: Any) -> str:
        return translate(self.locale, key, **values)

    # -- label lookups by the English text the note kept ------------------------------------

    def _process(self, value: str) -> str:
        for doc in self.registry.of_kind("approval_process"):
            if value in (doc.get("name"), _english(doc.get("label"), doc.get("name", ""))):
                return label_text(doc.get("label"), self.locale, doc["name"])
        return value

    def _step(self, value: str) -> str:
        for doc in self.registry.of_kind("approval_process"):
            for step in doc.get("steps") or []:
                if value in (step.get("name"), _english(step.get("label"), step.get("name", ""))):
                    return label_text(step.get("label"), self.locale, step["name"])
        return value

    def _pool(self, value: str) -> str:
        for doc in self.registry.of_kind("pool"):
            if value in (doc.get("name"), _english(doc.get("label"), doc.get("name", ""))):
                return label_text(doc.get("label"), self.locale, doc["name"])
        return value

    def _rule(self, value: str) -> str:
        doc = self.registry.get("workflow_rule", value)
        return label_text(doc.get("label"), self.locale, value) if doc else value

    def _people(self, value: str) -> str:
        if value == "the system":
            return self.t("history.system")
        if value == "nobody":
            return self.t("common.none")
        return value

    def _object(self, value: str) -> str:
        return self.registry.object(value).display_label(self.locale) if self.registry.has_object(value) else value

    def _object_by_label(self, value: str) -> str:
        for obj in self.registry.objects.values():
            if value in (obj.name, obj.display_label("en")):
                return obj.display_label(self.locale)
        return value

    def _titled(self, value: str) -> str:
        """'Account Bell Co' (object label + record name, as approvals write it) in the reader's words."""
        labels = sorted(((obj.display_label("en"), obj) for obj in self.registry.objects.values()),
                        key=lambda item: -len(item[0]))
        for label, obj in labels:
            if value.startswith(label + " "):
                return f"{obj.display_label(self.locale)} {value[len(label) + 1:]}"
        return value

    # -- one note ------------------------------------------------------------------------------

    def want(self, note: str | None) -> None:
        """Ask the page's name lookups for the people and records a note names by id."""
        found = notes.parse(note or "")
        if not found:
            return
        _, values = found
        for name in USER_IDS:
            if values.get(name):
                self.names.want("user", values[name])
        for id_name in ("id", "survivor"):
            if values.get(id_name) and values.get("object"):
                self.names.want(values["object"], values[id_name])
        if values.get("ids") and values.get("object"):  # a merge: "merged contact <id>, <id>"
            for record_id in values["ids"].split(", "):
                self.names.want(values["object"], record_id)

    def text(self, note: str | None, action: str | None = None) -> str | None:
        if not note:
            return note
        if action == "recycle":
            return self._recycle_reason(note)
        return notes.localise(note, self.locale, self._relabel)

    def _relabel(self, values: dict[str, str]) -> dict[str, str]:
        out = dict(values)
        for name, value in values.items():
            if name == "process":
                out[name] = self._process(value)
            elif name in ("step", "back"):
                out[name] = self._step(value)
            elif name == "pool":
                out[name] = self._pool(value)
            elif name == "rule":
                out[name] = self._rule(value)
            elif name == "event":
                key = f"approvals.event.{value}"
                out[name] = self.t(key) if self.t(key) != key else value
            elif name in PEOPLE:
                out[name] = self._people(value)
            elif name in USER_IDS:
                out[name] = self.names.name("user", value) or value
            elif name == "object":
                out[name] = self._object(value)
            elif name == "title":
                out[name] = self._titled(value)
            elif name == "objlabel":
                out[name] = self._object_by_label(value)
            elif name == "outcome":
                key = f"approvals.outcome.{value}"
                out[name] = self.t(key) if self.t(key) != key else value
            elif name == "reason":
                out[name] = self._recycle_reason(value).rstrip("。.")
        for id_name in ("id", "survivor"):
            if values.get(id_name) and values.get("object"):
                out[id_name] = self.names.name(values["object"], values[id_name]) or self.t("history.a_record")
        if values.get("ids") and values.get("object"):
            ids = values["ids"].split(", ")
            named = [n for n in (self.names.name(values["object"], i) for i in ids) if n]
            gone = len(ids) - len(named)  # merged records are in the recycle bin: named only while readable
            out["ids"] = ", ".join(named + ([self.t("history.records_binned", count=gone)] if gone else []))
        return out

    def _recycle_reason(self, note: str) -> str:
        """A recycle note is the pool rule's reason: shown as the rule's label in the reader's language."""
        for doc in self.registry.of_kind("pool"):
            for rule in doc.get("recycle") or []:
                if rule.get("reason") == note and rule.get("label"):
                    return label_text(rule["label"], self.locale, note)
        return note
