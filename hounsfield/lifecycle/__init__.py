"""Lifecycle operations on stored studies: migrate, compress, copy, mirror, reinventory, verify."""
