"""The archive's own DIMSE path: associations served on one thread each, without pynetdicom's
state machine (`association`), for Verification and C-FIND (`query`) and C-STORE (`store`)."""
