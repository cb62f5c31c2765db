"""The domain: endpoint states, the manager, auto-sleep. Knows no web framework, store, HF client,
settings or simulator (tests/test_layering.py checks it)."""
