"""Backends: where instances live. The contract is in base.py, the list in registry.py."""
