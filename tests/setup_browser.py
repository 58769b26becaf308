"""`python -m tests.setup_browser`: make sure Debian's Chromium is installed for the browser
tests (run by `make test` before pytest). Never downloads a browser of its own: it asks apt
for the distribution's `chromium` package when /usr/bin/chromium is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CHROMIUM = "/usr/bin/chromium"


def main() -> int:
    if os.path.exists(CHROMIUM):
        print(f"setup_browser: {CHROMIUM} is installed; nothing to do")
        return 0
    if shutil.which("apt-get") is None:
        print(f"setup_browser: {CHROMIUM} is missing and there is no apt-get; browser tests will skip "
              "(or fail when CI is set)")
        return 0
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        print(f"setup_browser: {CHROMIUM} is missing; run as root: apt-get update && apt-get install -y chromium")
        return 0
    print("setup_browser: installing Debian's chromium: apt-get update && apt-get install -y chromium", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print(f"setup_browser: {' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
            return 0
    print(f"setup_browser: installed {CHROMIUM}" if os.path.exists(CHROMIUM)
          else f"setup_browser: apt finished but {CHROMIUM} is still missing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
