"""Training in plain torch (no Ray, no MLflow): splits, data loading, the loop."""
