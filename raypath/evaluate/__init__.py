"""Task metrics (AUC, balanced accuracy, C-index) and cross-scanner robustness metrics."""
