"""The network: backbones (a registry), the classifier, losses, hyperparameters, the training
loop, distillation and the model card."""
