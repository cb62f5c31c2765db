"""Replaying traffic under auto-sleep policies: traces in, and (to come) the figures of each policy."""
