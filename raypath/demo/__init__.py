"""`raypath demo`: the whole pipeline on a synthetic multi-scanner cohort, one stage after another."""
