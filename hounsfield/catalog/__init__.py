"""The index: the only code that writes patient, study, series, instance and file rows."""
