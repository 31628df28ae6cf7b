"""Task metrics (AUC, balanced accuracy, C-index) and cross-scanner robustness metrics.

Below training in the package graph: training reports them every epoch, sweeps select on them,
and the comparison report tabulates them, all from this one implementation.
"""
