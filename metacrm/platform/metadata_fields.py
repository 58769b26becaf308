"""Field definitions for values that are not record fields (timestamps in answers)."""

from ..metadata.model import FieldDef

DATETIME = FieldDef("at", "datetime")
