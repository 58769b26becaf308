"""The import wizard in headless Chromium, in English and Chinese at 1366 and 390 px:
upload a GBK CSV → the columns mapped by their Chinese labels → the dry-run preview with an
error beside its cell → run → the job page (the JS poll reloads it when done) → the report
download. Screenshots go where test_browser.py puts them (import-*.png)."""

from __future__ import annotations

import re

import pytest

from tests.web.test_browser import PHONE, browser, server, session_for  # noqa: F401

DESKTOP_WIDE = {"width": 1366, "height": 900}
CASES = [("en", DESKTOP_WIDE, "desktop"), ("en", PHONE, "phone"), ("zh-CN", DESKTOP_WIDE, "desktop"),
         ("zh-CN", PHONE, "phone")]
WORDS = {
    "en": {"map": "Columns and fields", "preview": "Preview (nothing saved yet)", "error": "Not a valid email address.",
           "done": "Finished.", "progress": "3 of 3 row(s) done"},
    "zh-CN": {"map": "列与字段", "preview": "预览（尚未保存任何数据）", "error": "不是有效的邮箱地址。",
              "done": "已完成。", "progress": "已处理 3 / 3 行"},
}


def _no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1, f"the page scrolls sideways ({width} px)"


@pytest.mark.parametrize("locale, viewport, kind", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_import_wizard_end_to_end(session_for, server, tmp_path, locale, viewport, kind):  # noqa: F811
    s = session_for(viewport=viewport)
    s.use_locale(locale)
    page = s.page
    words = WORDS[locale]
    tag = f"{locale}-{kind}"
    s.go("/records/lead")
    if viewport is PHONE:
        assert page.locator("#import-records").is_visible()
    page.click("#import-records")
    page.wait_for_url(re.compile(r"/records/lead/import$"))
    csv_text = (f"公司名称,邮箱,线索来源,备注\n导入甲-{tag},a-{tag}@example.com,web,一\n"
                f"导入乙-{tag},not-an-email,web,二\n导入丙-{tag},c-{tag}@example.com,referral,三\n")
    path = tmp_path / f"leads-{tag}.csv"
    path.write_bytes(csv_text.encode("gbk"))
    page.set_input_files("#import-file", str(path))
    s.shot(f"import-upload-{tag}.png")
    page.click("#import-upload")
    page.wait_for_url(re.compile(r"/records/lead/import/[0-9a-f]{32}$"))
    assert words["map"] in page.inner_text("main")
    assert page.input_value("#import-encoding") == "gb18030"
    assert page.input_value("#map-0") == "company" and page.input_value("#map-2") == "source"
    assert page.input_value("#map-3") == ""  # 备注 matches no field: ignored
    _no_sideways_scroll(page)
    s.shot(f"import-map-{tag}.png")
    page.click("#import-preview")
    page.wait_for_load_state()
    assert words["preview"] in page.inner_text("h1")
    cell = page.locator('tr[data-row="2"] td[data-field="email"]')
    assert words["error"] in cell.inner_text() and cell.get_attribute("aria-invalid") == "true"
    _no_sideways_scroll(page)
    s.shot(f"import-preview-{tag}.png")
    page.click("#import-run")
    page.wait_for_url(re.compile(r"/imports/jobs/[0-9a-f]{32}$"))
    page.locator('#import-progress[data-status="done"]').wait_for(timeout=30_000)  # the poll reloads it
    assert words["done"] in page.inner_text("#import-status")
    assert words["progress"] in page.inner_text("#import-counts")
    assert page.locator("#import-bar").get_attribute("value") == "3"
    assert page.locator("#import-problems").is_visible()
    _no_sideways_scroll(page)
    s.shot(f"import-job-{tag}.png")
    with page.expect_download() as info:
        page.click("#report-csv")
    report = info.value.path().read_text(encoding="utf-8-sig")
    assert report.splitlines()[0] == "row,status,id,field,message" and ",error,,email," in report
