"""The raw-stack baseline for the HTTP benchmarks: bare Flask + SQLAlchemy Core on the same
table metacrm serves, without metadata, permissions, validation, hooks or history.

GET /row/<id> (bench_core) and, for the scale run's mix, the same paths as metacrm:
GET /api/v1/records/lead/<id>, GET /api/v1/records/lead?filter=...&sort=-created_at&limit=n
(equality filters, newest first) and POST /api/v1/records/lead (insert the JSON body)."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import sqlalchemy as sa
from flask import Flask, abort, jsonify, request


def create_app() -> Flask:
    engine = sa.create_engine(os.environ["BENCH_DATABASE_URL"], pool_size=10)
    table = sa.Table("rec_lead", sa.MetaData(), autoload_with=engine)
    app = Flask(__name__)

    def plain(value):
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        return value

    def one(record_id: str):
        with engine.connect() as conn:
            found = conn.execute(sa.select(table).where(table.c.id == record_id)).mappings().first()
        if found is None:
            abort(404)
        return jsonify({key: plain(value) for key, value in found.items()})

    app.add_url_rule("/row/<record_id>", "row", one)
    app.add_url_rule("/api/v1/records/lead/<record_id>", "record", one)

    @app.get("/api/v1/records/lead")
    def listing():
        wanted = json.loads(request.args.get("filter") or "{}")
        limit = int(request.args.get("limit", 50))
        query = sa.select(table).where(table.c.deleted_at.is_(None),
                                       *[table.c[name] == value for name, value in wanted.items()])
        query = query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1)
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return jsonify({"items": [{k: plain(v) for k, v in row.items()} for row in rows[:limit]],
                        "next_cursor": None})

    @app.post("/api/v1/records/lead")
    def create():
        body = request.get_json()
        now = datetime.now(UTC).replace(tzinfo=None)
        row = {name: body.get(name) for name in ("company", "source", "status")}
        row.update(id=uuid.uuid4().hex, created_at=now, updated_at=now, version=1)
        with engine.begin() as conn:
            conn.execute(table.insert(), row)
        return jsonify({key: plain(value) for key, value in row.items()}), 201

    return app
