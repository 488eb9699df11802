"""The DICOM network edge on pynetdicom: decode the request, call one verb, map the status."""
