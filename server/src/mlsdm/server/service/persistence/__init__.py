"""Durable tenant state: event log and snapshots."""
