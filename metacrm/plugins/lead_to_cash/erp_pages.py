"""The ERP link's admin page (/admin/erp): the webhook URL and the signing secret. The secret
is write-only: the page shows whether one is set and its last 4 characters, and a new one
replaces it. Empty URL switches the link off. Registered as its own feature by
metacrm.plugins.register."""

from __future__ import annotations

from pathlib import Path

from flask import request

from ...platform.errors import Forbidden
from ...platform.features import Feature, Routes
from ...platform.web.core import NavEntry, current_access, notify, redirect_to, render_page, runtime
from ...platform.web.i18n import t
from . import erp

HERE = Path(__file__).resolve().parent
routes = Routes()


def _require_admin() -> None:
    if not current_access().is_admin:
        raise Forbidden("Only administrators configure the ERP link.")


def _render(values: dict | None = None, errors: dict | None = None, status: int = 200):
    rt = runtime()
    with rt.reading() as conn:
        current = erp.config(conn)
    values = values if values is not None else {"url": current["url"]}
    return render_page("erp/settings.html", status=status, current=current, values=values,
                       errors={k: t(v) for k, v in (errors or {}).items()},
                       inbound_path="/api/v1/x/lead_to_cash/erp/status", secret_min=erp.SECRET_MIN)


@routes.page("/admin/erp")
def admin_erp():
    _require_admin()
    return _render()


@routes.page("/admin/erp", methods=("POST",), endpoint="admin_erp_save")
def admin_erp_save():
    _require_admin()
    url = (request.form.get("url") or "").strip()
    secret = request.form.get("secret") or ""
    result = erp.save_config(runtime(), url, secret or None)
    if "errors" in result:
        return _render(values={"url": url}, errors=result["errors"], status=400)
    notify(t("erp.saved_on") if result["enabled"] else t("erp.saved_off"))
    return redirect_to("web.admin_erp")


NAV = (
    NavEntry("admin_erp", "nav.admin_erp", "web.admin_erp", section="admin", order=35,
             visible=lambda access: access.is_admin),
)

FEATURE = Feature("erp_link", pages=routes, nav=NAV, templates=HERE / "templates", messages=HERE / "messages")
