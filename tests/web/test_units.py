"""The web UI's small parts on their own: CSRF tokens, the message
catalogue, exact number display and the SVG charts."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask, session

from metacrm.platform.web import charts, csrf, i18n
from metacrm.platform.web.admin import parse_options, slug
from metacrm.platform.web.display import group_digits

TEMPLATES = Path(__file__).resolve().parents[2] / "metacrm" / "platform" / "web" / "templates"
STATIC = TEMPLATES.parent / "static"


# --- CSRF -----------------------------------------------------------------------------------


@pytest.fixture
def flask_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "k"
    return app


def test_csrf_token_is_per_session_random_and_stable(flask_app):
    with flask_app.test_request_context("/"):
        first = csrf.token()
        assert first == csrf.token() and len(first) >= 32
        assert session["csrf"] == first
    with flask_app.test_request_context("/"):
        assert csrf.token() != first


def test_csrf_matches_only_the_sessions_token(flask_app):
    with flask_app.test_request_context("/"):
        token = csrf.token()
        assert csrf.matches(token)
        assert not csrf.matches(token[:-1] + ("A" if token[-1] != "A" else "B"))
        assert not csrf.matches("")
        assert not csrf.matches(None)
        assert not csrf.matches(123)


def test_csrf_without_a_session_token_matches_nothing(flask_app):
    with flask_app.test_request_context("/"):
        assert not csrf.matches("anything")
        assert not csrf.matches("")


def test_csrf_request_check_reads_the_form_or_the_header(flask_app):
    with flask_app.test_request_context("/", method="GET"):
        assert csrf.request_is_valid()
    with flask_app.test_request_context("/", method="POST", data={"x": "1"}):
        csrf.token()
        assert not csrf.request_is_valid()
    with flask_app.test_request_context("/", method="POST", data={"_csrf": "t"}):
        session["csrf"] = "t" * 40
        assert not csrf.request_is_valid()
        session["csrf"] = "t"
        assert csrf.request_is_valid()
    with flask_app.test_request_context("/", method="DELETE", headers={"X-CSRF-Token": "h" * 40}):
        session["csrf"] = "h" * 40
        assert csrf.request_is_valid()


def test_csrf_rotate_replaces_the_token(flask_app):
    with flask_app.test_request_context("/"):
        old = csrf.token()
        assert csrf.rotate() != old
        assert not csrf.matches(old)


# --- messages ---------------------------------------------------------------------------------


def test_both_locales_have_every_message():
    english, chinese = i18n.MESSAGES["en"], i18n.MESSAGES["zh-CN"]
    assert set(english) == set(chinese)
    for key in english:
        # the same placeholders; a language may put them in another order
        assert sorted(re.findall(r"{(\w+)}", english[key])) == sorted(re.findall(r"{(\w+)}", chinese[key])), key
    assert all(chinese[k] for k in chinese)


def test_every_key_a_template_or_module_uses_is_in_the_catalogue(runtime):
    # the runtime registered every feature, so their catalogues are loaded: a core page may show a
    # feature's words (the dashboard's "Edit dashboard", the studio's field editors on the object page)
    sources = [p.read_text(encoding="utf-8") for p in TEMPLATES.rglob("*.html")]
    sources += [p.read_text(encoding="utf-8") for p in TEMPLATES.parent.glob("*.py")]
    used = set()
    for text in sources:
        used |= set(re.findall(r"""\bt\(\s*['"]([a-z_]+\.[a-z_.]+)['"]""", text))
        used |= set(re.findall(r"""\(\s*['"][a-z_]+['"]\s*,\s*['"]([a-z_]+\.[a-z_]+)['"]""", text))
    missing = {key for key in used if key not in i18n.MESSAGES["en"]}
    assert used and not missing, missing


def test_translate_falls_back_to_english_then_the_key():
    assert i18n.translate("zh-CN", "common.save") == "保存"
    assert i18n.translate("fr", "common.save") == "Save"
    assert i18n.translate("en", "no.such.key") == "no.such.key"
    assert i18n.translate("en", "flash.created", object="Lead") == "Lead created."


def test_features_add_messages_in_every_locale():
    i18n.add_messages({"en": {"test.hello": "Hello {name}"}, "zh-CN": {"test.hello": "你好 {name}"}})
    try:
        assert i18n.translate("zh-CN", "test.hello", name="Li") == "你好 Li"
        with pytest.raises(ValueError):
            i18n.add_messages({"en": {"test.only_english": "x"}})
        assert "test.only_english" not in i18n.MESSAGES["en"]
    finally:
        for locale in i18n.LOCALES:
            i18n.MESSAGES[locale].pop("test.hello", None)


@pytest.mark.parametrize("given,expected", [("zh", "zh-CN"), ("zh_CN", "zh-CN"), ("zh-TW", "zh-CN"),
                                            ("en-US", "en"), ("de", "en"), (None, "en"), ("", "en")])
def test_locales_normalise(given, expected):
    assert i18n.normalise_locale(given) == expected


# --- no inline script or style anywhere (the CSP forbids them) ------------------------------


def test_templates_have_no_inline_scripts_styles_or_handlers():
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path
        assert "<style" not in text, path
        assert not re.search(r"\sstyle\s*=", text), path
        assert not re.search(r"\son[a-z]+\s*=", text), path
        assert "javascript:" not in text, path
        assert "|safe" not in text, path
    for path in STATIC.rglob("*"):  # the text files (icons/ holds PNGs)
        if path.suffix in (".js", ".css", ".html", ".svg", ".webmanifest", ".json"):
            assert "http://" not in path.read_text(encoding="utf-8").replace("http://www.w3.org", ""), path


# --- numbers and charts -----------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("0", "0"), ("999", "999"), ("1000", "1,000"), ("-1234567.50", "-1,234,567.50"),
    ("12345678901234567.89", "12,345,678,901,234,567.89"),
])
def test_digit_grouping_works_on_the_text(text, expected):
    assert group_digits(text) == expected


def test_charts_escape_labels_and_scale_bars():
    spec = {"type": "bars", "title": "<t>", "categories": ["<script>x</script>", "b"],
            "series": [{"label": "s&1", "values": [3, 1]}, {"label": "s2", "values": [1, 0]}]}
    svg = str(charts.render(spec))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "s&amp;1" in svg
    widths = [float(w) for w in re.findall(r'class="bar series-\d" x="[\d.]+" y="\d+" width="([\d.]+)"', svg)]
    assert len(widths) == 3 and widths[0] == pytest.approx(3 * widths[2])
    assert "style=" not in svg


def test_column_chart_and_money_totals():
    svg = str(charts.render({"type": "columns", "categories": ["a", "b"], "series": [{"label": "n", "values": [2, 4]}]}))
    heights = [float(h) for h in re.findall(r'class="bar series-\d"[^>]* height="([\d.]+)"', svg)]
    assert heights[1] == pytest.approx(2 * heights[0])
    assert charts.number_text(Decimal("1234567.5"), "money") == "1,234,567.50"
    assert charts.short_number(12_500_000) == "12.5M"
    assert charts.short_number(950) == "950"


# --- admin helpers ------------------------------------------------------------------------------


def test_field_names_from_labels_and_options_from_lines():
    assert slug("Contract value (CNY)") == "contract_value_cny"
    assert slug("2nd phone") == "f_2nd_phone"
    assert slug("合同") == ""
    assert parse_options("gold = Gold tier\nsilver\n\n bronze \n") == [
        {"value": "gold", "label": "Gold tier"}, "silver", "bronze"]
