"""Authentication (API keys, JWT, mTLS) and role-based access control."""
