"""The answers' model: fitting the per-domain regressions and their strength on a run."""
