"""The feature's one table of web pages (each form module adds its pages to it)."""

from __future__ import annotations

from ...platform.features import Routes

routes = Routes()
page = routes.page
