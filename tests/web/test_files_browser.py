"""Files in Chromium, English and Chinese, at 1366 and 390 px: a rep attaches a file to a lead
on its page, sees it listed and in the history, downloads it, sees a refused program's message
beside the input, and removes the file. The phone's file input offers the camera."""

from __future__ import annotations

from tests.web.test_browser import PASSWORD, PHONE, browser, server, session_for  # noqa: F401

SCREEN_DESKTOP = {"width": 1366, "height": 800}
RUNS = (("en", SCREEN_DESKTOP, "desktop"), ("en", PHONE, "phone"),
        ("zh-CN", SCREEN_DESKTOP, "desktop"), ("zh-CN", PHONE, "phone"))
WORDS = {"en": {"added": "File added", "refused": "Programs and scripts cannot be attached.", "title": "Attachments"},
         "zh-CN": {"added": "添加了文件", "refused": "不能上传程序和脚本。", "title": "附件"}}
PDF = b"%PDF-1.4\n%browser test\n" + b"x" * 2000


def test_a_rep_attaches_downloads_and_removes_a_file(session_for, server, tmp_path):  # noqa: F811
    lead = server["rosa_lead"]
    for locale, viewport, tag in RUNS:
        rosa = session_for("rosa", PASSWORD, viewport=viewport)
        rosa.use_locale(locale)
        page = rosa.page
        rosa.go(f"/records/lead/{lead['id']}")
        card = page.locator("#files")
        assert WORDS[locale]["title"] in card.inner_text()
        assert page.locator("#attach-photo").get_attribute("capture") == "environment"
        name = f"offer-{locale}-{tag}.pdf"
        path = tmp_path / name
        path.write_bytes(PDF)
        page.set_input_files("#attach-file", str(path))
        page.click("#attach-submit")
        page.wait_for_load_state()
        item = page.locator(".file-item", has_text=name)
        assert item.count() == 1
        assert "KB" in item.inner_text()
        assert WORDS[locale]["added"] in page.locator(".history").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        card.scroll_into_view_if_needed()
        rosa.shot(f"files-{locale}-{tag}.png")
        with page.expect_download() as info:
            item.locator("a.file-name").click()
        download = info.value
        assert download.suggested_filename == name
        assert (tmp_path / "got.pdf").exists() is False
        download.save_as(str(tmp_path / "got.pdf"))
        assert (tmp_path / "got.pdf").read_bytes() == PDF
        (tmp_path / "got.pdf").unlink()
        bad = tmp_path / "tool.exe"
        bad.write_bytes(b"MZ" + b"\x00" * 100)
        page.set_input_files("#attach-file", str(bad))
        page.click("#attach-submit")
        page.wait_for_load_state()
        assert WORDS[locale]["refused"] in page.locator("#attach-file-err").inner_text()
        page.locator("#attach-file-err").scroll_into_view_if_needed()
        rosa.shot(f"files-refused-{locale}-{tag}.png")
        page.on("dialog", lambda dialog: dialog.accept())
        page.locator(".file-item", has_text=name).locator(".file-remove").click()
        page.wait_for_load_state()
        assert page.locator(".file-item", has_text=name).count() == 0
