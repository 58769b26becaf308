"""Installable from the browser: the web app manifest (static/manifest.webmanifest), the icons
(static/icons/, drawn by `python -m metacrm.platform.web.pwa` from the favicon's shape, no
image library needed), and the service worker, served at /sw.js so its scope is the whole site.

The worker (static/sw.js) keeps the page shell (styles, scripts, icons, an offline page) and
the last record pages the user opened; when the connection drops it serves those, marked
"offline — shown as of <time>" in the page's language. Signing out empties the record cache
(app.js), so the next person on a shared phone does not see them.
"""

from __future__ import annotations

import struct
import zlib
from itertools import pairwise
from pathlib import Path

from flask import current_app, send_from_directory

from .core import page

STATIC = Path(__file__).resolve().parent / "static"


@page("/sw.js", public=True, endpoint="service_worker")
def service_worker():
    response = send_from_directory(current_app.static_folder, "sw.js", mimetype="text/javascript", max_age=0)
    response.headers["Service-Worker-Allowed"] = "/"
    response.headers["Cache-Control"] = "no-cache"
    return response


@page("/offline", public=True, endpoint="offline_page")
def offline_page():
    """What the worker shows for a page it never saved (cached at install; the site's own CSP,
    so it may load the stylesheet)."""
    response = send_from_directory(current_app.static_folder, "offline.html", mimetype="text/html", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


# --- icons -----------------------------------------------------------------------------------

PURPLE = (0x4F, 0x46, 0xE5, 255)
WHITE = (255, 255, 255, 255)
CLEAR = (0, 0, 0, 0)
# The favicon's "M" on its 32-unit grid: M8 22 V10 l8 7 8-7 v12, stroke 3, round caps.
M_POINTS = [(8, 22), (8, 10), (16, 17), (24, 10), (24, 22)]


def _segment_distance(px: float, py: float, a: tuple, b: tuple) -> float:
    (ax, ay), (bx, by) = a, b
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    cx, cy = ax + t * dx, ay + t * dy
    return ((px - cx) ** 2 + (py - cy) ** 2) ** 0.5


def draw_icon(size: int, maskable: bool = False) -> bytes:
    """A PNG of the logo: the white M on the purple rounded square (full bleed when maskable,
    with the M inside the safe zone)."""
    scale = size / 32
    inset = 0.2 if maskable else 0.0  # maskable icons keep their content in the middle 80 %
    rows = []
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            u, v = (x + 0.5) / scale, (y + 0.5) / scale
            color = PURPLE
            if not maskable:
                r = 8
                cx, cy = min(max(u, r), 32 - r), min(max(v, r), 32 - r)
                if (u - cx) ** 2 + (v - cy) ** 2 > r * r:
                    color = CLEAR
            if color is not CLEAR:
                mu, mv = (u - 16) / (1 - inset) + 16, (v - 16) / (1 - inset) + 16
                if min(_segment_distance(mu, mv, a, b) for a, b in pairwise(M_POINTS)) <= 1.5:
                    color = WHITE
            row.extend(color)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
            + chunk(b"IEND", b""))


def write_icons(folder: Path = STATIC / "icons") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, size, maskable in (("icon-192.png", 192, False), ("icon-512.png", 512, False),
                                 ("maskable-512.png", 512, True), ("apple-touch-icon.png", 180, True)):
        path = folder / name
        path.write_bytes(draw_icon(size, maskable))
        out.append(path)
    return out


if __name__ == "__main__":
    for written in write_icons():
        print(written)
