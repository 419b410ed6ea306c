"""The shared core every layer uses: reading and writing files (io), the task and its splits (tasks), params-model
helpers (sections, secrets), and small pure functions (energy, metrics, weights, leakage, memory, devices).

It imports nothing else of distill: a stage depends on this folder whole in dvc.yaml (tests/test_architecture.py keeps
it the lowest layer).
"""
