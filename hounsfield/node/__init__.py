"""A node: the bootstrap that starts the DIMSE pool, the workers, the scheduler and HTTP."""
