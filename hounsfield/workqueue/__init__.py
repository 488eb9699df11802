"""The WorkQueue: durable background work claimed under leases by every node."""
