"""What a save carries through the write path: the record, its old state, who saves it, and
what hooks add on the way (warnings, options, extra history notes)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ...metadata.model import ObjectDef
from ...metadata.registry import Registry
from ..runtime import Tx
from ..security import Access, Principal

if TYPE_CHECKING:
    from .service import RecordService


def new_id() -> str:
    """32 hex chars: a millisecond timestamp then random bits, so ids sort by creation."""
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"


@dataclass
class SaveContext:
    service: RecordService
    tx: Tx
    registry: Registry
    obj: ObjectDef
    table: sa.Table
    op: str
    record: dict
    old: dict | None
    principal: Principal
    access: Access
    source: str
    input: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    options: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)  # extra history entries: (action, changes, note)

    @property
    def conn(self) -> sa.Connection:
        return self.tx.conn

    def changed(self, name: str) -> bool:
        if self.old is None:
            return self.record.get(name) is not None
        return self.old.get(name) != self.record.get(name)
