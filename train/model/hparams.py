"""Training configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class HParams:
    """Everything that decides what a training run produces (saved in the model card).

    Pretrained backbones train in stages: `head_epochs` with the backbone frozen, then the rest
    of `epochs` with the top `finetune_blocks` blocks unfrozen at `finetune_learning_rate`, then,
    if it pays, `more_epochs` with the top `more_blocks` blocks at `more_learning_rate`.
    """

    backbone: str = "tiny_cnn"
    image_size: int = 0  # 0: the backbone's default
    epochs: int = 10
    head_epochs: int = 2
    finetune_blocks: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-3
    finetune_learning_rate: float = 2e-4
    more_epochs: int = 0
    more_blocks: int = 12
    more_learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    # >0: validate, keep and continue from a moving average of the weights (not in a head stage)
    ema_momentum: float = 0.0
    dropout: float = 0.2
    label_smoothing: float = 0.05
    max_class_weight: float = 20.0
    # "sampling": train.data.pipeline.training_dataset; "logit_adjust": train.model.losses
    balance: str = "loss_weights"
    augment: bool = True
    distill_from: str = ""  # a teacher run (train.model.distill); "" trains on the labels only
    distill_weight: float = 0.5  # the teacher's share of each training target
    distill_temperature: float = 2.0
    seed: int = 1337
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    max_images_per_class: int = 0  # 0: all; >0: a small subset (whole groups) for smoke runs
    target_sensitivity: float = 0.95

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
