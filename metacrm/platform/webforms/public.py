"""The public side of web-to-lead: /f/<name> (the form), its POST, and /f/<name>/thanks.

No login and no session CSRF token: the form carries a signed, time-limited, single-use token
(tokens.py); every POST counts against the sender's address (a throttle on the shared
mc_login_failure table, keys "webform:<address>"), a hidden honeypot input catches form-filling
robots (they get the thank-you, nothing is created), and the body, each value and the number of
inputs are limited. A submission is created through the RecordService as the form's own system
principal, so duplicate rules, assignment rules and workflows run as for any create; a duplicate
a rule blocks gets the same thank-you as a new record (the visitor never learns of the match).
The page may be framed by the sites the form names (`embed_origins`; CSP frame-ancestors for
these routes only)."""

from __future__ import annotations

import logging
import time

from flask import current_app, g, redirect, request, url_for
from werkzeug.datastructures import MultiDict

from ...metadata.model import label_text
from ..errors import CrmError, DuplicateBlocked, NotFound, ValidationFailed
from ..features import Routes
from ..i18n import normalise_locale
from ..records import RecordService
from ..security import Principal
from ..throttle import Policy, client_ip
from ..web import forms
from ..web.core import render_page, runtime
from ..web.forms import Layout, Section
from ..web.i18n import LOCALE_NAMES, LOCALES, current_locale, t
from . import store, tokens

log = logging.getLogger(__name__)
routes = Routes()

TOKEN_FIELD = "_form_token"
HONEYPOT = "website"  # a name robots like to fill; people never see the input
CONTROL = frozenset({TOKEN_FIELD, HONEYPOT, "lang"})
MAX_BODY = 32 * 1024  # bytes of a whole submission
MAX_VALUE = 5000  # characters of one value
MAX_KEYS = 60  # inputs in one submission
POLICY = Policy(free_attempts=20, base_seconds=60, max_seconds=3600, forget_seconds=3600)


def form_doc(name: str) -> dict:
    doc = runtime().compiled().registry.get("web_form", name)
    if doc is None:
        raise NotFound("No such form.", code="unknown_form")
    return doc


def form_principal(name: str) -> Principal:
    """The integration principal a form's submissions are made by (history: web_form:<name>)."""
    return Principal(user_id=None, username=f"web_form:{name}", roles=frozenset({"admin"}), is_system=True)


def _service(name: str) -> RecordService:
    return RecordService(runtime(), form_principal(name), source="web_form")


def _set_locale() -> None:
    wanted = request.values.get("lang")
    if wanted:
        g.locale = normalise_locale(wanted)


def _embeddable(doc: dict) -> None:
    origins = [o for o in doc.get("embed_origins") or [] if isinstance(o, str)]
    g.frame_ancestors = " ".join(["'self'", *origins]) if origins else "*"


def build(doc: dict, service: RecordService, posted: MultiDict | None = None) -> forms.Form:
    """The form's inputs as the record form's widgets (labels from the form, else the field's)."""
    obj = service.registry.object(doc["object"])
    names = [item["field"] for item in doc.get("fields") or [] if item.get("field") in obj.fields]
    required = {item["field"] for item in doc.get("fields") or [] if item.get("required")}
    layout = Layout(obj=obj, doc=None, sections=[Section(label="", columns=1, fields=names)], required=required,
                    read_only=set(), related_lists=[], list_columns=[], list_filters=[], sort=None)
    form = forms.build_form(service, obj, layout, creating=True, posted=posted)
    locale = current_locale()
    for item in doc.get("fields") or []:
        ff = form.fields.get(item.get("field"))
        if ff is not None:
            if item.get("label"):
                ff.label = label_text(item["label"], locale, ff.label)
            ff.help = None
    return form


def _page(doc: dict, form: forms.Form | None, status: int = 200, **extra):
    locale = current_locale()
    context = dict(doc=doc, form=form, title=label_text(doc.get("label"), locale, doc["name"]),
                   intro=label_text(doc.get("intro"), locale, ""), token=tokens.issue(current_app.secret_key, doc["name"]),
                   token_field=TOKEN_FIELD, honeypot=HONEYPOT, locales=_locales(),
                   action=url_for("web.web_form_submit", name=doc["name"]), **extra)
    return render_page("webforms/public.html", status, **context)


@routes.page("/f/<name>", public=True)
def web_form_public(name: str):
    _set_locale()
    doc = form_doc(name)
    _embeddable(doc)
    if not doc.get("active", True):
        return _page(doc, None, closed=True)
    return _page(doc, build(doc, _service(name)))


def _throttle_key(ip: str) -> str:
    return f"webform:{(ip or '?')[:100]}"


def _wait_seconds(ip: str) -> int:
    import sqlalchemy as sa

    from .. import db

    t_ = db.login_failure
    with runtime().engine.connect() as conn:
        locked = conn.execute(sa.select(t_.c.locked_until).where(t_.c.key == _throttle_key(ip))).scalar()
    wait = (locked or 0) - time.time()
    return int(wait + 0.999) if wait > 0 else 0


def _count(ip: str) -> None:
    import sqlalchemy as sa

    from .. import db
    from ..throttle import LoginThrottle

    for attempt in range(5):
        try:
            with runtime().engine.connect() as conn:
                conn = conn.execution_options(write=True)
                with conn.begin():
                    LoginThrottle._count(conn, db.login_failure, POLICY, _throttle_key(ip), time.time())
            return
        except sa.exc.IntegrityError:
            if attempt == 4:
                raise


def _refuse(doc: dict, status: int, message: str, posted: MultiDict | None = None):
    form = None
    if doc.get("active", True):
        form = build(doc, _service(doc["name"]), posted)
    return _page(doc, form, status, error=message)


@routes.page("/f/<name>", methods=("POST",), endpoint="web_form_submit", public=True, csrf=False)
def web_form_submit(name: str):
    _set_locale()
    doc = form_doc(name)
    _embeddable(doc)
    if (request.content_length or 0) > MAX_BODY:
        return _page(doc, None, 413, error=t("webforms.too_large"))
    ip = client_ip()
    wait = _wait_seconds(ip)
    if not wait:  # refused posts are not counted: a lockout does not grow while it lasts
        _count(ip)
        wait = _wait_seconds(ip)
    if wait:
        response = _page(doc, None, 429, error=t("webforms.throttled", minutes=max(1, (wait + 59) // 60)))
        return response[0], 429, {"Retry-After": str(wait)}
    if not doc.get("active", True):
        return _page(doc, None, 403, closed=True)
    posted = MultiDict([(k, v) for k, v in request.form.items(multi=True) if k not in CONTROL])
    nonce, why = tokens.check(current_app.secret_key, name, request.form.get(TOKEN_FIELD))
    if nonce is None:
        return _refuse(doc, 400, t("webforms.expired" if why == "expired" else "webforms.forged"), posted)
    row = store.claim(runtime().engine, name, nonce, ip)
    if row is None:
        return _refuse(doc, 400, t("webforms.replayed"))
    engine = runtime().engine
    if request.form.get(HONEYPOT):
        store.settle(engine, row, "spam")
        return _thanks_redirect(doc)
    service = _service(name)
    form = build(doc, service)
    if len(request.form) > MAX_KEYS or any(len(v) > MAX_VALUE for v in posted.values()):
        too_long = {k: [t("webforms.value_too_long", max=MAX_VALUE)] for k, v in posted.items() if len(v) > MAX_VALUE}
        store.settle(engine, row, "invalid")
        return _invalid(doc, service, posted, too_long or None)
    try:
        data = forms.parse(form, posted)
    except forms.Tampered:
        store.settle(engine, row, "invalid")
        return _refuse(doc, 400, t("webforms.tampered"))
    errors = forms.required_errors(form, data)
    if errors:
        store.settle(engine, row, "invalid")
        return _invalid(doc, service, posted, errors)
    data = {k: v for k, v in data.items() if v not in (None, "", [])}
    data.update(doc.get("stamp") or {})
    try:
        ctx = service.create_record(doc["object"], data, source="web_form")
    except DuplicateBlocked as exc:
        matched = next((d.get("id") for d in exc.extra.get("duplicates") or [] if d.get("id")), None)
        store.settle(engine, row, "duplicate", doc["object"], matched)
        return _thanks_redirect(doc)
    except ValidationFailed as exc:
        store.settle(engine, row, "invalid")
        return _invalid(doc, service, posted, exc.fields or None, None if exc.fields else t("webforms.not_sent"))
    except CrmError as exc:
        log.warning("web form %s: submission refused: %s", name, exc.message)
        store.settle(engine, row, "invalid")
        return _refuse(doc, 400, t("webforms.not_sent"), posted)
    store.settle(engine, row, "created", doc["object"], ctx.record["id"])
    return _thanks_redirect(doc)


def _invalid(doc: dict, service: RecordService, posted: MultiDict, errors: dict | None, message: str | None = None):
    form = build(doc, service, posted)
    if errors:
        forms.attach_errors(form, errors)
    return _page(doc, form, 400, error=message or t("webforms.fix_fields"))


def _thanks_redirect(doc: dict):
    return redirect(url_for("web.web_form_thanks", name=doc["name"], lang=current_locale()), code=303)


@routes.page("/f/<name>/thanks", public=True)
def web_form_thanks(name: str):
    _set_locale()
    doc = form_doc(name)
    _embeddable(doc)
    locale = current_locale()
    return render_page("webforms/thanks.html", doc=doc, title=label_text(doc.get("label"), locale, doc["name"]),
                       text=label_text(doc.get("thank_you"), locale, "") or t("webforms.thanks_default"),
                       redirect_to=doc.get("redirect"), locales=_locales())


def _locales() -> list[tuple[str, str]]:
    return [(code, LOCALE_NAMES[code]) for code in LOCALES]
