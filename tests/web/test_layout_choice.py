"""Which layout a page uses: an admin's form is not taken over by a layout meant for another
role, and per-record-type list_columns are honoured in lists (?record_type=)."""

from __future__ import annotations

import html

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change


def test_a_layout_for_another_role_does_not_take_over_the_admins_form(runtime, admin_client, system):
    finance = {"kind": "layout", "name": "account_finance_only", "object": "account",
               "applies_to": {"roles": ["finance"]},
               "sections": [{"label": {"en": "Finance view", "zh-CN": "财务视图"}, "fields": ["name", "credit_limit"]}],
               "list_columns": ["name", "credit_limit"]}
    apply_change(runtime, documents_bundle([finance]))
    page = html.unescape(admin_client.get("/records/account/new?record_type=enterprise").text)
    assert "Finance view" not in page
    assert 'name="industry"' in page  # the layout for everyone (account_default) is used


def test_per_record_type_list_columns_are_honoured(runtime, admin_client, system):
    system.create("account", {"name": "Partner One", "record_type": "channel_partner"})
    system.create("account", {"name": "Enterprise One", "record_type": "enterprise"})
    registry = runtime.compiled(force=True).registry
    partner_cols = registry.get("layout", "account_channel_partner")["list_columns"]
    default_cols = registry.get("layout", "account_default")["list_columns"]
    only_partner = [c for c in partner_cols if c not in default_cols]
    only_default = [c for c in default_cols if c not in partner_cols]
    assert only_partner and only_default
    listing = admin_client.get("/records/account?record_type=channel_partner").text
    assert f"sort={only_partner[0]}" in listing and f"sort={only_default[0]}" not in listing
    assert "Partner One" in listing and "Enterprise One" not in listing
    everything = admin_client.get("/records/account").text
    assert f"sort={only_default[0]}" in everything and f"sort={only_partner[0]}" not in everything
    assert "Partner One" in everything and "Enterprise One" in everything
