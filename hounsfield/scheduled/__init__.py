"""The service schedule: services that decide what work is due and enqueue it."""
