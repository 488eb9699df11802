"""Hounsfield: a scalable, fault-tolerant DICOM image archive."""

__version__ = "0.1.0"
