"""Tenants: one engine per tenant, kept in a store, cached in memory.

cache (LRU with pins) <- registry (load, evict, delete, leases) -> session
(orders one tenant's operations: record, commit, apply) -> mlsdm.engine;
below them the TenantStore port (service/store) and its adapters.
"""
