"""The index database: schema, engine set-up and migrations."""
