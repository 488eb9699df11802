"""The cluster: nodes, heartbeats, singletons and configuration changes seen by every node."""
