"""Data: the data-set loaders, grouped splits, packed files, augmentation and the input pipeline
(records, their decoding and the run folder's split.csv are `contract.records` and
`contract.run_folder`)."""
