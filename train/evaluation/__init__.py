"""Evaluation and statistics: grouped bootstrap intervals, calibration on val, plots, reports and
predictions (the metric formulas themselves are `contract.metrics`)."""
