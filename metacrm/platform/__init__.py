"""The generic runtime: storage, the record service, filters, security, API, web, CLI."""
