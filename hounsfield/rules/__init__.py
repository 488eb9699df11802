"""Server rules: conditions on a study and the timed storage actions they make it eligible for."""
