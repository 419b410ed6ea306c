"""GOLD: method.py (what the shared stages see), algorithm.py (pure functions), start.py and stages.py (its stages),
params.py (its params.yaml section), cli.py (its commands)."""
