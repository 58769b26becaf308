"""The admin studio: forms for metadata kinds, so a business admin never types JSON."""
