"""The demo company's people (departments, managers, reps, marketing, finance) and its
catalogue (products, lead priority rules)."""

from __future__ import annotations

from ....platform.security import hash_password
from .data import BUS, GIVEN, PRODUCTS, SURNAMES
from .seeder import Seeder, _password


def people(demo: Seeder) -> None:
    s = demo.system
    password_hash = hash_password(_password())
    hq = s.create("department", {"name": "headquarters", "code": "hq"})["id"]
    sales = s.create("department", {"name": "sales", "code": "sales", "parent": hq})["id"]
    demo.dept = {"hq": hq, "sales": sales}
    for code, _, _ in BUS:
        demo.dept[code] = s.create("department", {"name": code, "code": code, "parent": sales})["id"]
    for code in ("marketing", "finance"):
        demo.dept[code] = s.create("department", {"name": code, "code": code, "parent": hq})["id"]
    demo.users: dict[str, dict] = {}

    def user(username, display, roles, dept, manager=None):
        values = {"username": username, "display_name": display, "roles": roles, "department": demo.dept[dept],
                  "email": f"{username}@demo.metacrm.dev",
                  "locale": "zh-CN" if demo.rng.random() < 0.5 else "en"}
        if manager:
            values["manager"] = demo.users[manager]["id"]
        created = s.create("user", values)
        # every demo user has the same password: hash it once (scrypt is slow on purpose)
        s.system_update("user", created["id"], {"password": password_hash}, note="demo password")
        demo.users[username] = {"id": created["id"], "roles": roles, "dept": dept, "manager": manager}
        demo.count("users")
        return created["id"]

    user("vp.wang", "Wang Jian (VP Sales)", ["vp_sales"], "sales")
    demo.reps: dict[str, list[str]] = {}
    for code, en, _ in BUS:
        user(f"{code}.mgr", f"{demo.rng.choice(SURNAMES)} {demo.rng.choice(GIVEN)} ({en} manager)",
             ["sales_manager"], code, "vp.wang")
        demo.reps[code] = []
        for i in range(1, 4):
            name = f"{code}.rep{i}"
            user(name, f"{demo.rng.choice(SURNAMES)} {demo.rng.choice(GIVEN)}", ["sales_rep"], code, f"{code}.mgr")
            demo.reps[code].append(name)
    user("mkt.li", "Li Na (Marketing)", ["marketing"], "marketing")
    user("mkt.chen", "Chen Yu (Marketing)", ["marketing"], "marketing", "mkt.li")
    user("fin.zhao", "Zhao Min (Finance)", ["finance"], "finance")
    user("fin.sun", "Sun Hao (Finance)", ["finance"], "finance", "fin.zhao")
    for code, head in [("sales", "vp.wang"), ("marketing", "mkt.li"), ("finance", "fin.zhao")] + \
            [(code, f"{code}.mgr") for code, _, _ in BUS]:
        s.update("department", demo.dept[code], {"head": demo.users[head]["id"]})
    demo.runtime.directory_changed()


def catalogue(demo: Seeder) -> None:
    s = demo.system
    demo.products = {}
    for code, name, line, price in PRODUCTS:
        demo.products[code] = s.create("product", {"code": code, "name": name, "product_line": line,
                                                   "list_price": price, "unit": "set"})
    demo.count("products", len(PRODUCTS))
    s.create("lead_priority_rule", {"name": "Finance and telecom, hot", "industries": ["finance", "telecom"],
                                    "min_score": 50})
    s.create("lead_priority_rule", {"name": "Solutions in the east", "product_lines": ["solutions"],
                                    "regions": ["east"]})
