"""Training in plain torch (no Ray, no MLflow, no Optuna): data preparation, the engine, prediction."""
