"""Evaluation and statistics: a model on one split of its run, a file's outputs refitted into the
card, plots, reports and predictions (the metric formulas themselves are `contract.metrics`)."""
