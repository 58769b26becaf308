"""The metadata contract: schemas per kind, bundles, validation, the live registry, diffs."""
