"""The layout designer's draft: what its form posts, the edits its buttons make, its checks and
the layout document it becomes.

The form carries the whole draft, so every post (an edit button, a review, an apply) starts from
what the admin sees: `label_en` / `label_zh`, `roles` and `record_types` (checkboxes; `*` for
all), one group per section (`sec.<i>.label_en`, `sec.<i>.label_zh`, `sec.<i>.columns`,
`sec.<i>.fields` = field names in order, comma separated), `related` (child lists as
`object.via`, in order) and `list_columns`. Drag and drop (static/layout_designer.js) rewrites
those hidden lists; without script, the buttons post `_op` (e.g. `f.down:industry`) and the page
comes back with the edit made. Nothing here writes: pages.py sends the document to apply_change.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ...metadata.model import ObjectDef, label_text

# A record is addressed by these; they are never laid out.
NOT_PLACEABLE = ("id", "version", "deleted_at")
MAX_SECTIONS = 30


@dataclass
class SectionDraft:
    label_en: str = ""
    label_zh: str = ""
    columns: int = 1
    fields: list[str] = field(default_factory=list)
    columns_text: str = "1"  # as posted, shown back when it is not 1 or 2


@dataclass
class Draft:
    name: str
    object: str
    label_en: str = ""
    label_zh: str = ""
    roles: list[str] = field(default_factory=lambda: ["*"])
    record_types: list[str] = field(default_factory=lambda: ["*"])
    sections: list[SectionDraft] = field(default_factory=list)
    related: list[str] = field(default_factory=list)  # "child.via"
    list_columns: list[str] | None = None  # None: the layout has none (the object's defaults)
    focus: str = ""  # the control to focus after an edit button (the moved item's)

    def placed(self) -> set[str]:
        return {name for s in self.sections for name in s.fields}


def _label_parts(label: Any) -> tuple[str, str]:
    if isinstance(label, dict):
        return str(label.get("en") or ""), str(label.get("zh-CN") or "")
    return (str(label), "") if label else ("", "")


def labels(en: str, zh: str) -> Any:
    en, zh = en.strip(), zh.strip()
    if en and zh:
        return {"en": en, "zh-CN": zh}
    return en or zh or None


def placeable_fields(obj: ObjectDef) -> list[str]:
    """The fields a layout may place: the object's own first, then the system ones."""
    own = [n for n, f in obj.fields.items() if f.type != "password" and n not in NOT_PLACEABLE]
    system = [n for n, f in obj.all_fields.items()
              if n not in obj.fields and f.type != "password" and n not in NOT_PLACEABLE]
    return own + system


def related_choices(registry, obj: ObjectDef) -> list[tuple[str, ObjectDef, Any]]:
    """("child.via", child object, lookup field) for every child object that points here."""
    return [(f"{child.name}.{fdef.name}", child, fdef) for child, fdef in registry.children_of(obj.name)
            if not fdef.polymorphic or obj.name in fdef.target]


def _related_key(rel: dict, registry, obj: ObjectDef) -> str:
    via = rel.get("via")
    if not via:
        via = next((f.name for c, f in registry.children_of(obj.name) if c.name == rel.get("object")), "")
    return f"{rel.get('object')}.{via}"


def from_document(doc: dict, registry, obj: ObjectDef) -> Draft:
    applies = doc.get("applies_to") or {}
    en, zh = _label_parts(doc.get("label"))
    draft = Draft(name=doc["name"], object=doc["object"], label_en=en, label_zh=zh,
                  roles=list(applies.get("roles") or ["*"]), record_types=list(applies.get("record_types") or ["*"]))
    for sec in doc.get("sections") or []:
        s_en, s_zh = _label_parts(sec.get("label"))
        columns = int(sec.get("columns") or 1)
        draft.sections.append(SectionDraft(s_en, s_zh, columns, list(sec.get("fields") or []), str(columns)))
    draft.related = [_related_key(rel, registry, obj) for rel in doc.get("related_lists") or []]
    if doc.get("list_columns") is not None:
        draft.list_columns = list(doc["list_columns"])
    return draft


def _names(text: str) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def from_form(form, name: str, object_name: str) -> Draft:
    """The draft as posted (nothing checked yet: check() says what is wrong, beside its input)."""
    draft = Draft(name=name, object=object_name, label_en=form.get("label_en", "").strip(),
                  label_zh=form.get("label_zh", "").strip())
    roles = form.getlist("roles")
    draft.roles = ["*"] if form.get("all_roles") or not roles else list(dict.fromkeys(roles))
    types = form.getlist("record_types")
    draft.record_types = ["*"] if form.get("all_types") or not types else list(dict.fromkeys(types))
    indexes = sorted({int(key.split(".")[1]) for key in form
                      if key.startswith("sec.") and key.count(".") == 2 and key.split(".")[1].isdigit()})
    for index in indexes[:MAX_SECTIONS]:
        prefix = f"sec.{index}."
        text = form.get(prefix + "columns", "1").strip()
        columns = int(text) if text.isdigit() else 0
        draft.sections.append(SectionDraft(form.get(prefix + "label_en", "").strip(),
                                           form.get(prefix + "label_zh", "").strip(), columns,
                                           _names(form.get(prefix + "fields", "")), text))
    draft.related = list(dict.fromkeys(_names(form.get("related", ""))))
    if form.get("has_list_columns"):
        draft.list_columns = list(dict.fromkeys(_names(form.get("list_columns", ""))))
    return draft


# --- the edit buttons (the keyboard and no-script path) ----------------------------------------


def _move(items: list, item, step: int) -> None:
    index = items.index(item)
    target = index + step
    if 0 <= target < len(items):
        items[index], items[target] = items[target], items[index]


def apply_op(draft: Draft, op: str, form) -> None:
    """One edit: `f.up|down|remove|to:<field>`, `s.add`, `s.up|down|remove:<i>`,
    `r.up|down|add|remove:<child.via>`, `c.up|down|add|remove:<field>`. An edit naming
    something that is not there does nothing (the page shows the draft as it is)."""
    verb, _, target = op.partition(":")
    if verb.startswith("f."):
        _field_op(draft, verb[2:], target, form)
    elif verb == "s.add":
        draft.sections.append(SectionDraft())
        draft.focus = f"sec-{len(draft.sections) - 1}-label_en"
    elif verb.startswith("s.") and target.isdigit() and int(target) < len(draft.sections):
        index = int(target)
        section = draft.sections[index]
        if verb == "s.remove":
            draft.sections.pop(index)  # its fields go back to the palette
            draft.focus = "add-section"
        elif verb in ("s.up", "s.down"):
            _move(draft.sections, section, -1 if verb == "s.up" else 1)
            draft.focus = f"s-{'up' if verb == 's.up' else 'down'}-{draft.sections.index(section)}"
    elif verb.startswith("r."):
        _list_op(draft.related, verb[2:], target)
        draft.focus = f"r-{verb[2:]}-{target}" if target in draft.related else "related-palette"
    elif verb.startswith("c.") and draft.list_columns is not None:
        _list_op(draft.list_columns, verb[2:], target)
        draft.focus = f"c-{verb[2:]}-{target}" if target in draft.list_columns else "columns-palette"


def _list_op(items: list[str], verb: str, target: str) -> None:
    if verb == "add" and target and target not in items:
        items.append(target)
    elif target in items:
        if verb == "remove":
            items.remove(target)
        elif verb in ("up", "down"):
            _move(items, target, -1 if verb == "up" else 1)


def _field_op(draft: Draft, verb: str, name: str, form) -> None:
    home = next((s for s in draft.sections if name in s.fields), None)
    if verb == "to":
        dest = form.get(f"dest.{name}", "")
        if home is not None:
            home.fields.remove(name)
        if dest == "new":
            draft.sections.append(SectionDraft(fields=[name]))
        elif dest.isdigit() and int(dest) < len(draft.sections):
            draft.sections[int(dest)].fields.append(name)
        draft.focus = f"f-to-{name}"
        return
    if home is None:
        return
    if verb == "remove":
        home.fields.remove(name)
        draft.focus = f"f-to-{name}"
        return
    step = -1 if verb == "up" else 1 if verb == "down" else 0
    if not step:
        return
    index = home.fields.index(name)
    if 0 <= index + step < len(home.fields):
        _move(home.fields, name, step)
    else:  # past the end of its section: into the next (or previous) one
        at = draft.sections.index(home) + step
        if 0 <= at < len(draft.sections):
            home.fields.remove(name)
            if step < 0:
                draft.sections[at].fields.append(name)
            else:
                draft.sections[at].fields.insert(0, name)
    draft.focus = f"f-{verb}-{name}"


# --- checks and the document ------------------------------------------------------------------


def check(draft: Draft, registry, obj: ObjectDef, t) -> tuple[dict[str, str], list[str]]:
    """Errors by input (`sec.<i>.label_en`, `sec.<i>.fields`, `roles`, ...) and page-level ones."""
    errors: dict[str, str] = {}
    page: list[str] = []
    allowed = set(placeable_fields(obj))
    seen: set[str] = set()
    if not draft.sections:
        page.append(t("layouts.no_sections"))
    for index, sec in enumerate(draft.sections):
        key = f"sec.{index}."
        if not sec.label_en and not sec.label_zh:
            errors[key + "label_en"] = t("layouts.label_required")
        if sec.columns not in (1, 2):
            errors[key + "columns"] = t("layouts.bad_columns")
        unknown = [n for n in sec.fields if n not in allowed]
        twice = [n for n in sec.fields if n in seen or sec.fields.count(n) > 1]
        seen.update(sec.fields)
        if unknown:
            errors[key + "fields"] = t("layouts.unknown_field", field=", ".join(unknown))
        elif twice:
            errors[key + "fields"] = t("layouts.field_twice", field=", ".join(dict.fromkeys(twice)))
        elif not sec.fields:
            errors[key + "fields"] = t("layouts.empty_section")
    if draft.roles != ["*"]:
        bad = [r for r in draft.roles if r not in registry.roles]
        if bad:
            errors["roles"] = t("layouts.unknown_role", role=", ".join(bad))
    if draft.record_types != ["*"]:
        bad = [r for r in draft.record_types if r not in (obj.record_types or [])]
        if bad:
            errors["record_types"] = t("layouts.unknown_record_type", type=", ".join(bad))
    known = {key for key, _, _ in related_choices(registry, obj)}
    bad = [r for r in draft.related if r not in known]
    if bad:
        errors["related"] = t("layouts.unknown_related", name=", ".join(bad))
    if draft.list_columns is not None:
        bad = [c for c in draft.list_columns if c not in allowed]
        if bad:
            errors["list_columns"] = t("layouts.unknown_field", field=", ".join(bad))
        elif not draft.list_columns:
            errors["list_columns"] = t("layouts.no_columns")
    return errors, page


def to_document(draft: Draft, live: dict | None, registry, obj: ObjectDef) -> dict:
    """The layout document: the live one with what the designer edits replaced (its required,
    read-only, hidden, filters and sort are kept); a related list kept keeps its columns,
    label and limit."""
    doc = copy.deepcopy(live) if live else {"kind": "layout", "name": draft.name, "object": draft.object}
    label = labels(draft.label_en, draft.label_zh)
    if label is None:
        doc.pop("label", None)
    else:
        doc["label"] = label
    applies: dict[str, list[str]] = {}
    if draft.record_types != ["*"]:
        applies["record_types"] = draft.record_types
    if draft.roles != ["*"]:
        applies["roles"] = draft.roles
    old_applies = (live or {}).get("applies_to") or {}
    for key in ("record_types", "roles"):  # a live `["*"]` stays written as it was
        if key not in applies and old_applies.get(key) == ["*"]:
            applies[key] = ["*"]
    if applies:
        doc["applies_to"] = {k: applies[k] for k in ("record_types", "roles") if k in applies}
    else:
        doc.pop("applies_to", None)
    sections = []
    old_sections = (live or {}).get("sections") or []
    for index, sec in enumerate(draft.sections):
        out: dict[str, Any] = {}
        label = labels(sec.label_en, sec.label_zh)
        if label is not None:
            out["label"] = label
        unwritten = index < len(old_sections) and "columns" not in old_sections[index]
        if not (unwritten and sec.columns == 1):  # an unwritten 1 (the default) stays unwritten
            out["columns"] = sec.columns
        out["fields"] = list(sec.fields)
        sections.append(out)
    doc["sections"] = sections
    kept = {_related_key(rel, registry, obj): rel for rel in (live or {}).get("related_lists") or []}
    related = []
    for key in draft.related:
        if key in kept:
            related.append(copy.deepcopy(kept[key]))
        else:
            child, _, via = key.partition(".")
            related.append({"object": child, "via": via})
    if related:
        doc["related_lists"] = related
    else:
        doc.pop("related_lists", None)
    if draft.list_columns is not None:
        doc["list_columns"] = list(draft.list_columns)
    return doc


def section_label(sec: SectionDraft, locale: str, fallback: str = "") -> str:
    return label_text(labels(sec.label_en, sec.label_zh), locale, fallback)
