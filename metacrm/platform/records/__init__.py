"""The record service: the one write path for every object (ENGINEERING.md).

input -> coerce + validate -> permission and field access -> before-save hooks
(field updates, plugins, dedup, formulas, autonumbers) -> write with version check
-> history -> after-save hooks (rollups, triggers, approvals) -> commit -> side effects.

API, web forms, import, workflows, approvals and plugins all call RecordService; nothing
else writes record tables. Its parts, one module each: `service` (create, update, delete,
restore, system_update), `context` (SaveContext, what a save carries), `input` (field access
and coercion), `unique`, `history`, `batch` (create_many), `reads` (get, list) and `cursor`
(sorting and keyset paging).
"""

from ..security import hash_password
from .context import SaveContext, new_id
from .cursor import encode_cursor, parse_sort
from .input import resolve_default
from .reads import DEFAULT_LIMIT, MAX_LIMIT
from .service import RecordService

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "RecordService",
    "SaveContext",
    "encode_cursor",
    "hash_password",
    "new_id",
    "parse_sort",
    "resolve_default",
]
