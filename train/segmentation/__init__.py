"""Lesion segmentation: masks from the PAD-UFES-20 cut-outs, the network, its training and
evaluation (issue #19). The crop around a predicted lesion is the contract's (`contract.framing`).
"""
