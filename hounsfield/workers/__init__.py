"""Work-item processors, one per kind, and the runner that claims and runs them."""
