"""Owner forwarding: a call for a tenant leased to another pod goes there."""
