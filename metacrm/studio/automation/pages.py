"""The studio's pages and navigation: the routes table the approval-process and workflow-rule
forms (approvals.py, workflows.py) register their pages on, and the two admin links."""

from __future__ import annotations

from ...platform.features import Routes
from ...platform.web.core import NavEntry

routes = Routes()


def _is_admin(access) -> bool:
    return access.has_permission("metadata.apply")


NAV = (NavEntry("studio_approvals", "studio.nav_approvals", "web.studio_approvals", section="admin", order=17,
                visible=_is_admin),
       NavEntry("studio_workflows", "studio.nav_workflows", "web.studio_workflows", section="admin", order=18,
                visible=_is_admin))
