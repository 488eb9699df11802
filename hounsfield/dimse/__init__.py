"""The DICOM network edge (SCP handlers): decode the request, call one verb, map the status."""
