"""The network: backbones (a registry), the classifier, losses, hyperparameters, the training
loop, predicting, the temperature and thresholds fitted on val, averaging members,
distillation and the model card."""
