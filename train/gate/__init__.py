"""The "not a skin-lesion photo" gate: Mahalanobis detectors on pretrained features."""
