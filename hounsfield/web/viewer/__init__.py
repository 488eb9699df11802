"""OHIF, the viewer the node serves at its root, pointed at the node's own DICOMweb."""
