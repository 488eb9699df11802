"""Example deployment files: HAProxy in front of several nodes, and its DICOM check."""
