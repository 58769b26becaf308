"""After an account changes owner, the account's 360° summary (its rollups: contacts,
opportunities) counts only what the viewer may read — the closed deal and the manager's contact
that stayed behind are not counted for the new owner, while the manager who reads them all sees
the stored totals. Through the API (one record and lists), SQLite and PostgreSQL."""

from __future__ import annotations

from tests import test_ltc_support as support

ltc = support.ltc  # fixture
org = support.org  # fixture


def handed_over(org) -> dict:
    """An account of rep_a with an open and a won deal, rep_a's contact, the manager's contact and
    an open follow-up, then handed to rep_b by the manager (the open children move with it)."""
    system = org.system
    account = system.create("account", {"name": "Handover Co", "owner": org.rep_a.id})
    made = {"account": account}
    for key, obj, values, owner in (
            ("open", "opportunity", {"name": "Open deal", "stage": "qualification", "amount": "1000"}, org.rep_a),
            ("won", "opportunity", {"name": "Won deal", "stage": "qualification", "amount": "500"}, org.rep_a),
            ("contact", "contact", {"name": "Moving Contact"}, org.rep_a),
            ("mgr_contact", "contact", {"name": "Manager's Contact"}, org.mgr),
            ("todo", "activity", {"subject": "Call back"}, org.rep_a)):
        link = "related_to" if obj == "activity" else "account"
        made[key] = system.create(obj, {**values, link: account["id"], "owner": owner.id})
    system.update("opportunity", made["won"]["id"], {"stage": "won", "win_loss_reason": "product_fit"})
    current = system.get("account", account["id"])
    org.mgr.service(org.runtime).update("account", account["id"], {"owner": org.rep_b.id},
                                        version=current["version"])
    return made


def test_the_new_owner_sees_a_summary_of_what_they_can_read(org):
    made = handed_over(org)
    account_id = made["account"]["id"]
    stored = org.system.get("account", account_id)
    assert (stored["owner"], stored["opportunity_count"], stored["contact_count"]) == (org.rep_b.id, 2, 2)
    new_owner = org.rep_b.service(org.runtime)
    seen = new_owner.get("account", account_id)
    assert (seen["opportunity_count"], seen["contact_count"]) == (1, 1)
    opps = new_owner.list("opportunity", filter={"account": account_id})[0]
    contacts = new_owner.list("contact", filter={"account": account_id})[0]
    assert [o["id"] for o in opps] == [made["open"]["id"]] and [c["id"] for c in contacts] == [made["contact"]["id"]]
    listed = new_owner.list("account", filter={"id": account_id})[0]
    assert (listed[0]["opportunity_count"], listed[0]["contact_count"]) == (1, 1)
    # the manager reads the whole team's records: the totals; the previous owner no longer sees the account
    managed = org.mgr.service(org.runtime).get("account", account_id)
    assert (managed["opportunity_count"], managed["contact_count"]) == (2, 2)
    # the VP reads everything: the stored totals, unchanged by who looks
    assert org.vp.service(org.runtime).get("account", account_id)["opportunity_count"] == 2
    assert org.system.get("account", account_id)["opportunity_count"] == 2
