"""Sweeps: Ray Tune + Optuna + ASHA over packs of configurations, MLflow tracking, selection."""
