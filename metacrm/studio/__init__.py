"""The admin studio: forms for metadata kinds, so a business admin never types JSON (issue 15).
Each editor is a feature package of its own (e.g. metacrm.studio.layouts), named in setup.FEATURES."""
