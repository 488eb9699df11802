"""Peers: remote devices, forwarding, the virtual AE and reconciliation."""
