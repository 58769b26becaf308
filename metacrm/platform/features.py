"""How a feature plugs into the platform: one registration mechanism for every built-in
feature (pools, dedup, imports, reports, notifications, workflow, approval, plugins).

A feature is a package that declares, at module level,

    FEATURE = Feature("pools", api=api.routes, pages=pages.routes, nav=pages.NAV,
                      templates=HERE / "templates", messages=HERE / "messages",
                      openapi=api.openapi_paths, cli=cli.register_cli)

and has `register(runtime)`, which adds its hooks and sweeps to the runtime and calls
`runtime.features.add(FEATURE)`. The app factory then mounts every registered feature's REST
routes on the one /api/v1 blueprint, its pages on the web blueprint, its templates on the
Jinja loader and its nav entries in the navigation; its messages join the catalogue when it
is added. Routes are collected by decorators at import time on a `Routes` table (not on a
Flask blueprint), so each app built in a process gets fresh blueprints from the same tables.

The core never imports a feature: `setup.FEATURES` names them, and build_runtime() imports
each by name and calls its register(runtime).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Route:
    rule: str
    endpoint: str
    view: Callable[..., Any]
    methods: tuple[str, ...] = ("GET",)
    public: bool = False  # web pages only: reachable without logging in
    # web pages only: False when the view checks a token of its own instead of the session's
    # CSRF token (the public web forms' signed form token, platform/webforms/tokens.py)
    csrf: bool = True


class Routes:
    """A table of routes filled by decorators at import time, mounted per app.

    The same decorators as a Flask blueprint (`route`, `get`, `post`, `put`, `patch`,
    `delete`), plus `page` for web pages (GET by default, `public=` for the login page)."""

    def __init__(self) -> None:
        self.items: list[Route] = []

    def route(self, rule: str, *, methods: tuple[str, ...] | list[str] = ("GET",), endpoint: str | None = None,
              public: bool = False, csrf: bool = True) -> Callable:
        def decorate(fn: Callable) -> Callable:
            name = endpoint or fn.__name__
            if any(r.endpoint == name for r in self.items):
                raise ValueError(f"a route named {name!r} is registered already")
            self.items.append(Route(rule, name, fn, tuple(m.upper() for m in methods), public, csrf))
            return fn

        return decorate

    page = route

    def get(self, rule: str, **options: Any) -> Callable:
        return self.route(rule, methods=("GET",), **options)

    def post(self, rule: str, **options: Any) -> Callable:
        return self.route(rule, methods=("POST",), **options)

    def put(self, rule: str, **options: Any) -> Callable:
        return self.route(rule, methods=("PUT",), **options)

    def patch(self, rule: str, **options: Any) -> Callable:
        return self.route(rule, methods=("PATCH",), **options)

    def delete(self, rule: str, **options: Any) -> Callable:
        return self.route(rule, methods=("DELETE",), **options)

    def __iter__(self) -> Iterator[Route]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class Feature:
    """What a feature contributes beyond its hooks and sweeps (see the module docstring)."""

    name: str
    api: Routes | None = None  # REST routes under /api/v1
    pages: Routes | None = None  # web pages (endpoint web.<name>)
    nav: tuple = ()  # web.core.NavEntry items
    templates: Path | None = None  # a folder searched for templates after the web package's own
    messages: Path | None = None  # a folder with en.json and zh-CN.json
    openapi: Callable[[], dict] | None = None  # () -> OpenAPI paths of its REST routes
    cli: Callable[[Any], None] | None = None  # register_cli(main): adds its commands to `metacrm`
    on_app: Callable[[Any], None] | None = None  # on_app(flask_app): anything else it mounts on each app
    demo: Callable[[Any], str] | None = None  # demo(runtime) -> summary: seeds a demo company (init --demo)
    # record_buttons(obj, record) -> [{"id", "label", "url", "method": "get" | "post"}]: buttons the
    # feature adds to a record's detail page for the current user (called in the request).
    record_buttons: Callable[[Any, dict], list[dict]] | None = None
    # record_banners(obj, record) -> [{"id", "tone": "info" | "success" | "warning", "text", "href"?,
    # "link"?}]: notices above a record's detail page (e.g. "awaiting approval, step 2 of 2").
    record_banners: Callable[[Any, dict], list[dict]] | None = None
    template_globals: dict = field(default_factory=dict)


class FeatureSet:
    """The features registered on one runtime, in registration order (runtime.features)."""

    def __init__(self) -> None:
        self._features: dict[str, Feature] = {}

    def add(self, feature: Feature) -> None:
        if feature.messages is not None:
            from .i18n import load_messages

            load_messages(feature.messages)
        self._features[feature.name] = feature

    def get(self, name: str) -> Feature | None:
        return self._features.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._features

    def __iter__(self) -> Iterator[Feature]:
        return iter(list(self._features.values()))
