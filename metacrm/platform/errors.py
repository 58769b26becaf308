"""The platform's errors, each with a stable code and an HTTP status.

One place (api/errors.py) turns these into JSON answers; the web UI and CLI read
the same attributes.
"""

from __future__ import annotations

from typing import Any


class CrmError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, fields: dict | None = None, **extra: Any):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.fields = fields or {}
        self.extra = extra

    def to_dict(self) -> dict:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        body.update(self.extra)
        return body


class ValidationFailed(CrmError):
    status = 400
    code = "validation_failed"


class BadRequest(CrmError):
    status = 400
    code = "bad_request"


class Unauthorized(CrmError):
    status = 401
    code = "unauthorized"


class Forbidden(CrmError):
    status = 403
    code = "forbidden"


class NotFound(CrmError):
    status = 404
    code = "not_found"


class Conflict(CrmError):
    status = 409
    code = "conflict"


class StaleVersion(Conflict):
    code = "stale_version"


class DuplicateBlocked(Conflict):
    code = "duplicate"


class Locked(CrmError):
    status = 423
    code = "record_locked"


class MetadataInvalid(CrmError):
    status = 400
    code = "metadata_invalid"

    def __init__(self, issues: list, message: str | None = None):
        self.issues = issues
        text = message or (f"{len(issues)} problem(s) in the metadata: " + "; ".join(str(i) for i in issues[:5]))
        super().__init__(text, issues=[i.as_dict() for i in issues])


class PluginFailed(CrmError):
    """A plugin (or an action it registered) raised something that is not a CrmError: a bug on
    the server side, so 500.

    The caller's request was fine and retrying it unchanged will fail again; a 4xx would
    tell the client to fix its input, which it cannot. The message names the plugin and
    the hook so the admin knows whom to call, and the save was rolled back.
    """

    status = 500
    code = "plugin_error"


class OwnerRefused(CrmError):
    """The owner a write would give a record is not allowed: a user whose roles may not hold
    the object (they could not read or edit what they own), or no owner at all where the caller
    may not take a record out of the hierarchy. 422: the request is well formed, its owner is not."""

    status = 422
    code = "owner_not_eligible"


class OutOfRange(CrmError):
    """A computed value (a formula's result, a rollup's sum) that would not fit its field: the
    write that caused it is refused with the field named, nothing is saved. 422: the request is
    well formed, the figure it leads to cannot be stored."""

    status = 422
    code = "value_out_of_range"
