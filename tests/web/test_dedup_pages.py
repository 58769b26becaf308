"""Duplicates and merge pages through the Flask test client (SQLite and PostgreSQL): the check
names only the matches the user may read, the merge page keeps the chosen value per field and
re-points the children through the API's merge function, and refuses what the API refuses
(delete rights on a loser), a stale version and a post without the CSRF token."""

from __future__ import annotations

import html

from tests.web.conftest import post


def text(response) -> str:
    return html.unescape(response.text)


def contact(system, name: str, email: str, **values) -> dict:
    return system.create("contact", {"name": name, "email": email, **values})


def admin_id(system) -> str:
    return system.list("user", filter={"username": "admin"})[0][0]["id"]


def test_check_shows_readable_matches_only(rep_client, system, rep):
    mine = contact(system, "Li Wei", "li.wei@example.com", owner=rep.id, phone="13800138000")
    twin = contact(system, "Wei Li", "LI.WEI@example.com", owner=rep.id)
    contact(system, "Li W.", "li.wei@example.com", owner=admin_id(system))  # not the rep's: hidden
    alone = contact(system, "Nobody Else", "nobody@example.com", owner=rep.id)
    detail = text(rep_client.get(f"/records/contact/{mine['id']}"))
    assert f'href="/records/contact/{mine["id"]}/duplicates"' in detail and "Check duplicates" in detail
    page = text(rep_client.get(f"/records/contact/{mine['id']}/duplicates"))
    assert f'href="/records/contact/{twin["id"]}"' in page and "Wei Li" in page
    row = page[page.index(f'data-match="{twin["id"]}"'):]
    row = row[:row.index("</tr>")]
    assert "Same contact" in row and "Email" in row and "Phone" not in row
    assert "Li W." not in page and "A matching record exists that you cannot see" in page
    assert "contact_same_email_or_phone" not in page  # the rule by its label, never its name
    assert page.count('name="ids"') == 2  # this record and the readable twin
    empty = text(rep_client.get(f"/records/contact/{alone['id']}/duplicates"))
    assert 'id="no-duplicates"' in empty and "cannot see" not in empty and 'data-match' not in empty
    system.update("user", rep.id, {"locale": "zh-CN"})
    zh = text(rep_client.get(f"/records/contact/{mine['id']}/duplicates"))
    assert "可能重复的记录" in zh and "同一联系人" in zh and "无权查看" in zh


def test_no_button_without_a_rule_and_unreadable_record_is_404(rep_client, system, rep):
    campaign = system.create("campaign", {"name": "Expo", "channel": "offline_event", "status": "active"})
    other = contact(system, "Someone", "someone@example.com", owner=admin_id(system))
    assert rep_client.get(f"/records/contact/{other['id']}/duplicates").status_code == 404
    assert rep_client.get(f"/records/campaign/{campaign['id']}/duplicates").status_code == 404


def test_merge_picks_values_per_field_and_moves_children(admin_client, system):
    master = contact(system, "Zhang Min", "zhang@example.com", title="Buyer")
    loser = contact(system, "Zhang Min (old)", "ZHANG@example.com", phone="13900139000", title="CTO")
    account = system.create("account", {"name": "Merge Target Co"})
    deal = system.create("opportunity", {"name": "Deal Z", "account": account["id"], "contact": loser["id"],
                                         "stage": "qualification", "amount": "1000",
                                         "close_date": "2030-01-01"})
    url = f"/records/contact/merge?ids={master['id']}&ids={loser['id']}"
    page = text(admin_client.get(url))
    assert "Zhang Min (old)" in page and 'name="master"' in page
    assert "1 Opportunities move to the surviving record (Contact)." in page
    # defaults: the master's value, or the first non-empty one
    assert f'name="v.title" value="{master["id"]}" checked' in page
    assert f'name="v.phone" value="{loser["id"]}" checked' in page
    response = post(admin_client, "/records/contact/merge", {
        "ids": [master["id"], loser["id"]], "master": master["id"], "confirm": "1",
        f"version.{master['id']}": "1", f"version.{loser['id']}": "1",
        "v.title": loser["id"], "v.phone": loser["id"], "v.name": master["id"]})
    assert response.status_code == 303, response.text
    assert response.headers["Location"].endswith(f"/records/contact/{master['id']}")
    after = text(admin_client.get(response.headers["Location"]))
    assert "Merged 1 record(s) into this one; 1 related record(s) moved." in after
    assert "merged Contact 1 record(s) now in the recycle bin" in after and loser["id"] not in after
    system.update("user", admin_id(system), {"locale": "zh-CN"})
    assert "合并了联系人：1 条已移入回收站的记录" in text(admin_client.get(response.headers["Location"]))
    kept = system.get("contact", master["id"])
    assert (kept["name"], kept["title"], kept["phone"]) == ("Zhang Min", "CTO", "13900139000")
    assert system.get("opportunity", deal["id"])["contact"] == master["id"]
    assert not system.list("contact", filter={"id": loser["id"]})[0]
    assert any(e["action"] == "merge" for e in system.history("contact", master["id"]))
    assert any(e["action"] == "merge" for e in system.history("contact", loser["id"]))


def test_a_user_without_delete_rights_is_refused_and_nothing_changes(rep_client, system, rep):
    first = contact(system, "Chen Jie", "chen@example.com", owner=rep.id)
    second = contact(system, "Chen Jie 2", "chen@example.com", owner=rep.id, title="Boss")
    page = text(rep_client.get(f"/records/contact/merge?ids={first['id']}&ids={second['id']}"))
    assert 'id="merge-not-allowed"' in page and 'id="merge-confirm"' not in page
    response = post(rep_client, "/records/contact/merge", {
        "ids": [first["id"], second["id"]], "master": first["id"], "confirm": "1",
        f"version.{first['id']}": "1", f"version.{second['id']}": "1", "v.title": second["id"]})
    assert response.status_code == 403
    assert system.get("contact", second["id"])["deleted_at"] is None
    assert system.get("contact", first["id"])["title"] is None


def test_a_stale_version_is_refused_and_shows_the_current_values(admin_client, system):
    first = contact(system, "Wang Fang", "wang@example.com")
    second = contact(system, "Wang Fang B", "wang@example.com")
    system.update("contact", second["id"], {"title": "Changed meanwhile"})
    response = post(admin_client, "/records/contact/merge", {
        "ids": [first["id"], second["id"]], "master": first["id"], "confirm": "1",
        f"version.{first['id']}": "1", f"version.{second['id']}": "1"})
    assert response.status_code == 409
    page = text(response)
    assert 'id="merge-conflict"' in page and "Changed meanwhile" in page
    assert system.get("contact", second["id"])["deleted_at"] is None


def test_merge_without_csrf_is_refused(admin_client, system):
    first = contact(system, "Sara Kim", "sara@example.com")
    second = contact(system, "Sara Kim 2", "sara@example.com")
    response = admin_client.post("/records/contact/merge", data={
        "ids": [first["id"], second["id"]], "master": first["id"], "confirm": "1",
        f"version.{first['id']}": "1", f"version.{second['id']}": "1"})
    assert response.status_code == 400
    assert system.get("contact", second["id"])["deleted_at"] is None


def test_merge_input_is_checked(admin_client, system):
    first = contact(system, "Tom Brown", "tom@example.com")
    second = contact(system, "Tom Brown 2", "tom@example.com")
    one = admin_client.get(f"/records/contact/merge?ids={first['id']}")
    assert one.status_code == 303
    base = {"ids": [first["id"], second["id"]], "master": first["id"], "confirm": "1",
            f"version.{first['id']}": "1", f"version.{second['id']}": "1"}
    assert post(admin_client, "/records/contact/merge", {**base, "master": "elsewhere"}).status_code == 400
    assert post(admin_client, "/records/contact/merge", {**base, "v.title": "elsewhere"}).status_code == 400
    assert post(admin_client, "/records/contact/merge", {**base, "v.version": second["id"]}).status_code == 400
    assert post(admin_client, "/records/contact/merge", {**base, f"version.{first['id']}": "x"}).status_code == 400
    assert system.get("contact", second["id"])["deleted_at"] is None


def test_duplicate_groups_per_rule_count_readable_records_only(rep_client, system, rep):
    a = contact(system, "Group A", "group@example.com", owner=rep.id)
    b = contact(system, "Group B", "GROUP@example.com", owner=rep.id)
    contact(system, "Group Hidden", "group@example.com", owner=admin_id(system))
    contact(system, "Hidden One", "hidden.pair@example.com", owner=admin_id(system))
    contact(system, "Hidden Two", "hidden.pair@example.com", owner=admin_id(system))
    contact(system, "Single", "single@example.com", owner=rep.id)
    home = text(rep_client.get("/"))
    assert 'href="/duplicates"' in home
    rules = text(rep_client.get("/duplicates"))
    assert 'href="/duplicates/contact_same_email_or_phone"' in rules and "Same contact" in rules
    page = text(rep_client.get("/duplicates/contact_same_email_or_phone"))
    assert "Group A" in page and "Group B" in page and "Email" in page
    assert "Group Hidden" not in page and "Hidden One" not in page and "Single" not in page
    assert "and 1 more" not in page and page.count("data-group=") == 1
    assert f"/records/contact/merge?ids={a['id']}&amp;ids={b['id']}" in rep_client.get(
        "/duplicates/contact_same_email_or_phone").text
    assert rep_client.get("/duplicates/no_such_rule").status_code == 404
    system.update("user", rep.id, {"locale": "zh-CN"})
    assert "重复记录" in text(rep_client.get("/duplicates/contact_same_email_or_phone"))


def test_duplicate_groups_for_an_admin_and_the_empty_case(admin_client, system):
    page = text(admin_client.get("/duplicates/account_same_name"))
    assert 'id="no-groups"' in page
    contact(system, "Admin One", "same.phone@example.com", phone="13600136000")
    contact(system, "Admin Two", "other@example.com", phone="+86 136 0013 6000")
    page = text(admin_client.get("/duplicates/contact_same_email_or_phone"))
    row = page[page.index('data-group="1"'):]
    row = row[:row.index("</tr>")]
    assert "Admin One" in row and "Admin Two" in row and "Phone" in row
