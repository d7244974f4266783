"""Domain services: every lifecycle rule lives here, once. Each takes a ``Session`` first."""
