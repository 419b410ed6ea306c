"""One module per DVC stage: read the inputs named in dvc.yaml, call library code, write outputs atomically."""
