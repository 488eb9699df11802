"""Fuzzing and mutated-ingest tests: every malformed input gets a defined refusal."""
