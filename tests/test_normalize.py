"""Match-key normalisers: what counts as the same company, email and phone number."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metacrm.platform import normalize
from metacrm.platform.normalize import (
    block_key,
    company_name,
    email,
    exact,
    match_key,
    normalized,
    phone,
    similarity,
)

ASCII_PRINTABLE = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
MIXED = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),
        st.sampled_from("有限公司股份集团北京上海仁科互动（）【】，。、·　"),
        st.characters(min_codepoint=0xFF01, max_codepoint=0xFF5E),
    ),
    max_size=40,
)


def to_fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if 0x21 <= ord(c) <= 0x7E else ("\u3000" if c == " " else c) for c in text)


@settings(max_examples=300)
@given(st.text(max_size=50))
def test_normalized_is_idempotent(text):
    once = normalized(text)
    assert normalized(once) == once


@settings(max_examples=300)
@given(st.text(max_size=50))
def test_company_name_is_idempotent(text):
    once = company_name(text)
    assert company_name(once) == once


@settings(max_examples=200)
@given(MIXED)
def test_company_name_of_mixed_text_is_idempotent(text):
    once = company_name(text)
    assert company_name(once) == once


@settings(max_examples=300)
@given(ASCII_PRINTABLE)
def test_full_width_and_half_width_agree(text):
    assert normalized(to_fullwidth(text)) == normalized(text)
    assert company_name(to_fullwidth(text)) == company_name(text)


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40))
def test_case_is_ignored(text):
    assert normalized(text.upper()) == normalized(text.lower())
    assert company_name(text.upper()) == company_name(text.lower())
    assert email(text.upper()) == email(text.lower())


@settings(max_examples=200)
@given(st.text(max_size=30), st.text(alphabet=" \t,.;:!?-_/()", max_size=5))
def test_spaces_and_punctuation_around_do_not_matter(text, noise):
    assert normalized(noise + text + noise) == normalized(text)


@settings(max_examples=200)
@given(st.text(alphabet="0123456789 -+()", max_size=20))
def test_phone_is_idempotent(text):
    once = phone(text)
    assert phone(once) == once


def test_none_stays_none_and_nothing_is_empty():
    for fn in (exact, normalized, company_name, email, phone):
        assert fn(None) is None
    assert normalized(" ,.;- ") == ""
    assert phone("n/a") == ""


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("ACME Co., Ltd.", "acme co ltd"),
        ("ACME Co.,Ltd", "ACME"),
        ("Globex Inc.", "GLOBEX INC"),
        ("Globex Corporation", "globex corp."),
        ("Initech LLC", "Initech, L.L.C."),
        ("Siemens AG", "ＳＩＥＭＥＮＳ　ＡＧ"),
        ("Société Générale S.A.", "SOCIÉTÉ GÉNÉRALE SA"),
        ("Vodafone Group PLC", "Vodafone"),
        ("ACME (China) Co., Ltd.", "ACME China Ltd"),
        ("ACME (Beijing) Co., Ltd.", "Beijing ACME Co Ltd"),
        ("仁科互动（北京）有限公司", "北京仁科互动有限公司"),
        ("仁科互动(北京)有限公司", "北京市仁科互动有限公司"),
        ("华为技术有限公司", "华为技术"),
        ("阿里巴巴集团控股有限公司", "阿里巴巴集团控股"),
        ("腾讯科技股份有限公司", "腾讯科技有限责任公司"),
        ("仁科集团股份有限公司", "仁科"),
    ],
)
def test_company_names_that_are_the_same(first, second):
    assert company_name(first) == company_name(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("ACME Co., Ltd.", "ACME Software Ltd"),
        ("北京大学", "上海大学"),
        ("仁科互动（北京）有限公司", "仁科互动（上海）有限公司"),
        ("Globex", "Initech"),
    ],
)
def test_company_names_that_differ(first, second):
    assert company_name(first) != company_name(second)


def test_a_legal_form_alone_is_not_erased():
    assert company_name("有限公司") == "有限公司"
    assert company_name("Company") == "company"


@pytest.mark.parametrize(
    "number",
    ["+86 138-0013-8000", "13800138000", "+8613800138000", "0086 138 0013 8000", "１３８００１３８０００",
     "(+86) 138 0013 8000"],
)
def test_chinese_mobile_numbers_agree(number):
    assert phone(number) == "+8613800138000"


def test_phone_region_is_configurable():
    assert phone("650-253-0000", "US") == "+16502530000"
    assert phone("+1 650 253 0000", "CN") == "+16502530000"
    assert phone("010-1234 5678") == "+861012345678"
    assert phone("010-1234 5678") != phone("021-1234 5678")


def test_email_case_spaces_and_gmail():
    assert email("  Sales@Example.COM ") == "sales@example.com"
    assert email("John.Doe+crm@gmail.com") == email("johndoe@googlemail.com")
    assert email("john.doe@example.com") != email("johndoe@example.com")


def test_similarity_and_blocks():
    a, b = company_name("Acme Software Ltd"), company_name("ACME Sofware Co")
    assert similarity(a, b) >= 0.9
    assert similarity(a, company_name("Globex Corporation")) < 0.5
    assert block_key(a) == block_key(b) == "acm"
    assert block_key(company_name("仁科互动有限公司")) == "仁科互"


def test_match_key_dispatches_by_method():
    assert match_key("exact", "A b") == "A b"
    assert match_key("normalized", "A,  b") == "a b"
    assert match_key("company_name", "A b Ltd") == "a b"
    assert match_key("fuzzy", "A b Ltd") == "a b"
    assert match_key("email", " X@Y.z") == "x@y.z"
    assert match_key("phone", "13800138000") == "+8613800138000"
    with pytest.raises(ValueError):
        match_key("soundex", "x")
    assert len(normalized("x" * 500)) == normalize.KEY_MAX
