"""Registration (报备) conflicts and transfer requests (issue 14, ownership).

A rep whose new lead is blocked because a rep of the other unit holds the same company and
project learns the holder's name only, asks for a transfer, and the holder's manager decides
through the approval engine; approval moves the lead (and its hand-over children) to the
requester through the write path, rejection leaves it.
"""

from __future__ import annotations

from tests.test_ownership import company, quick_passwords  # noqa: F401  (fixtures)


def _blocked(company):  # noqa: F811
    """A lead hardware.rep1 holds (with an email the duplicate rule matches) and the payload
    another rep would register for the same contact."""
    run = company["run"]
    held = company["system"].create("lead", {
        "company": f"Qrstu Held {run}", "contact_name": "Lee", "source": "web",
        "email": f"lee.{run}@held.example", "owner": company["people"]["hardware.rep1"].id})
    payload = {"company": f"Other name {run}", "contact_name": "Lee", "source": "web",
               "email": f"LEE.{run}@held.example"}
    return held, payload


def test_conflict_names_the_owner_only_and_a_transfer_moves_the_lead(company, client):  # noqa: F811
    people = company["people"]
    held, payload = _blocked(company)
    rep = people["software.rep1"]
    blocked = client.post("/api/v1/records/lead", json=payload, headers=rep.headers)
    assert blocked.status_code == 409, blocked.get_json()
    body = blocked.get_json()["error"]
    line = next(d for d in body["duplicates"] if d.get("hidden"))
    owner_name = f"hardware_rep1_{company['run']}".title()
    assert line["owners"] == [owner_name]
    assert line["transfer"]["path"] == "/api/v1/transfer-requests"
    assert "id" not in line and held["id"] not in str(body) and held["company"] not in body.get("message", "")
    assert owner_name in body["message"]

    made = client.post("/api/v1/transfer-requests", json={"object": "lead", "record": payload,
                                                          "comment": "my customer"}, headers=rep.headers)
    assert made.status_code == 201, made.get_json()
    (req,) = made.get_json()["requests"]
    assert req["owner_name"] == owner_name and req["status"] == "pending"
    assert "record" not in req and held["id"] not in str(made.get_json())
    # asking twice is refused
    again = client.post("/api/v1/transfer-requests", json={"object": "lead", "record": payload}, headers=rep.headers)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "transfer_pending"
    # the approval engine's own views tell the requester nothing more (no id, no name)
    seen = client.get(f"/api/v1/approvals/{req['id']}", headers=rep.headers)
    assert seen.status_code == 200 and seen.get_json()["record"] is None
    assert held["id"] not in seen.get_data(as_text=True) and held["company"] not in seen.get_data(as_text=True)
    own = client.get("/api/v1/approvals?as=submitter", headers=rep.headers)
    assert held["id"] not in own.get_data(as_text=True) and held["company"] not in own.get_data(as_text=True)
    page = client.get(f"/approvals/{req['id']}", headers=rep.headers)
    assert held["company"] not in page.get_data(as_text=True)
    # the holder's manager sees the record
    queue = client.get("/api/v1/approvals", headers=people["hardware.mgr"].headers).get_json()
    assert held["id"] in str(queue)
    # the requester still cannot read the lead
    assert client.get(f"/api/v1/records/lead/{held['id']}", headers=rep.headers).status_code == 404
    # the requester's own manager (another unit) is not the approver; the holder's manager is
    other = client.post(f"/api/v1/approvals/{req['id']}/approve", json={}, headers=people["software.mgr"].headers)
    assert other.status_code in (403, 404)
    approved = client.post(f"/api/v1/approvals/{req['id']}/approve", json={}, headers=people["hardware.mgr"].headers)
    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["status"] == "approved"
    now = client.get(f"/api/v1/records/lead/{held['id']}", headers=rep.headers)
    assert now.status_code == 200 and now.get_json()["owner"] == rep.id
    listed = client.get("/api/v1/transfer-requests", headers=rep.headers).get_json()["items"]
    assert [(i["id"], i["status"], i.get("record")) for i in listed] == [(req["id"], "approved", held["id"])]
    history = company["system"].history("lead", held["id"])
    assert any(h.get("action") == "transfer" for h in history), history


def test_rejection_leaves_the_lead_and_only_users_who_may_hold_it_can_ask(company, client):  # noqa: F811
    people = company["people"]
    held, payload = _blocked(company)
    rep = people["software.rep2"]
    made = client.post("/api/v1/transfer-requests", json={"object": "lead", "record": payload}, headers=rep.headers)
    assert made.status_code == 201, made.get_json()
    (req,) = made.get_json()["requests"]
    rejected = client.post(f"/api/v1/approvals/{req['id']}/reject", json={"comment": "no"},
                           headers=people["hardware.mgr"].headers)
    assert rejected.status_code == 200 and rejected.get_json()["status"] == "rejected"
    lead = company["system"].get_record("lead", held["id"])
    assert lead["owner"] == people["hardware.rep1"].id
    listed = client.get("/api/v1/transfer-requests", headers=rep.headers).get_json()["items"]
    assert listed[0]["status"] == "rejected" and "record" not in listed[0]
    # after a rejection the rep may ask again
    assert client.post("/api/v1/transfer-requests", json={"object": "lead", "record": payload},
                       headers=rep.headers).status_code == 201

    # finance may not hold leads: 422 owner_not_eligible, nothing filed
    fin = client.post("/api/v1/transfer-requests", json={"object": "lead", "record": payload},
                      headers=people["finance"].headers)
    assert fin.status_code in (404, 422), fin.get_json()


def test_bad_requests_are_precise_and_a_plain_submit_never_picks_the_transfer_process(company, client):  # noqa: F811
    people = company["people"]
    rep = people["software.rep1"]
    h = rep.headers
    assert client.post("/api/v1/transfer-requests", json={"record": {}}, headers=h).status_code == 400
    assert client.post("/api/v1/transfer-requests", json={"object": "lead"}, headers=h).status_code == 400
    assert client.post("/api/v1/transfer-requests", json={"object": "lead", "record": []},
                       headers=h).status_code == 400
    nothing = client.post("/api/v1/transfer-requests", json={"object": "lead", "record": {
        "company": f"Nobody holds this {company['run']}", "contact_name": "X", "source": "web"}}, headers=h)
    assert nothing.status_code == 409 and nothing.get_json()["error"]["code"] == "no_transfer_needed"
    # an id the caller cannot read is not found (no oracle)
    hidden = company["leads"]["hardware.rep1"]["id"]
    assert client.post("/api/v1/transfer-requests", json={"object": "lead", "id": hidden},
                       headers=h).status_code == 404
    # the owner's own lead: nothing to ask for
    own = company["leads"]["software.rep1"]["id"]
    mine = client.post("/api/v1/transfer-requests", json={"object": "lead", "id": own}, headers=h)
    assert mine.status_code == 409, mine.get_json()
    # submitting a lead for approval never opens a transfer request
    plain = client.post(f"/api/v1/records/lead/{own}/submit", json={}, headers=h)
    assert plain.status_code == 409 and plain.get_json()["error"]["code"] == "approval_not_required"
