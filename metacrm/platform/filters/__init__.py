"""The one JSON filter grammar, compiled both to SQL and to an in-memory predicate.

Every condition in the platform (pools, dedup scopes, workflow and approval
conditions, reports, REST list filters) is a filter. A sweep pushes it down to
SQL; a save tests one record in memory. Both compilers work from the same
parsed, coerced tree and the same per-leaf plan, and every leaf is two-valued
(NULL never leaks out as "unknown"), so the two answers always agree.

The grammar and its checks live in `parse`, the plan both compilers share in `plan`, and the
compilers in `sql` and `predicate`.
"""

from .parse import FieldLike, FilterContext, FilterError, referenced_fields, validate_filter
from .predicate import compile_predicate, matches
from .sql import compile_sql

__all__ = [
    "FieldLike",
    "FilterContext",
    "FilterError",
    "compile_predicate",
    "compile_sql",
    "matches",
    "referenced_fields",
    "validate_filter",
]

