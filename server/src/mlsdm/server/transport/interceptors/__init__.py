"""Server interceptors, one policy each, chained in the order of architecture.md."""
