"""Training stage: taxonomy, data loading, grouped splits, the network, training and evaluation."""
