"""DICOMweb (PS3.18) under /dicomweb: QIDO-RS, WADO-RS, STOW-RS, rendered, delete, WADO-URI."""
