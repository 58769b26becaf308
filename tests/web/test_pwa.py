"""Installable from the browser (web/pwa.py): the manifest, its icons, and the service worker
served at the site's root."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from metacrm.platform.web.pwa import draw_icon

STATIC = Path(__file__).resolve().parents[2] / "metacrm" / "platform" / "web" / "static"


def test_manifest_icons_and_service_worker(client, admin_client):
    manifest = client.get("/static/manifest.webmanifest")
    assert manifest.status_code == 200
    doc = json.loads(manifest.data)
    assert doc["start_url"] == "/" and doc["display"] == "standalone"
    sizes = set()
    for icon in doc["icons"]:
        got = client.get(icon["src"])
        assert got.status_code == 200, icon["src"]
        if icon["type"] == "image/png":
            assert got.data[:8] == b"\x89PNG\r\n\x1a\n"
            width, height = struct.unpack(">II", got.data[16:24])
            assert f"{width}x{height}" == icon["sizes"]
            sizes.add(width)
    assert {192, 512} <= sizes and any(i.get("purpose") == "maskable" for i in doc["icons"])
    worker = client.get("/sw.js")  # public: the browser fetches it without the session too
    assert worker.status_code == 200 and worker.mimetype == "text/javascript"
    assert worker.headers["Service-Worker-Allowed"] == "/"
    assert b'"/offline"' in worker.data and b"/api/" in worker.data
    offline = client.get("/offline")  # public, with the site's CSP (its stylesheet loads)
    assert offline.status_code == 200 and "style-src 'self'" in offline.headers["Content-Security-Policy"]
    home = admin_client.get("/").get_data(as_text=True)
    assert 'rel="manifest"' in home and 'name="theme-color"' in home


def test_vendored_icons_are_the_generated_ones():
    assert (STATIC / "icons" / "icon-192.png").read_bytes() == draw_icon(192)
