"""Students: training and prediction for the small task models."""
