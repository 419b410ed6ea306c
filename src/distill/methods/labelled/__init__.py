"""The `labelled` reference: method.py and params.py, no stage of its own."""
