"""`raypath compare`: per FM, the best-tuned baseline against the chosen robust configurations, read
from the sweep's MLflow runs, as tables, plots (Pareto front, ROC per scanner, attention heatmaps)
and a report, with the champion registered.
"""
