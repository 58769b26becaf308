"""The approval engine's own tables (created with the platform's system tables)."""

from __future__ import annotations

import sqlalchemy as sa

from ..platform import db
from ..platform.storage import UtcDateTime

request = sa.Table(
    "mc_approval_request",
    db.system_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("process", sa.String(64), nullable=False),
    sa.Column("object", sa.String(64), nullable=False),
    sa.Column("record_id", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | approved | rejected | recalled
    sa.Column("step_index", sa.Integer),  # index into the process's steps
    sa.Column("step_name", sa.String(64)),
    sa.Column("round", sa.Integer, nullable=False, default=1),  # bumps each time a step is (re)opened
    sa.Column("chain", sa.JSON, nullable=False),  # the step indexes whose `when` held at submit
    sa.Column("submitter", sa.String(32)),
    sa.Column("submitted_at", UtcDateTime, nullable=False),
    sa.Column("decided_at", UtcDateTime),
    sa.Column("comment", sa.Text),
    # "<object>:<record id>" while pending, NULL after: one pending request per record, enforced
    sa.Column("pending_key", sa.String(100), unique=True),
    sa.Index("ix_mc_approval_request_record", "object", "record_id", "status"),
    sa.Index("ix_mc_approval_request_submitter", "submitter", "submitted_at"),
)

task = sa.Table(
    "mc_approval_task",
    db.system_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(32), nullable=False),
    sa.Column("step_index", sa.Integer, nullable=False),
    sa.Column("step_name", sa.String(64), nullable=False),
    sa.Column("round", sa.Integer, nullable=False),
    sa.Column("approver", sa.String(32), nullable=False),
    sa.Column("delegated_from", sa.String(32)),
    sa.Column("status", sa.String(16), nullable=False),  # pending | approved | rejected | no_response | delegated
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("decided_at", UtcDateTime),
    sa.Column("comment", sa.Text),
    sa.Column("reminded_at", UtcDateTime),
    sa.Column("escalated", sa.Boolean, nullable=False, default=False),
    sa.Index("ix_mc_approval_task_request", "request_id", "round"),
    sa.Index("ix_mc_approval_task_approver", "approver", "status"),
)

delegate = sa.Table(
    "mc_approval_delegate",
    db.system_metadata,
    sa.Column("user_id", sa.String(32), primary_key=True),
    sa.Column("delegate_to", sa.String(32), nullable=False),
    sa.Column("until", UtcDateTime),  # NULL: until revoked
    sa.Column("created_at", UtcDateTime, nullable=False),
)

TABLES = [request, task, delegate]
