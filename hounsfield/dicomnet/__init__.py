"""The only code that touches pynetdicom internals: fast paths, connection hand-off, SCU."""
