"""The audit trail: who did what to which patient's images, when, and with what outcome."""
