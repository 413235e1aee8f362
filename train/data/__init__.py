"""Data: the data-set loaders, grouped splits, decoding, augmentation and the input pipeline."""
