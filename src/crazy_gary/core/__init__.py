"""The domain: endpoint states, the manager, auto-sleep. Knows no web framework, store or HF client."""
