"""The archive's verbs: store, query, retrieve, commit (no network code here)."""
