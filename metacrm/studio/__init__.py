"""The admin studio: forms for metadata kinds, so a business admin never types JSON (issue 15).

Each editor is a feature package of its own (metacrm.studio.fields, metacrm.studio.layouts), named
in setup.FEATURES, that builds the metadata documents the runtime already knows and saves them
through the admin pages' dry-run diff and `apply_change`."""
