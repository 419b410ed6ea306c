"""The algorithms, as pure functions: no files, no LLM, no MLflow. Each one is unit-tested alone."""
