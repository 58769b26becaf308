"""Workflow actions, shared by workflow rules and approval processes.

Two moments:
- inside a user's save (`in_save`): `update_field` and `assign_to_pool` were already
  applied to the record by the before_save hook, so they are written with it; everything
  else runs here, after the row is written, in the same transaction;
- outside a save (approval decisions, scheduled triggers): field changes become one
  `RecordService.system_update` of the record.

Effects that leave the database (notifications, email, webhooks) become outbox rows in the
same transaction, keyed by `key_base` + the action's index, so a retried firing sends once.
A failing action is rolled back to its savepoint, logged and reported as a warning; it
never undoes the save that fired it.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from ..metadata.model import FieldDef, ObjectDef
from ..platform import outbox, schemas
from ..platform.actions import actions as platform_actions
from ..platform.clock import today, utcnow
from ..platform.errors import CrmError
from ..platform.security import Access, Principal
from .people import People
from .templates import is_template, render

log = logging.getLogger("metacrm.workflow")

IN_SAVE_KINDS = ("update_field", "assign_to_pool")
OUTBOX_KINDS = ("notify", "webhook")


@dataclass
class ActionContext:
    """What an action (built-in or a plugin's `fn(ctx, params)`) gets."""

    runtime: Any
    tx: Any
    obj: ObjectDef
    record: dict
    principal: Principal
    event: str  # create | update | delete | schedule | submit | approve | reject | recall
    key_base: str  # unique per firing; the outbox keys derive from it
    rule: str | None = None
    old: dict | None = None
    source: str = "workflow"
    comment: str | None = None
    submitter: str | None = None
    approvers: list = field(default_factory=list)
    request_id: str | None = None
    in_save: bool = False
    history_action: str = "workflow"
    warnings: list = field(default_factory=list)
    base: Any = None  # the RecordService of the save (or flow) this runs in
    _people: People | None = None
    _service: Any = None

    @property
    def conn(self):
        return self.tx.conn

    @property
    def compiled(self):
        return self.base.compiled if self.base is not None else self.runtime.compiled()

    @property
    def registry(self):
        return self.compiled.registry

    @property
    def people(self) -> People:
        if self._people is None:
            self._people = People(self.runtime, self.tx.conn, self.compiled)
        return self._people

    def service(self):
        """The platform's own RecordService on this transaction (actions act as the system)."""
        if self._service is None:
            self._service = bound_service(self.base, self.runtime, self.tx, Principal.system(), self.source)
        return self._service

    def enqueue(self, topic: str, payload: dict, key: str) -> bool:
        return outbox.enqueue(self.tx, topic, payload, key, runtime=self.runtime)

    @property
    def directory(self):
        """Users' roles and managers as the save's access check saw them (no database read)."""
        return self.base.access.directory if self.base is not None else self.runtime.directory()

    def template_context(self) -> dict:
        return {"record": self.record, "old": self.old or {}, "comment": self.comment or "",
                "user": _LazyUser(lambda: self.people.info(self.principal.user_id)), "object": self.obj.name,
                "rule": self.rule, "event": self.event}

    def warn(self, message: str, **extra: Any) -> None:
        log.error("%s (%s/%s, %s)", message, self.obj.name, self.record.get("id"), self.rule or self.event)
        self.warnings.append({"code": "workflow_action_failed", "message": message, **extra})


def bound_service(base: Any, runtime: Any, tx: Any, principal: Principal, source: str):
    """A RecordService for `principal` on `tx`, derived from `base` without reading the database.

    Why: building one from scratch may re-read the metadata version and the user directory
    on a new connection; on SQLite, inside an open write transaction, that connection waits
    for the very lock this transaction holds.
    """
    if base is None:
        from ..platform.records import RecordService

        return RecordService(runtime, principal, tx=tx, source=source)
    service = copy.copy(base)
    service.principal, service.source, service._tx = principal, source, tx
    service.access = Access(base.registry, principal, base.access.directory)
    return service


class _LazyUser(dict):
    """`user` in templates: looked up only if a template uses it."""

    def __init__(self, load):
        super().__init__()
        self._load = load

    def __missing__(self, key):
        if self._load is not None:
            load, self._load = self._load, None
            self.update(load())
            if key in self:
                return self[key]
        raise KeyError(key)


# --- values -------------------------------------------------------------------------------


def resolve_variable(value: Any, actx: ActionContext) -> Any:
    """$now, $today, $user and {{ templates }} in an action's value; other values as given."""
    if not isinstance(value, str):
        return value
    if value == "$now":
        return utcnow()
    if value == "$today":
        return today()
    if value == "$user":
        return actx.principal.user_id
    if is_template(value):
        text = render(value, **actx.template_context())
        return text if text != "" else None
    return value


def typed_value(fdef: FieldDef, value: Any, actx: ActionContext) -> Any:
    """The value an update_field writes: resolved, then coerced and checked like input."""
    value = resolve_variable(value, actx)
    if value is None:
        return None
    vtype = fdef.value_type
    if vtype == "datetime":
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime.combine(value, time())
    elif vtype == "date":
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
    elif fdef.type in ("lookup", "user", "id"):
        return str(value)
    if isinstance(value, datetime):
        value = schemas.to_json_value(FieldDef("v", "datetime"), value)
    elif isinstance(value, date):
        value = value.isoformat()
    if vtype in ("text", "textarea", "email", "phone", "url", "picklist") and not isinstance(value, str):
        value = str(value)
    return schemas.marshmallow_field(fdef).deserialize(value)


def input_value(value: Any, actx: ActionContext) -> Any:
    """A create_record value as API input (JSON-like): dates become ISO text."""
    value = resolve_variable(value, actx)
    if isinstance(value, datetime):
        return schemas.to_json_value(FieldDef("v", "datetime"), value)
    if isinstance(value, date):
        return value.isoformat()
    return value


# --- recipients ---------------------------------------------------------------------------

APPROVAL_PEOPLE = "workflow.approval_people"


def register_approval_people(runtime: Any, resolver: Any) -> None:
    """Who the `submitter` and `approvers` recipients are when no approval event fired the
    action: resolver(conn, object_name, record_id) -> (submitter, current approvers) of the
    record's latest request. The approval feature registers it (workflow does not import
    approval); without one there are none."""
    runtime.extensions[APPROVAL_PEOPLE] = resolver


def recipients(actx: ActionContext, spec: Any) -> list[str]:
    """User ids from `to`: owner, owner.manager, <user field>[.manager], submitter, approvers,
    role:<name>, user:<id or username>. Managers and roles come from the directory the save
    already holds (no query on the write path); inactive users are dropped at delivery."""
    directory = actx.directory
    found: list[str | None] = []
    for item in spec if isinstance(spec, list) else [spec]:
        if not isinstance(item, str):
            continue
        if item.startswith("role:"):
            found.extend(sorted(directory.users_with_roles({item[5:]})))
        elif item.startswith("user:"):
            ref = item[5:]
            found.append(ref if ref in directory.users else actx.people.resolve(ref))
        elif item in ("submitter", "approvers"):
            submitter, approvers = actx.submitter, actx.approvers
            if actx.request_id is None:
                resolve = actx.runtime.extensions.get(APPROVAL_PEOPLE)
                submitter, approvers = (resolve(actx.tx.conn, actx.obj.name, actx.record.get("id"))
                                        if resolve is not None else (None, []))
            found.extend([submitter] if item == "submitter" else list(approvers))
        else:
            base, _, relation = item.partition(".")
            fdef = actx.obj.all_fields.get(base)
            if fdef is None or fdef.type != "user":
                actx.warn(f"recipient {item!r} is not a user field of {actx.obj.name}")
                continue
            user_id = actx.record.get(base)
            if relation == "manager":
                user_id = (directory.users.get(user_id) or {}).get("manager") if user_id else None
            found.append(user_id)
    return list(dict.fromkeys(u for u in found if u))


def default_subject(actx: ActionContext, locale: str = "en") -> str:
    """"Opportunity: Big deal" in `locale` (the object's label in it, the locale's colon)."""
    from ..platform.i18n import translate

    name_field = actx.obj.name_field
    name = actx.record.get(name_field) if name_field else None
    label, title = actx.obj.display_label(locale), name or actx.record.get("id")
    text = translate(locale, "notifications.default_subject", object=label, name=title)
    return text if text != "notifications.default_subject" else f"{label}: {title}"


def notify_texts(actx: ActionContext, action: dict) -> dict[str, dict[str, str]]:
    """{locale: {subject, body}} of a notify action, in every shipped locale and every locale its
    `subject` / `template` map names: a map's entry for the locale (else its English, else any),
    the default subject in the locale when there is none; each a template rendered with the record."""
    from ..metadata.model import label_text
    from ..platform.i18n import LOCALES

    subject, template = action.get("subject"), action.get("template")
    locales = list(LOCALES) + [k for v in (subject, template) if isinstance(v, dict) for k in v if k not in LOCALES]
    context = actx.template_context()
    out = {}
    for locale in dict.fromkeys(locales):
        out[locale] = {
            "subject": render(label_text(subject, locale), **context) if subject else default_subject(actx, locale),
            "body": render(label_text(template, locale) if template else "", **context),
        }
    return out


# --- running ------------------------------------------------------------------------------


def run_actions(actx: ActionContext, action_list: list[dict]) -> None:
    """Run a rule's (or a process event's) actions in order."""
    if not action_list:
        return
    if not actx.in_save:
        _apply_field_changes(actx, action_list)
    for index, action in enumerate(action_list):
        kind = action.get("action")
        if kind in IN_SAVE_KINDS:
            continue
        runner = BUILTIN_RUNNERS.get(kind)
        try:
            if kind in OUTBOX_KINDS:  # only an idempotent outbox insert touches the database
                runner(actx, action, index)
                continue
            with actx.conn.begin_nested():
                if runner is not None:
                    runner(actx, action, index)
                else:
                    _run_plugin(actx, action, index)
        except Exception as exc:  # roll this action back, keep the save
            if not isinstance(exc, CrmError):
                log.exception("workflow action %s failed", kind)
            actx.warn(f"action {kind!r} failed: {getattr(exc, 'message', exc)}", action=kind, index=index)


def field_changes(actx: ActionContext, action_list: list[dict]) -> dict:
    """The record fields that update_field / assign_to_pool actions set, typed."""
    values: dict[str, Any] = {}
    for action in action_list:
        kind = action.get("action")
        if kind == "update_field":
            fdef = actx.obj.all_fields.get(action.get("field"))
            if fdef is None:
                actx.warn(f"update_field: {actx.obj.name} has no field {action.get('field')!r}")
                continue
            try:
                values[fdef.name] = typed_value(fdef, action.get("value"), actx)
            except Exception as exc:  # noqa: BLE001 - a bad value skips this update, reported as a warning
                actx.warn(f"update_field {fdef.name}: {exc}", field=fdef.name)
        elif kind == "assign_to_pool":
            values.update(pool=action.get("pool"), owner=None)
    return values


def _apply_field_changes(actx: ActionContext, action_list: list[dict]) -> None:
    values = field_changes(actx, action_list)
    if not values:
        return
    changed = {k: v for k, v in values.items() if actx.record.get(k) != v}
    if not changed:
        return
    note = f"{actx.history_action}: {actx.rule or actx.event}"
    record = actx.service().system_update(actx.obj.name, actx.record["id"], changed,
                                          action=actx.history_action, note=note)
    if record is None:
        actx.warn("the record could not be updated (deleted or changed meanwhile)")
        return
    actx.record = record


def _run_create_record(actx: ActionContext, action: dict, index: int) -> None:
    values = {name: input_value(value, actx) for name, value in (action.get("values") or {}).items()}
    actx.service().create(action["object"], values)


def _run_notify(actx: ActionContext, action: dict, index: int) -> None:
    users = recipients(actx, action.get("to"))
    if not users:
        log.info("notify (%s): no active recipient for %r", actx.rule or actx.event, action.get("to"))
        return
    texts = notify_texts(actx, action)  # each recipient reads their own language (notifications.texts_for)
    payload = {
        "users": users,
        "subject": texts["en"]["subject"],
        "body": texts["en"]["body"],
        "texts": texts,
        "object": actx.obj.name,
        "record_id": actx.record.get("id"),
        "rule": actx.rule,
        "event": actx.event,
    }
    channels = action.get("channels") or ["in_app"]
    if "in_app" in channels:
        actx.enqueue("notify", payload, f"{actx.key_base}:{index}")
    if "email" in channels:
        actx.enqueue("email", payload, f"{actx.key_base}:{index}:email")


def _run_webhook(actx: ActionContext, action: dict, index: int) -> None:
    key = f"{actx.key_base}:{index}"
    if action.get("template"):
        body = render(action["template"], **actx.template_context())
    else:
        body = json.dumps({
            "id": key,
            "event": actx.event,
            "rule": actx.rule,
            "object": actx.obj.name,
            "record": actx.service().to_json(actx.obj, actx.record),
            "occurred_at": schemas.to_json_value(FieldDef("at", "datetime"), utcnow()),
        }, ensure_ascii=False, sort_keys=True)
    payload = {"url": action["url"], "secret_ref": action.get("secret_ref"), "headers": action.get("headers") or {},
               "body": body, "object": actx.obj.name, "record_id": actx.record.get("id"), "rule": actx.rule,
               "event": actx.event}
    actx.enqueue("webhook", payload, key)


def _run_submit(actx: ActionContext, action: dict, index: int) -> None:
    """A built-in action kind whose implementation the approval feature registers by name
    (workflow does not import approval); its `process` is passed as the params."""
    _registered(actx, "submit_for_approval").fn(actx, {"process": action.get("process")})


def _run_plugin(actx: ActionContext, action: dict, index: int) -> None:
    _registered(actx, action.get("action")).fn(actx, action.get("params") or {})


def _registered(actx: ActionContext, kind: Any):
    registered = platform_actions(actx.runtime).workflow.get(kind)
    if registered is None:
        raise CrmError(f"no installed plugin provides the action {kind!r}", code="unknown_action")
    return registered


BUILTIN_RUNNERS = {
    "create_record": _run_create_record,
    "notify": _run_notify,
    "webhook": _run_webhook,
    "submit_for_approval": _run_submit,
}
