"""The feature's web pages: the public forms (public.py) and Admin → Web forms (admin.py)."""

from __future__ import annotations

from ..features import Routes
from . import admin, public

routes = Routes()
routes.items.extend([*public.routes, *admin.routes])
NAV = admin.NAV
