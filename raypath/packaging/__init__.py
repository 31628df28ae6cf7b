"""Trained MIL models as MLflow pyfunc models: the spec that travels with the weights, the pyfunc
that predicts scores and attention from one slide's tile features, packaging and loading.

Between training and sweeping in the package graph: sweeps log these models, compare registers
them, and `raypath predict` applies them to new slides.
"""
