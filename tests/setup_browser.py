"""`python -m tests.setup_browser`: make sure Debian's Chromium and the Noto CJK fonts (so Chinese
pages render in screenshots) are installed for the browser tests (run by `make test` before pytest).
Never downloads a browser of its own: it asks apt for the distribution's `chromium` and
`fonts-noto-cjk` packages when they are missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CHROMIUM = "/usr/bin/chromium"
CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
PACKAGES = ((CHROMIUM, "chromium"), (CJK_FONT, "fonts-noto-cjk"))


def _apt(packages: list[str], updated: list[bool]) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    commands = ([] if updated else [["apt-get", "update"]]) + [["apt-get", "install", "-y", *packages]]
    for command in commands:
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print(f"setup_browser: {' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
            return False
        if command[1] == "update":
            updated.append(True)
    return True


def main() -> int:
    updated: list[bool] = []
    for path, package in PACKAGES:
        if os.path.exists(path):
            print(f"setup_browser: {path} is installed; nothing to do")
            continue
        if shutil.which("apt-get") is None:
            print(f"setup_browser: {path} is missing and there is no apt-get; browser tests will skip "
                  "(or fail when CI is set)")
            continue
        if hasattr(os, "geteuid") and os.geteuid() != 0:
            print(f"setup_browser: {path} is missing; run as root: apt-get update && apt-get install -y {package}")
            continue
        print(f"setup_browser: installing Debian's {package}: apt-get install -y {package}", flush=True)
        if not _apt([package], updated):
            continue
        print(f"setup_browser: installed {path}" if os.path.exists(path)
              else f"setup_browser: apt finished but {path} is still missing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
