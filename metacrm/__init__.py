"""metacrm: a metadata-driven CRM platform."""

__version__ = "0.1.0"
