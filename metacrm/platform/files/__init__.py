"""Files: `file` fields and the attachments list of objects with `"attachments": true`.

The bytes live in the database (db.file_blob), so embedded and scaled modes need nothing else.
- store.py: the checks (size limit, content sniffed against the declared type, no programs or
  pages), permissions (read the record to download, edit it to add or remove), history, and
  the hooks that keep a file field's value a file of its own record;
- api.py: /api/v1/records/{object}/{id}/files (list, multipart upload), /api/v1/files/{id}
  (download, remove);
- pages.py: the files card on the record page (upload, camera photo, download, remove).
"""

from __future__ import annotations

from pathlib import Path

from ..features import Feature
from . import api, pages, store

__all__ = ["FEATURE", "register", "store"]


def register(runtime) -> None:
    runtime.hooks.register("before_save", store.check_file_fields, name="files.check", order=40)
    runtime.hooks.register("after_save", store.drop_replaced, name="files.replaced", order=90)
    runtime.features.add(FEATURE)


HERE = Path(__file__).resolve().parent
FEATURE = Feature("files", api=api.routes, pages=pages.routes, templates=HERE / "templates",
                  messages=HERE / "messages", openapi=api.openapi_paths, record_panels=pages.record_panels)
