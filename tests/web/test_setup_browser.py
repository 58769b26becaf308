"""`python -m tests.setup_browser` installs Debian's chromium only when it is missing, and
always exits 0 saying what it did."""

from __future__ import annotations

import subprocess

from tests import setup_browser


def test_nothing_to_do_when_chromium_is_there(monkeypatch, capsys):
    monkeypatch.setattr(setup_browser.os.path, "exists", lambda path: True)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran apt")))
    assert setup_browser.main() == 0
    assert "nothing to do" in capsys.readouterr().out


def test_installs_with_apt_when_missing(monkeypatch, capsys):
    installed = []
    monkeypatch.setattr(setup_browser.os.path, "exists", lambda path: bool(installed))
    monkeypatch.setattr(setup_browser.shutil, "which", lambda name: "/usr/bin/apt-get")
    monkeypatch.setattr(setup_browser.os, "geteuid", lambda: 0)

    def run(command, **kwargs):
        installed.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(setup_browser.subprocess, "run", run)
    assert setup_browser.main() == 0
    assert installed == [["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]]
    assert "installed /usr/bin/chromium" in capsys.readouterr().out


def test_a_failed_install_is_reported_not_fatal(monkeypatch, capsys):
    monkeypatch.setattr(setup_browser.os.path, "exists", lambda path: False)
    monkeypatch.setattr(setup_browser.shutil, "which", lambda name: "/usr/bin/apt-get")
    monkeypatch.setattr(setup_browser.os, "geteuid", lambda: 0)
    monkeypatch.setattr(setup_browser.subprocess, "run",
                        lambda command, **kw: subprocess.CompletedProcess(command, 100, "", "no network"))
    assert setup_browser.main() == 0
    assert "failed (100)" in capsys.readouterr().out


def test_installs_the_cjk_fonts_when_only_they_are_missing(monkeypatch, capsys):
    present = {setup_browser.CHROMIUM}
    monkeypatch.setattr(setup_browser.os.path, "exists", lambda path: path in present)
    monkeypatch.setattr(setup_browser.shutil, "which", lambda name: "/usr/bin/apt-get")
    monkeypatch.setattr(setup_browser.os, "geteuid", lambda: 0)
    ran = []

    def run(command, **kwargs):
        ran.append(command)
        if command[1] == "install":
            present.add(setup_browser.CJK_FONT)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(setup_browser.subprocess, "run", run)
    assert setup_browser.main() == 0
    assert ran == [["apt-get", "update"], ["apt-get", "install", "-y", "fonts-noto-cjk"]]
    assert f"installed {setup_browser.CJK_FONT}" in capsys.readouterr().out
