"""The web UI in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright;
never a downloaded browser), against a real HTTP server on 127.0.0.1, on SQLite.

Also takes the screenshots of the README (list, form and dashboard, desktop and phone): into a
temporary folder, or into docs/screenshots/ when METACRM_SCREENSHOTS=1 (so a test run does not
leave the working tree modified).
"""

from __future__ import annotations

import os
import random
import re
import threading
from pathlib import Path

import pytest

from metacrm.platform.config import Config
from metacrm.platform.db import make_engine
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from metacrm.platform.setup import build_runtime, initialise
from tests.conftest import ADMIN_PASSWORD

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = (Path(__file__).resolve().parents[2] / "docs" / "screenshots" if os.environ.get("METACRM_SCREENSHOTS")
               else Path(os.environ.get("TMPDIR", "/tmp")) / "metacrm-screenshots")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PASSWORD = "user-pass-123"


def _require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: run `python -m tests.setup_browser` (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


def _seed(runtime) -> dict:
    system = RecordService(runtime, Principal.system(), source="seed")
    users = {}
    for username, name, roles in (("rosa", "Rosa Chen", ["sales_rep"]), ("sam", "Sam Li", ["sales_rep"]),
                                  ("lin", "Lin Wu", ["sales_rep"])):
        users[username] = system.create("user", {"username": username, "display_name": name, "roles": roles,
                                                 "password": PASSWORD})["id"]
    runtime.directory_changed()
    admin_id = system.list("user", filter={"username": "admin"})[0][0]["id"]
    campaign = system.create("campaign", {"name": "Spring expo 2025", "channel": "offline_event",
                                          "status": "active", "budget": "80000"})
    system.create("campaign", {"name": "Search ads Q2", "channel": "search", "status": "active"})
    rng = random.Random(7)
    companies = ["Acme Robotics", "Beijing Data Co.", "Globex", "Initech", "Umbrella Health", "Stark Industries",
                 "Wayne Logistics", "Hooli", "Vandelay Imports", "Soylent Foods", "Tyrell Systems", "Cyberdyne",
                 "Shenzhen Smart Grid", "Nakatomi Trading", "Oceanic Air", "Pied Piper", "Massive Dynamic",
                 "Hangzhou Cloud", "Aperture Labs", "Wonka Confectionery", "Dunder Mifflin", "Gringotts Finance"]
    contacts = ["Li Wei", "Anna Smith", "Zhang Min", "Tom Brown", "Wang Fang", "Maria Garcia", "Chen Jie", "Sara Kim"]
    # Every lead gets an owner: an ownerless one enters a pool, whose assignment reads the user
    # directory on a second connection inside the write transaction (SQLite would wait on itself).
    owners = [users["rosa"], users["sam"], admin_id]
    leads = []
    for i, company in enumerate(companies):
        owner = owners[i % 3]
        values = {"company": company, "contact_name": rng.choice(contacts),
                  "source": rng.choice(["web", "offline_event", "web_ad", "search", "email", "referral"]),
                  "status": rng.choice(["new", "new", "working", "working", "nurturing", "qualified"]),
                  "product_line": rng.choice(["hardware", "software", "it_services"]),
                  "email": f"contact{i}@{re.sub(r'[^a-z]', '', company.lower())}.example.com",
                  "budget": f"{rng.randint(5, 900) * 1000}.00", "owner": owner}
        if i % 4 == 0:
            values["campaign"] = campaign["id"]
        leads.append(system.create("lead", values))
    registry = runtime.registry()
    if registry.has_object("opportunity"):
        account = system.create("account", {"name": "Globex Corporation", "owner": admin_id})
        stages = registry.object("opportunity").fields["stage"].option_values
        for i in range(9):
            system.create("opportunity", {"name": f"Deal {i + 1}", "account": account["id"],
                                          "stage": stages[i % max(len(stages) - 1, 1)],
                                          "amount": f"{rng.randint(50, 900) * 1000}.00", "owner": admin_id})
    rosa_lead = next(lead for lead in leads if lead.get("owner") == users["rosa"])
    sam_lead = next(lead for lead in leads if lead.get("owner") == users["sam"])
    system.create("activity", {"subject": "Intro call", "related_to": rosa_lead["id"], "type": "call",
                               "owner": users["rosa"]})
    return {"users": users, "campaign": campaign, "rosa_lead": rosa_lead, "sam_lead": sam_lead}


@pytest.fixture(scope="module")
def server(tmp_path_factory, browser):
    """A real server on 127.0.0.1 and a free port, in a thread."""
    from werkzeug.serving import make_server

    from metacrm.platform.app import create_app

    folder = tmp_path_factory.mktemp("browser")
    engine = make_engine(f"sqlite:///{folder / 'browser.db'}")
    config = Config(database_url=str(engine.url), secret_key="browser-test-secret", testing=True)
    runtime = build_runtime(config, engine)
    initialise(runtime, ADMIN_PASSWORD)
    data = _seed(runtime)
    app = create_app(config, runtime)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    data["url"] = f"http://127.0.0.1:{http.server_port}"
    data["runtime"] = runtime
    yield data
    http.shutdown()
    thread.join(5)
    engine.dispose()


class Session:
    """One browser context logged in as one user; collects console errors (CSP violations)."""

    def __init__(self, browser, server, username: str, password: str, viewport: dict):
        self.base = server["url"]
        self.context = browser.new_context(viewport=viewport, locale="en-US", has_touch=viewport is PHONE)
        self.context.set_default_timeout(10_000)
        # a page load waits on the in-process server, which shares this interpreter with whatever
        # earlier tests of a full run left behind; a stuck request still fails, and the report then
        # shows every thread's stack (tests/web/conftest.py)
        self.context.set_default_navigation_timeout(30_000)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(self.base + "/login")
        self.page.fill("#username", username)
        self.page.fill("#password", password)
        self.page.click("#login-submit")
        self.page.wait_for_url(self.base + "/")

    def go(self, path: str):
        return self.page.goto(self.base + path)

    def use_locale(self, locale: str) -> None:
        """Set the user's language on the profile page (the locale belongs to the user)."""
        self.go("/profile")
        self.page.select_option("#locale", locale)
        self.page.click("#locale-form button[type=submit]")
        self.page.wait_for_load_state()

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / name))

    def close(self) -> None:
        self.context.close()
        # Error statuses (a 400 form, a 404 page) are logged as "Failed to load resource";
        # anything else, such as a CSP violation or a script error, is a bug.
        assert [e for e in self.errors if "the server responded with a status of" not in e] == []


@pytest.fixture
def session_for(browser, server):
    opened = []

    def open_session(username="admin", password=ADMIN_PASSWORD, viewport=DESKTOP) -> Session:
        s = Session(browser, server, username, password, viewport)
        opened.append(s)
        return s

    yield open_session
    for s in opened:
        s.close()


def test_create_a_lead_see_a_field_error_then_edit_it(session_for, server):
    s = session_for()
    page = s.page
    assert page.locator("[data-widget=leads_by_source_and_status] svg").is_visible()
    s.shot("dashboard-desktop.png")
    s.go("/records/lead")
    assert page.locator("table.records thead").is_visible()
    s.shot("list-desktop.png")
    page.click("#new-record")
    page.fill("#f-company", "Browser Test Co")
    page.fill("#f-contact_name", "Ada Lovelace")
    page.select_option("#f-source", "referral")
    page.fill("#f-email", "ada@browser-test.example.com")
    page.fill("#f-phone", "call me maybe")
    page.fill("#f-budget", "1234567.89")
    page.fill("#f-campaign", "Spring")  # the lookup searches the API with the session cookie
    option = page.locator(".lookup-results [role=option]", has_text="Spring expo 2025")
    option.click()
    assert page.input_value("input[name=campaign]") == server["campaign"]["id"]
    page.locator("#f-company").focus()
    page.evaluate("window.scrollTo(0, 0)")
    s.shot("form-desktop.png")
    page.click("#save")
    error = page.locator("[data-field=phone] .field-error")
    assert "Not a valid phone number" in error.inner_text()
    assert page.input_value("#f-phone") == "call me maybe"
    assert page.input_value("#f-company") == "Browser Test Co"
    assert page.input_value("#f-budget") == "1234567.89"
    assert page.input_value("input[name=campaign]") == server["campaign"]["id"]
    assert page.input_value("#f-campaign") == "Spring expo 2025"  # the name, not the id
    page.fill("#f-phone", "+86 10 6552 9988")
    page.click("#save")
    page.wait_for_url(re.compile(r"/records/lead/[0-9a-f]{32}$"))
    assert page.inner_text("h1") == "Browser Test Co"
    assert page.locator("[data-field=campaign] a", has_text="Spring expo 2025").is_visible()
    assert "1,234,567.89" in page.inner_text("[data-field=budget]")
    page.click("#edit-record")
    page.select_option("#f-status", "working")
    page.click("#save")
    page.wait_for_url(re.compile(r"/records/lead/[0-9a-f]{32}$"))
    assert page.inner_text("[data-field=status] dd") == "Working"
    assert "Changed" in page.inner_text(".history")


def test_admin_adds_a_field_and_fills_it_without_restart(session_for):
    s = session_for()
    page = s.page
    s.go("/admin/objects/lead")
    page.fill("#af-label_en", "Contract value")
    page.fill("#af-label_zh", "合同金额")
    page.select_option("#af-type", "currency")
    assert page.locator("#af-options").is_hidden()  # shown only for picklists
    page.click("#add-field")
    assert "Field “Contract value” added." in page.inner_text(".notice")  # its label, not its name
    s.go("/records/lead/new")
    page.fill("#f-company", "Custom Field Co")
    page.select_option("#f-source", "web")
    page.fill("#f-email", "custom@field.example.com")
    page.fill("#f-contract_value", "98765.43")
    page.click("#save")
    page.wait_for_url(re.compile(r"/records/lead/[0-9a-f]{32}$"))
    assert page.inner_text("[data-field=contract_value] dd") == "98,765.43"
    s.go("/records/lead?q=Custom")
    assert "98,765.43" in page.inner_text("table.records")


def test_chinese_locale_shows_chinese_labels(session_for):
    s = session_for("lin", PASSWORD)
    page = s.page
    s.go("/profile")
    page.select_option("#locale", "zh-CN")
    page.click("#locale-form button[type=submit]")
    assert page.inner_text(".notice") == "语言已保存。"
    assert page.locator(".sidebar").get_by_role("link", name="线索", exact=True).is_visible()
    s.go("/records/lead/new")
    assert page.inner_text("h1") == "新建线索"
    assert page.locator("label[for=f-company]").inner_text().startswith("公司名称")
    assert page.inner_text("#save") == "保存"


def test_a_rep_cannot_open_another_reps_record(session_for, server):
    s = session_for("rosa", PASSWORD)
    page = s.page
    s.go("/records/lead")
    listing = page.inner_text("table.records")
    assert server["rosa_lead"]["company"] in listing
    assert server["sam_lead"]["company"] not in listing
    response = s.go(f"/records/lead/{server['sam_lead']['id']}")
    assert response.status == 404
    assert "Not found" in page.inner_text("main")
    assert server["sam_lead"]["company"] not in page.content()


def test_phone_shows_cards_a_menu_and_a_one_column_form(session_for):
    s = session_for(viewport=PHONE)
    page = s.page
    s.shot("dashboard-phone.png")
    assert page.locator(".sidebar").is_hidden()
    page.click("label.hamburger")
    page.locator(".sidebar").get_by_role("link", name="Leads", exact=True).click()
    page.wait_for_url(re.compile(r"/records/lead$"))
    assert page.locator("table.records thead").is_hidden()
    first = page.locator("tr.record-row").first
    assert first.evaluate("row => getComputedStyle(row).display") == "block"
    box = first.bounding_box()
    assert box["width"] <= 390 and box["width"] > 300
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    s.shot("list-phone.png")
    page.click("#new-record")
    company, project = page.locator("#f-company").bounding_box(), page.locator("#f-project_name").bounding_box()
    assert company["x"] == project["x"] and project["y"] > company["y"]  # one column
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.fill("#f-company", "Phone Made Co")
    page.select_option("#f-source", "mobile")
    page.fill("#f-email", "phone@made.example.com")
    s.shot("form-phone.png")
    page.click("#save")
    page.wait_for_url(re.compile(r"/records/lead/[0-9a-f]{32}$"))
    assert page.inner_text("h1") == "Phone Made Co"
    assert page.locator("#edit-record").is_visible() and page.locator("#delete-record").is_visible()
