"""Lifecycle operations on stored studies: migrate, compress, archive copy, reinventory."""
