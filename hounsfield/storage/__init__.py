"""Where object files live: filesystems, path layout, atomic writes."""
