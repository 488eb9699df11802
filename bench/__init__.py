"""Hounsfield versus Orthanc benchmark: `make bench` (python -m bench.run) runs it."""
