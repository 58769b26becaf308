"""The raw-stack baseline for the HTTP benchmark: bare Flask + SQLAlchemy Core reading the
same row of the same table that metacrm serves."""

from __future__ import annotations

import os
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from flask import Flask, abort, jsonify


def create_app() -> Flask:
    engine = sa.create_engine(os.environ["BENCH_DATABASE_URL"])
    table = sa.Table("rec_lead", sa.MetaData(), autoload_with=engine)
    app = Flask(__name__)

    def plain(value):
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        return value

    @app.get("/row/<record_id>")
    def row(record_id: str):
        with engine.connect() as conn:
            found = conn.execute(sa.select(table).where(table.c.id == record_id)).mappings().first()
        if found is None:
            abort(404)
        return jsonify({key: plain(value) for key, value in found.items()})

    return app
