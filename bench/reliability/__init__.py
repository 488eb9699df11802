"""Reliability runs: fuzzing, mutated ingest and the other figures of `make reliability`."""
