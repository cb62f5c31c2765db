"""Replaying traffic under auto-sleep policies: a trace in (traces.py), each policy run through the
live code on a manual clock (runner.py, hf.py) or computed (the oracle, policies.py), the figures out
(session.py)."""
