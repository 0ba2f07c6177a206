"""Small helpers every stage shares: atomic writes, figure saving, user paths, thread counts and
the plain-data catalog cache."""
