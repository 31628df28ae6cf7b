"""Multiple-instance learning on frozen tile features: paired bags, models, robustness losses."""
