"""A feature-level simulator: cohorts of tile features with specimen, scanner and label effects,
written as a feature store (`raypath simulate`) or kept in memory for benchmarks and tests.

It skips slides and FMs altogether, so training and sweeps can be exercised at any cohort size.
"""
