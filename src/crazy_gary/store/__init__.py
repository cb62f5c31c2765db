"""Durable state: endpoint times, the state history that costs are computed from, the audit log."""

from crazy_gary.store.base import AuditEntry, AuditQuery, PersistedEndpoint, Store, Transition
from crazy_gary.store.sql import SqlStore, database_url

__all__ = ["AuditEntry", "AuditQuery", "PersistedEndpoint", "SqlStore", "Store", "Transition", "database_url"]
