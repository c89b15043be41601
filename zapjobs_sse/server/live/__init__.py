"""The live core: changes in from PostgreSQL, events out to the streams."""
