"""Match-key normalisers for duplicate rules: pure functions from a field value to a key.

Two values are "the same" under a method when their keys are equal (fuzzy: when their
keys are similar enough). Every function returns None for None, "" when the value
holds nothing to match on (e.g. only punctuation), and is idempotent.

What `company_name` matches:
- everything `normalized` ignores: case, full-width / half-width forms (NFKC), spaces
  and punctuation;
- legal-form suffixes, repeatedly from the end: 股份有限公司, 有限责任公司, 有限公司,
  集团, 公司 … and Co., Ltd., Inc., LLC, GmbH, Corp., Corporation, Limited, Company,
  AG, S.A., PLC, Group …;
- a place name: a bracketed known place moves to the front, and a leading 北京市 reads
  as 北京, so 仁科互动（北京）有限公司 = 北京仁科互动有限公司 = 北京市仁科互动有限公司,
  and ACME (China) Co., Ltd. = ACME China Ltd = China ACME Inc. A company name without
  the place is a different key (the same core name in two cities is often two companies).
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any

import phonenumbers

KEY_MAX = 200  # keys are stored in VARCHAR(255) columns; both sides are cut alike

METHODS = ("exact", "normalized", "company_name", "email", "phone", "fuzzy")
DEFAULT_FUZZY_THRESHOLD = 0.85
BLOCK_CHARS = 3

_SEPARATOR_CATEGORIES = ("P", "S", "Z", "C")
_BRACKETS = re.compile(r"[(\[【〔「『〈《]([^()\[\]【】〔〕「」『』〈〉《》]*)[)\]】〕」』〉》]")
_STRAY_BRACKETS = str.maketrans({c: " " for c in "()[]【】〔〕「」『』〈〉《》"})

CN_SUFFIXES = tuple(sorted(
    ["股份有限公司", "有限责任公司", "有限公司", "股份公司", "集团公司", "集团", "公司", "有限合伙"],
    key=len, reverse=True,
))
EN_SUFFIXES = frozenset({
    "co", "company", "corp", "corporation", "inc", "incorporated", "ltd", "limited", "llc", "llp", "lp",
    "plc", "gmbh", "ag", "sa", "sas", "sarl", "srl", "spa", "bv", "nv", "kk", "pty", "pte", "oy", "ab",
    "kg", "group",
})
CN_PLACES = tuple(sorted([
    "中国", "北京", "上海", "天津", "重庆", "香港", "澳门", "台湾",
    "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江", "安徽", "福建", "江西", "山东", "河南",
    "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南", "陕西", "甘肃", "青海", "内蒙古", "广西",
    "西藏", "宁夏", "新疆",
    "广州", "深圳", "杭州", "南京", "苏州", "成都", "武汉", "西安", "长沙", "郑州", "济南", "青岛",
    "沈阳", "大连", "厦门", "福州", "合肥", "宁波", "无锡", "东莞", "佛山", "昆明", "哈尔滨", "长春",
    "石家庄", "太原", "南昌", "南宁", "贵阳", "兰州", "海口", "珠海", "温州", "常州", "烟台",
], key=len, reverse=True))
CN_PLACE_SUFFIXES = ("特别行政区", "自治区", "省", "市")
_CN_PLACES_BY_FIRST: dict[str, tuple[str, ...]] = {}
for _place_name in CN_PLACES:
    _CN_PLACES_BY_FIRST[_place_name[0]] = (*_CN_PLACES_BY_FIRST.get(_place_name[0], ()), _place_name)
EN_PLACES = frozenset({
    "china", "prc", "beijing", "shanghai", "tianjin", "chongqing", "hong kong", "hongkong", "macau", "taiwan",
    "guangzhou", "shenzhen", "hangzhou", "nanjing", "suzhou", "chengdu", "wuhan", "xian", "xiamen",
    "qingdao", "dalian", "ningbo", "shenyang", "changsha", "zhengzhou", "jinan", "hefei", "kunming",
    "asia", "asia pacific", "usa", "us", "uk", "europe", "germany", "japan", "singapore",
})


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _fold(text: str) -> str:
    """NFKC + case folding, to a fixed point (case folding can produce unnormalised text)."""
    if text.isascii():
        return text.lower()
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
        if folded == text:
            break
        text = folded
    return text


_ASCII_SEPARATORS = {code: " " for code in range(128) if not chr(code).isalnum()}
_SEPARATOR_MAP: dict[int, str] = dict(_ASCII_SEPARATORS)  # str.translate table: separator -> " "
_CHECKED: set[int] = set(range(128))
_SPACES = re.compile(" {2,}")


def _collapse(text: str) -> str:
    """Every run of punctuation, symbols, spaces and control characters becomes one space."""
    if not text.isascii():
        for char in set(text):
            code = ord(char)
            if code not in _CHECKED:
                if unicodedata.category(char)[0] in _SEPARATOR_CATEGORIES:
                    _SEPARATOR_MAP[code] = " "
                _CHECKED.add(code)
    text = text.translate(_SEPARATOR_MAP)
    return _SPACES.sub(" ", text).strip(" ")


def _cut(key: str) -> str:
    return key[:KEY_MAX].rstrip()


def exact(value: Any) -> str | None:
    text = _text(value)
    return None if text is None else _cut(text)


def normalized(value: Any) -> str | None:
    """Trim, case-fold, NFKC (full-width = half-width), collapse spaces and punctuation."""
    text = _text(value)
    return None if text is None else _normalized(text)


@lru_cache(maxsize=16384)
def _normalized(text: str) -> str:
    for _ in range(4):
        result = _collapse(_fold(text))
        if result == text or result.isascii():  # ASCII lower-case words and single spaces are stable
            text = result
            break
        text = result
    return _cut(text)


def _strip_suffixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for suffix in () if key.isascii() else CN_SUFFIXES:
            if key in CN_SUFFIXES:
                break  # a legal form alone is all there is to match on
            if key.endswith(suffix) and len(key) > len(suffix):
                key, changed = key[: -len(suffix)].rstrip(), True
                break
        tokens = key.split(" ")
        while len(tokens) > 1:
            if tokens[-1] in EN_SUFFIXES:
                tokens.pop()
                changed = True
                continue
            letters = 0  # "s a" (from S.A.), "l l c" (from L.L.C.)
            while letters < len(tokens) - 1 and len(tokens[-1 - letters]) == 1:
                letters += 1
            size = next((n for n in range(letters, 1, -1) if "".join(tokens[-n:]) in EN_SUFFIXES), 0)
            if not size:
                break
            del tokens[-size:]
            changed = True
        key = " ".join(tokens)
    return key


def _place(text: str) -> str | None:
    """The canonical form of a known place name ("北京市" -> "北京"), or None."""
    text = text.strip()
    for suffix in CN_PLACE_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            text = text[: -len(suffix)]
            break
    if text in CN_PLACES or text in EN_PLACES:
        return text
    return None


def _move_places(text: str) -> str:
    """Bracketed known places go to the front; other bracketed text is kept, unbracketed."""
    places: list[str] = []

    def replace(match: re.Match) -> str:
        place = _place(_collapse(match.group(1)))
        if place is not None:
            places.append(place)
            return " "
        return f" {match.group(1)} "

    text = _BRACKETS.sub(replace, text).translate(_STRAY_BRACKETS)
    return " ".join(places + [text])


def _leading_place(key: str) -> str:
    """北京市仁科 -> 北京仁科: a leading Chinese place loses 市/省 (and any space after it)."""
    for place in _CN_PLACES_BY_FIRST.get(key[:1], ()):
        if key.startswith(place):
            rest = key[len(place):]
            for suffix in CN_PLACE_SUFFIXES:
                if rest.startswith(suffix):
                    rest = rest[len(suffix):]
                    break
            rest = rest.lstrip()
            return f"{place}{rest}" if rest else place
    return key


def _trailing_place(key: str) -> str:
    tokens = key.split(" ")
    for size in (2, 1):
        if len(tokens) > size and " ".join(tokens[-size:]) in EN_PLACES:
            return " ".join(tokens[-size:] + tokens[:-size])
    return key


def company_name(value: Any) -> str | None:
    """`normalized`, plus legal-form suffixes removed and place names put in front."""
    text = _text(value)
    return None if text is None else _company_name(text)


@lru_cache(maxsize=16384)
def _company_name(text: str) -> str:
    key = _fold(text)
    for _ in range(4):
        result = normalized(_move_places(key))
        result = _strip_suffixes(result)
        result = _leading_place(_trailing_place(result))
        result = _cut(result.replace("  ", " ").strip())
        if result == key:
            break
        key = result
    return key


def email(value: Any) -> str | None:
    """Case and surrounding spaces; Gmail also ignores dots and +tags in the local part."""
    text = _text(value)
    if text is None:
        return None
    text = text.strip().lower()
    local, at, domain = text.rpartition("@")
    if at and domain in ("gmail.com", "googlemail.com"):
        local = local.split("+", 1)[0].replace(".", "")
        text = f"{local}@gmail.com"
    return _cut(text)


_PHONE_NOISE = re.compile(r"[\s\-().]")
_CN_MOBILE = re.compile(r"(\+86|0086|86)?(1[3-9]\d{9})")


@lru_cache(maxsize=16384)
def _phone(text: str, region: str) -> str:
    compact = _PHONE_NOISE.sub("", text)
    mobile = _CN_MOBILE.fullmatch(compact)
    if mobile and (mobile.group(1) == "+86" or region == "CN"):
        return "+86" + mobile.group(2)  # the common case, without a full parse
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return _digits(text, region)
    if not phonenumbers.is_possible_number(number):
        return _digits(text, region)
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if formatted == text or phonenumbers.is_valid_number(number):
        return formatted
    try:  # keys must be fixed points: an odd possible number may parse differently again
        again = phonenumbers.format_number(phonenumbers.parse(formatted, region), phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        again = None
    return formatted if again == formatted else _digits(text, region)


def _digits(text: str, region: str) -> str:
    digits = "".join(ch for ch in text if ch.isdigit())
    return digits if digits == text else _phone(digits, region)


def phone(value: Any, region: str = "CN") -> str | None:
    """E.164 (+8613800138000) when the number parses for the default region, else its digits."""
    text = _text(value)
    if text is None:
        return None
    text = unicodedata.normalize("NFKC", text).strip()
    if not text:
        return ""
    return _cut(_phone(text, (region or "CN").upper()))


def similarity(a: str, b: str) -> float:
    """0..1: difflib's ratio of two keys (1.0 when equal)."""
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def clear_caches() -> None:
    """Forget memoised keys (benchmarks measure cold work)."""
    for fn in (_normalized, _company_name, _phone):
        fn.cache_clear()


def block_key(key: str | None, size: int = BLOCK_CHARS) -> str | None:
    """The candidate block of a fuzzy key: its first characters, spaces ignored."""
    if key is None:
        return None
    return key.replace(" ", "")[:size]


def match_key(method: str, value: Any, region: str | None = None) -> str | None:
    """The stored key for a method (fuzzy stores the company-name key; see block_key)."""
    if method == "exact":
        return exact(value)
    if method == "normalized":
        return normalized(value)
    if method in ("company_name", "fuzzy"):
        return company_name(value)
    if method == "email":
        return email(value)
    if method == "phone":
        return phone(value, region or "CN")
    raise ValueError(f"unknown match method {method!r}")
