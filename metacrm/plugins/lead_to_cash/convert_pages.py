"""Lead conversion as a dialog, and "create from" actions, in the web.

- /records/lead/<id>/convert: the lead's conversion (`conversion` metadata) before it runs: the
  account to use — one of the matches the duplicate rules find, only those the user may read —
  or a new one; the contact; and the opportunity (name, amount, close date), each prefilled by
  the field mapping. Converting runs the same record action as POST /api/v1/records/lead/{id}/
  actions/convert (leads.convert_action, through platform.actions.run: permission, transaction),
  so an error comes back naming its target and is shown beside that target's input.
- "Create contract" on a quote or an opportunity and "Create order" on a contract: buttons on the
  record that open the new-record form prefilled from it (never a blind create). The approval
  gates are asked first: a quote whose discount needs approval refuses with the gate's message
  (approval.gates: `referenced_by`), and an order is made only from an active (approved) contract.
Registered as its own feature by metacrm.plugins.register."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import request, url_for

from ...metadata.model import label_text
from ...platform import actions as shared
from ...platform.clock import today
from ...platform.errors import CrmError, DuplicateBlocked, Forbidden, NotFound, ValidationFailed
from ...platform.features import Feature, Routes
from ...platform.web.core import current_service, notify, redirect_to, render_page, runtime
from ...platform.web.i18n import current_locale, message, t
from .common import plugin_ctx, to_input
from .leads import CONVERTED_CLOSE_DAYS, _mapped, conversion_doc

HERE = Path(__file__).resolve().parent
routes = Routes()
INPUTS = {"account": ("name",), "contact": ("name", "email", "phone"), "opportunity": ("name", "amount", "close_date")}


def _action(service, lead: dict):
    action = shared.actions(service.runtime).record_action("lead", "convert")
    if action is None or plugin_ctx(runtime()) is None:
        raise NotFound("The lead-to-cash plugin is not installed.")
    if not shared.allowed(service, "lead", action, lead):
        raise Forbidden("You may not convert this lead.")
    return action


def _name_of(service, object_name: str, record_id: str) -> str | None:
    try:
        record = service.get(object_name, record_id)
    except CrmError:
        return None
    obj = service.registry.object(object_name)
    return str(record.get(obj.name_field) or record_id) if obj.name_field else record_id


def _account_matches(service, values: dict) -> list[dict]:
    """Accounts the rules find for the mapped account values, only those the user may read."""
    try:
        from ...platform.dedup import check
    except ImportError:
        return []
    try:
        found = check(service, "account", record=to_input(service, "account", values))
    except CrmError:
        return []
    seen, out = set(), []
    for match in found:
        rid = match.get("id")
        if match.get("object") != "account" or not rid or match.get("hidden") or rid in seen:
            continue
        name = _name_of(service, "account", rid)
        if name is None:
            continue
        seen.add(rid)
        out.append({"id": rid, "name": name, "href": url_for("web.record_detail", object_name="account", record_id=rid)})
    return out


def _targets(service, lead: dict) -> dict[str, dict]:
    """Per target object: its label, how it is created, and the mapped values the dialog shows."""
    doc = conversion_doc(service.registry, "lead")
    locale = current_locale()
    out = {}
    for target in doc["targets"]:
        name = target["object"]
        if not service.registry.has_object(name):
            continue
        obj = service.registry.object(name)
        values = _mapped(lead, target.get("mapping") or {})
        if name == "opportunity" and not values.get("close_date") and "close_date" in obj.fields:
            values["close_date"] = (today() + timedelta(days=CONVERTED_CLOSE_DAYS)).isoformat()
        if obj.name_field and not values.get(obj.name_field):
            values[obj.name_field] = lead.get("company") or lead.get("contact_name") or ""
        inputs = []
        for field_name in INPUTS.get(name, ("name",)):
            fdef = obj.all_fields.get(field_name)
            if fdef is None or service.access.field_access(name, field_name, "create") != "edit":
                continue
            inputs.append({"name": field_name, "label": fdef.display_label(locale), "type": fdef.value_type,
                           "value": "" if values.get(field_name) is None else str(values[field_name]),
                           "required": field_name == obj.name_field or fdef.required})
        out[name] = {"object": name, "label": obj.display_label(locale), "mode": target.get("create", "always"),
                     "inputs": inputs, "values": values, "can_create": service.access.can(name, "create")}
    return out


def _context(service, lead: dict, targets: dict, form: dict | None = None, **extra: Any) -> dict:
    form = form or {}
    matches = _account_matches(service, {k: v for k, v in targets.get("account", {}).get("values", {}).items()}) \
        if "account" in targets else []
    account_choice = form.get("account_choice") or (matches[0]["id"] if matches else "new")
    for target in targets.values():
        for item in target["inputs"]:
            key = f"{target['object']}-{item['name']}"
            if key in form:
                item["value"] = form[key]
    create_opp = form.get("create_opportunity", "on") == "on" if form else True
    return dict(lead=lead, lead_name=lead.get("company") or lead["id"], targets=targets, matches=matches,
                account_choice=account_choice, create_opportunity=create_opp,
                errors=extra.pop("errors", {}), problem=extra.pop("problem", None), **extra)


@routes.page("/records/lead/<record_id>/convert", methods=("GET", "POST"))
def lead_convert(record_id: str):
    service = current_service()
    lead = service.get("lead", record_id)  # 404 unless the user may read it
    _action(service, service.get_record("lead", record_id))
    if lead.get("converted_account") or lead.get("status") == "converted":
        notify(t("convert.already"), "info")
        return redirect_to("web.record_detail", object_name="lead", record_id=record_id)
    targets = _targets(service, lead)
    if request.method == "GET":
        return render_page("convert/dialog.html", **_context(service, lead, targets))
    form = {k: v.strip() for k, v in request.form.items() if k != "_csrf"}
    if "create_opportunity" not in form:
        form["create_opportunity"] = "off"
    errors: dict[str, str] = {}
    params: dict[str, Any] = {"values": {}}
    choice = form.get("account_choice") or "new"
    matches = {m["id"] for m in _account_matches(service, targets.get("account", {}).get("values", {}))}
    if choice != "new":
        if choice not in matches and _name_of(service, "account", choice) is None:
            errors["account_choice"] = t("convert.pick_account")
        params["account_id"] = choice
    else:
        params["match_account"] = False
    creating = {"account": choice == "new", "contact": True, "opportunity": form["create_opportunity"] == "on"}
    params["create_opportunity"] = creating["opportunity"]
    for name, target in targets.items():
        if not creating.get(name, True):
            continue
        values = {}
        for item in target["inputs"]:
            value = form.get(f"{name}-{item['name']}", "")
            if item["required"] and not value:
                errors[f"{name}-{item['name']}"] = t("form.required_missing")
            values[item["name"]] = value or None
        params["values"][name] = values
    if not errors:
        try:
            _, result = shared.run(service, "lead", record_id, "convert", params)
        except (ValidationFailed, DuplicateBlocked) as exc:
            errors, problem = _placed(exc, targets)
            return render_page("convert/dialog.html", 400, **_context(service, lead, targets, form, errors=errors,
                                                                        problem=problem))
        except CrmError as exc:
            if exc.status in (403, 404):
                raise
            return render_page("convert/dialog.html", exc.status, **_context(
                service, lead, targets, form, problem=exc.message))
        notify(t("convert.done"))
        if result.get("opportunity"):
            return redirect_to("web.record_detail", object_name="opportunity", record_id=result["opportunity"])
        return redirect_to("web.record_detail", object_name="lead", record_id=record_id)
    return render_page("convert/dialog.html", 400, **_context(service, lead, targets, form, errors=errors,
                                                                problem=t("convert.fix_fields")))


def _placed(exc: CrmError, targets: dict) -> tuple[dict[str, str], str | None]:
    """The error's field messages beside the failing target's inputs; the rest as one line."""
    name = exc.extra.get("object")
    errors: dict[str, str] = {}
    rest = []
    if isinstance(exc, DuplicateBlocked):
        key = f"{name}-name" if name else None
        if key and any(i["name"] == "name" for i in targets.get(name, {}).get("inputs", [])):
            errors[key] = t("convert.duplicate", object=targets[name]["label"])
            return errors, t("convert.fix_fields")
        return {}, t("convert.duplicate", object=targets.get(name, {}).get("label", name or ""))
    shown = {i["name"] for i in targets.get(name, {}).get("inputs", [])} if name else set()
    for field_name, messages in (exc.fields or {}).items():
        texts = " ".join(message(str(m)) for m in (messages if isinstance(messages, list) else [messages]))
        if field_name in shown:
            errors[f"{name}-{field_name}"] = texts
        else:
            rest.append(f"{targets.get(name, {}).get('label', name or '')}: {texts}")
    problem = " ".join(rest) or (t("convert.fix_fields") if errors else exc.message)
    return errors, problem


# --- "create from" ---------------------------------------------------------------------------

CREATE_FROM = {  # source object -> [(target object, the target's field linking back)]
    "quote": [("contract", "quote")],
    "opportunity": [("contract", "opportunity")],
    "contract": [("order", "contract")],
}


def _prefill(service, source: str, record: dict, target: str) -> dict[str, Any]:
    obj = service.registry.object(target)
    values: dict[str, Any] = {}
    if source == "quote":
        values.update(name=record.get("name"), quote=record["id"], account=record.get("account"),
                      opportunity=record.get("opportunity"), amount=record.get("total"))
    elif source == "opportunity":
        values.update(name=record.get("name"), opportunity=record["id"], account=record.get("account"),
                      amount=record.get("amount"))
    elif source == "contract":
        values.update(contract=record["id"], account=record.get("account"), opportunity=record.get("opportunity"),
                      order_date=today().isoformat())
    return {k: str(v) for k, v in values.items() if v not in (None, "") and k in obj.fields}


def _gate_refusal(service, source: str, record_id: str, target: str, link: str) -> str | None:
    """The approval gate's message when `target` may not be made from this record yet."""
    from ...approval import gates
    from ...approval.processes import holds

    with runtime().reading() as conn:
        for kind, process, spec in gates.plans(service.compiled).get(target, []):
            if kind != "reference" or spec.get("field") != link or process.get("object") != source:
                continue
            src_obj = service.registry.object(source)
            typed = service.get_record(source, record_id)
            if not holds((process.get("guards") or {}).get("when"), src_obj, typed, service.principal):
                continue
            if gates.is_current(conn, process["name"], source, record_id):
                continue
            return t("convert.gate", process=label_text(process.get("label"), current_locale(), process["name"]),
                     source=src_obj.display_label(current_locale()),
                     target=service.registry.object(target).display_label(current_locale()))
    if source == "contract" and target == "order":
        contract = service.get("contract", record_id)
        if contract.get("status") != "active":
            process = service.registry.get("approval_process", "contract_review")
            return t("convert.contract_not_active",
                     process=label_text((process or {}).get("label"), current_locale(), "contract_review"))
    return None


@routes.page("/records/<object_name>/<record_id>/create/<target>")
def create_from(object_name: str, record_id: str, target: str):
    service = current_service()
    pairs = dict(CREATE_FROM.get(object_name, []))
    if target not in pairs or not service.registry.has_object(target):
        raise NotFound("Nothing is made from this record here.")
    record = service.get(object_name, record_id)  # 404 unless readable
    if not service.access.can(target, "create"):
        raise Forbidden(f"You may not create {target} records.")
    refusal = _gate_refusal(service, object_name, record_id, target, pairs[target])
    if refusal:
        notify(refusal, "error")
        return redirect_to("web.record_detail", object_name=object_name, record_id=record_id)
    return redirect_to("web.record_new", object_name=target, **_prefill(service, object_name, record, target))


def record_buttons(obj, record: dict) -> list[dict]:
    if obj.name not in CREATE_FROM or plugin_ctx(runtime()) is None:
        return []
    service = current_service()
    buttons = []
    for target, _ in CREATE_FROM[obj.name]:
        if service.registry.has_object(target) and service.access.can(target, "create"):
            buttons.append({"id": f"create-{target}", "method": "get",
                            "label": t(f"convert.create_{target}"),
                            "url": url_for("web.create_from", object_name=obj.name, record_id=record["id"],
                                           target=target)})
    return buttons


FEATURE = Feature("ltc_convert", pages=routes, templates=HERE / "templates", messages=HERE / "messages",
                  record_buttons=record_buttons)
