"""LLKD: method.py (what the shared stages see), algorithm.py (pure functions), stages.py (its stage), params.py (its
params.yaml section), cli.py (its command)."""
