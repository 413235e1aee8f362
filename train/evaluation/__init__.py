"""Evaluation and statistics: metrics, grouped bootstrap intervals, calibration on val, plots,
reports and predictions."""
