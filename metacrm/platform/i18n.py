"""The product's words and number formats, per locale.

Messages are data: each feature keeps `messages/en.json` and `messages/zh-CN.json` in its own
folder and they are merged into one catalogue when the feature registers (the generic web
pages' words, platform/web/messages, when metacrm.platform.web.i18n is imported). Metadata labels carry their own translations as locale
maps (metacrm.metadata.model.label_text); this catalogue holds the product's own words.

`translate(locale, key, **values)` formats with str.format; a key missing in a locale falls
back to English, then to the key itself (tests keep every locale complete). Numbers, money,
percentages and dates are formatted with Babel per locale, never by hand.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from babel import Locale
from babel import dates as babel_dates
from babel import numbers as babel_numbers

LOCALES = ("en", "zh-CN")
DEFAULT_LOCALE = "en"
LOCALE_NAMES = {"en": "English", "zh-CN": "简体中文"}

MESSAGES: dict[str, dict[str, str]] = {locale: {} for locale in LOCALES}
_LOADED: set[Path] = set()


def add_messages(messages: dict[str, dict[str, str]]) -> None:
    """Add a feature's own keys, e.g. {"en": {"pools.claim": "Claim"}, "zh-CN": {"pools.claim": "领取"}}.

    Every shipped locale must get the same keys, so no page shows a bare key."""
    keys = {locale: set(messages.get(locale, {})) for locale in LOCALES}
    if len({frozenset(k) for k in keys.values()}) != 1:
        raise ValueError(f"add_messages needs the same keys for {', '.join(LOCALES)}")
    for locale in LOCALES:
        MESSAGES[locale].update(messages[locale])


def read_messages(folder: Path) -> dict[str, dict[str, str]]:
    """{locale: {key: text}} from `folder`/<locale>.json for every shipped locale."""
    out = {}
    for locale in LOCALES:
        path = Path(folder) / f"{locale}.json"
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValueError(f"{path}: a message file is a JSON object of strings")
        out[locale] = data
    return out


def load_messages(folder: Path) -> None:
    """Merge a feature's message folder into the catalogue (once per folder per process)."""
    folder = Path(folder).resolve()
    if folder in _LOADED:
        return
    add_messages(read_messages(folder))
    _LOADED.add(folder)


def normalise_locale(value: str | None) -> str:
    """One of LOCALES for any locale-ish input ('zh', 'zh_CN', 'en-US' ...)."""
    if not value:
        return DEFAULT_LOCALE
    value = value.replace("_", "-")
    if value in MESSAGES:
        return value
    base = value.split("-")[0].lower()
    if base == "zh":
        return "zh-CN"
    return DEFAULT_LOCALE


def translate(locale: str, key: str, **values: Any) -> str:
    text = MESSAGES.get(locale, {}).get(key) or MESSAGES[DEFAULT_LOCALE].get(key) or key
    return text.format(**values) if values else text


# --- formats ------------------------------------------------------------------------------------

_BABEL: dict[str, Locale] = {}


def babel_locale(locale: str) -> Locale:
    found = _BABEL.get(locale)
    if found is None:
        found = _BABEL[locale] = Locale.parse(normalise_locale(locale).replace("-", "_"))
    return found


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _places(number: Decimal, scale: int | None) -> int:
    if scale is not None:
        return max(0, int(scale))
    exponent = number.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def format_number(value: Any, locale: str, scale: int | None = None) -> str:
    """1234567.5 -> '1,234,567.50' (scale 2): grouped per locale, the value's own digits kept
    (never through float); `scale` fixes the decimal places."""
    number = _decimal(value)
    if number is None or not number.is_finite():
        return str(value)
    places = _places(number, scale)
    pattern = "#,##0" + ("." + "0" * places if places else "")
    return babel_numbers.format_decimal(number, format=pattern, locale=babel_locale(locale),
                                        decimal_quantization=True)


def format_money(value: Any, locale: str, currency: str | None = None, scale: int | None = 2) -> str:
    """An amount; with a currency code, its symbol as the locale writes it (¥1,234.50)."""
    number = _decimal(value)
    if number is None or not number.is_finite():
        return str(value)
    if not currency:
        return format_number(number, locale, scale)
    places = _places(number, scale)
    return babel_numbers.format_currency(number, currency, locale=babel_locale(locale),
                                         format="¤#,##0" + ("." + "0" * places if places else ""),
                                         currency_digits=False)


def format_percent(value: Any, locale: str, scale: int | None = None) -> str:
    """A percentage held as its number of percent (25.5 -> '25.5%')."""
    number = _decimal(value)
    if number is None or not number.is_finite():
        return str(value)
    places = _places(number, scale)
    pattern = "#,##0" + ("." + "0" * places if places else "") + "%"
    return babel_numbers.format_percent(number / 100, format=pattern, locale=babel_locale(locale),
                                        decimal_quantization=True)


def format_date(value: date | str | None, locale: str) -> str:
    """A date as the locale writes it in its medium form (May 1, 2026 / 2026年5月1日)."""
    if value in (None, ""):
        return ""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value[:10])
        except ValueError:
            return value
    if isinstance(value, datetime):
        value = value.date()
    return babel_dates.format_date(value, format="medium", locale=babel_locale(locale))


def format_datetime(value: datetime | str | None, locale: str) -> str:
    """A UTC date and time as the locale writes it (May 1, 2026, 09:30 / 2026年5月1日 09:30)."""
    if value in (None, ""):
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    day = babel_dates.format_date(value.date(), format="medium", locale=babel_locale(locale))
    return f"{day} {value:%H:%M}"

