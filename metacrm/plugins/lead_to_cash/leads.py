"""L2 leads: key-lead priority rules and lead conversion (by `conversion` metadata)."""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from ...platform.clock import today, utcnow
from ...platform.errors import BadRequest, Conflict, CrmError, NotFound
from . import scoring
from .common import rows, system_on, system_service, to_input, tx_cache

CONVERTED_CLOSE_DAYS = 90  # a converted lead's opportunity is expected to close within a quarter

CLOSED_LEAD_STATUSES = ("converted", "disqualified")


# --- key leads --------------------------------------------------------------------------


def rule_matches(rule: dict, lead: dict) -> bool:
    """Every criterion the rule sets must hold; an empty criterion means 'any'."""
    for criterion, field in (("product_lines", "product_line"), ("regions", "region"), ("industries", "industry")):
        wanted = rule.get(criterion) or []
        if wanted and lead.get(field) not in wanted:
            return False
    return rule.get("min_score") is None or (lead.get("score") or 0) >= rule["min_score"]


def _active_rules(ctx) -> list[dict]:
    cache = tx_cache(ctx.tx)
    if "priority_rules" not in cache:
        service = ctx.service
        table = service.table("lead_priority_rule")
        cache["priority_rules"] = rows(service, ctx.conn, "lead_priority_rule", table.c.active.is_(True))
    return cache["priority_rules"]


def key_lead_hook(ctx) -> None:
    """before_save on lead: is_key_lead from the active lead_priority_rule records."""
    if ctx.op not in ("create", "update"):
        return
    relevant = ("product_line", "region", "industry", "score")
    if ctx.op == "update" and not any(ctx.changed(name) for name in relevant) and not ctx.options.get("rescore"):
        return
    doc = tx_cache(ctx.tx).get("lead_scoring")
    ctx.record["is_key_lead"] = scoring.is_key(doc, ctx.record) or any(
        rule_matches(rule, ctx.record) for rule in _active_rules(ctx))


def priority_rule_changed(ctx) -> None:
    """after_save on lead_priority_rule: later leads in this transaction see the new rules."""
    tx_cache(ctx.tx).pop("priority_rules", None)


def rescore_job(runtime) -> str:
    """Re-score open leads (recency decays with time) and re-apply the priority rules after
    they change: a lead is saved through the write path only where its score or flag differs."""
    service = system_service(runtime)
    doc = scoring.scoring_doc(service.registry)
    with runtime.reading() as conn:
        rules = rows(service, conn, "lead_priority_rule", service.table("lead_priority_rule").c.active.is_(True))
        table = service.table("lead")
        leads = rows(service, conn, "lead", table.c.status.not_in(CLOSED_LEAD_STATUSES))
        counts = scoring.follow_up_counts(service, conn, doc, [lead["id"] for lead in leads]) if doc else {}
    changed, rescored = 0, 0
    as_of = today()
    for lead in leads:
        values = {}
        if doc is not None:
            score = scoring.compute(doc, lead, counts.get(lead["id"], 0), as_of)["score"]
            if score != lead.get(doc["score_field"]):
                values[doc["score_field"]] = score
        probe = dict(lead, **values)
        wanted = scoring.is_key(doc, probe) or any(rule_matches(rule, probe) for rule in rules)
        if bool(lead.get("is_key_lead")) != wanted:
            values["is_key_lead"] = wanted
            changed += 1
        if values:
            rescored += doc is not None and doc["score_field"] in values
            service.system_update("lead", lead["id"], values, action="update",
                                  note="lead score and priority rules re-applied")
    return f"{changed} of {len(leads)} open leads changed key-lead flag, {rescored} re-scored"


# --- conversion -------------------------------------------------------------------------


def conversion_doc(registry, object_name: str = "lead") -> dict:
    docs = [d for d in registry.of_kind("conversion") if d.get("object") == object_name]
    if not docs:
        raise NotFound(f"No conversion is defined for {object_name}.", code="no_conversion")
    preferred = [d for d in docs if d["name"] == f"{object_name}_conversion"]
    return (preferred or docs)[0]


def normalized_name(value: Any) -> str:
    text = unicodedata.normalize("NFKC", str(value or "")).casefold()
    return re.sub(r"[\s\W_]+", " ", text).strip()


def _dedup_match(service, target: str, rule_name: str, values: dict) -> str | None:
    """The first record the duplicate rule `rule_name` finds, through the dedup runtime's public
    check (None when there is no dedup runtime: the caller falls back to matching `by` fields)."""
    try:
        from ...platform import dedup
    except ImportError:
        return None
    check = getattr(dedup, "check", None)
    if check is None:
        return None
    matches = check(service, target, record=to_input(service, target, values))
    for match in matches:
        # a match the caller may not read comes without an id (dedup.visibility): not linked to
        if match.get("rule") == rule_name and match.get("object") == target and match.get("id"):
            return match["id"]
    return None


def _match_by(service, conn, target: str, by: list[str], values: dict) -> str | None:
    """An existing record the caller may read whose `by` fields equal the values (text compared
    normalized); one they may not read is not linked to (its id would leak through the lead)."""
    table = service.table(target)
    obj = service.registry.object(target)
    conditions = [table.c.deleted_at.is_(None)]
    if not service.access.is_admin:
        conditions.append(service.access.row_filter(target, "read", table))
    post = []
    for name in by:
        value = values.get(name)
        if value in (None, ""):
            return None
        fdef = obj.all_fields.get(name)
        if fdef is not None and fdef.value_type in ("text", "email", "phone", "url", "picklist"):
            conditions.append(sa.func.lower(table.c[name]) == str(value).strip().lower())
            post.append((name, normalized_name(value)))
        else:
            conditions.append(table.c[name] == value)
    row = None
    for candidate in conn.execute(sa.select(table).where(*conditions).order_by(table.c.created_at).limit(20)):
        if all(normalized_name(getattr(candidate, name)) == key for name, key in post):
            row = candidate
            break
    return row.id if row is not None else None


def _mapped(source: dict, mapping: dict) -> dict:
    values = {}
    for target_field, spec in (mapping or {}).items():
        value = spec.get("value") if isinstance(spec, dict) else source.get(spec)
        if value not in (None, ""):
            values[target_field] = value
    return values


def convert_action(service, record: dict, params: dict) -> dict:
    """POST /records/lead/{id}/actions/convert.

    params: `create_opportunity` (default true), `account_id` (use this account instead of
    matching), `match_account` (default true; false: create a new one even when a record
    matches), `values` {"account": {...}, "contact": {...}, "opportunity": {...}} overriding
    the mapped values. An error creating a target names it (`object` in the error's extra).
    """
    params = params or {}
    if not isinstance(params, dict):
        raise BadRequest("The parameters must be a JSON object.")
    registry = service.registry
    doc = conversion_doc(registry, "lead")
    source_name = doc["object"]
    source_obj = registry.object(source_name)
    status = doc.get("converted_status") or {}
    overrides = params.get("values") or {}
    if not isinstance(overrides, dict):
        raise BadRequest("values must be an object of object name -> field values.", fields={"values": ["Bad."]})
    with service.transaction() as tx:
        lead = service.fetch(tx.conn, source_obj, record["id"], for_update=True)
        if lead is None:
            raise NotFound(f"No {source_name} record with that id.", code="record_not_found")
        links = [t.get("link_field") for t in doc["targets"] if t.get("link_field")]
        if (status.get("field") and lead.get(status["field"]) == status.get("value")) or any(lead.get(n) for n in links):
            raise Conflict("This lead was already converted.", code="already_converted",
                           **{n: lead.get(n) for n in links if lead.get(n)})
        created: dict[str, str] = {}
        result: dict[str, Any] = {source_name: lead["id"]}
        link_values: dict[str, str] = {}
        for target in doc["targets"]:
            tname = target["object"]
            tobj = registry.object(tname)
            mode = target.get("create", "always")
            wanted = params.get(f"create_{tname}", True)
            if mode == "optional" and not wanted:
                result[tname] = None
                continue
            values = _mapped(lead, target.get("mapping") or {})
            if doc.get("keep_campaign", True) and lead.get("campaign"):
                campaign = tobj.fields.get("campaign")
                if campaign is not None and campaign.type == "lookup" and "campaign" in campaign.target:
                    values.setdefault("campaign", lead["campaign"])
            for fname, fdef in tobj.fields.items():
                if fdef.type != "lookup" or fname in values:
                    continue
                earlier = [t for t in fdef.target if t in created]
                if earlier:
                    values[fname] = created[earlier[0]]
                elif source_name in fdef.target:
                    values[fname] = lead["id"]
            owner = service.principal.user_id
            if lead.get("owner") and (owner is None or service.access.scope(tname, "edit") == "all"):
                owner = lead["owner"]
            if owner and "owner" in {f.name for f in service.writable_fields(tobj, True)[0]}:
                values["owner"] = owner  # explicit, so a pool entry rule does not take the new record
            values.update(overrides.get(tname) or {})
            if tname == "opportunity" and "close_date" in tobj.fields and not values.get("close_date"):
                # a close date (a quarter out) so the new deal enters the forecast at once
                values["close_date"] = (today() + timedelta(days=CONVERTED_CLOSE_DAYS)).isoformat()
            if tobj.name_field and not values.get(tobj.name_field):
                values[tobj.name_field] = lead.get(source_obj.name_field) or lead["id"]
            existing = None
            match = target.get("match") or {}
            if params.get(f"{tname}_id"):
                existing = service.get_record(tname, str(params[f"{tname}_id"]))["id"]
            elif match and params.get(f"match_{tname}", True) is not False:
                if match.get("dedup_rule"):
                    existing = _dedup_match(service, tname, match["dedup_rule"], {
                        k: v for k, v in values.items() if k != "owner"})
                if existing is None and match.get("by"):
                    existing = _match_by(service, tx.conn, tname, match["by"], values)
            if existing is not None:
                created[tname] = existing
                result[tname] = existing
                result[f"{tname}_matched"] = True
            elif mode == "never":
                result[tname] = None
                continue
            else:
                try:
                    new = service.create_record(tname, to_input(service, tname, values), source="conversion").record
                except CrmError as exc:
                    exc.extra.setdefault("object", tname)  # which of the targets failed (the dialog's field)
                    raise
                if owner and new.get("owner") != owner:
                    # a pool's entry rule took it: the converting user keeps what they converted
                    system_on(service.runtime, tx).system_update(
                        tname, new["id"], {"owner": owner, "pool": None}, action="assign",
                        note="owner of the converted lead")
                created[tname] = new["id"]
                result[tname] = new["id"]
                result[f"{tname}_matched"] = False
            if target.get("link_field"):
                link_values[target["link_field"]] = created[tname]
        update = dict(link_values)
        if status.get("field"):
            update[status["field"]] = status.get("value")
        if "converted_at" in source_obj.fields:
            update["converted_at"] = utcnow()
        system_on(service.runtime, tx).system_update(source_name, lead["id"], update, action="convert",
                             note="converted: " + ", ".join(f"{k} {v}" for k, v in created.items()))
    return result

