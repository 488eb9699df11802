"""The DICOM network edge on pynetdicom: decode the request, call one verb, map the status."""

from hounsfield.dimse import evented as _evented  # noqa: F401  (event-driven reactors)
from hounsfield.dimse import fastrecv as _fastrecv  # noqa: F401  (C-STORE messages from bytes)
from hounsfield.dimse import fastsend as _fastsend  # noqa: F401  (command sets from bytes)
