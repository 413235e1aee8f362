"""Training stage: data loading, grouped splits, the network, training and evaluation."""
