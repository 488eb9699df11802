"""The HTTP edge: health, metrics (and later DICOMweb and the admin pages)."""
