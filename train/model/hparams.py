"""Training configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from contract.card import read_model_card
from contract.colour_constancy import STEPS
from contract.run_folder import MODEL_KERAS, RunFolderError, check_run_folder

BALANCING = ("loss_weights", "sampling", "logit_adjust")


@dataclass
class HParams:
    """Everything that decides what a training run produces (saved in the model card).

    Pretrained backbones train in stages: `head_epochs` with the backbone frozen, then the rest
    of `epochs` with the top `finetune_blocks` blocks unfrozen at `finetune_learning_rate`, then,
    if it pays, `more_epochs` with the top `more_blocks` blocks at `more_learning_rate`.

    The defaults are the shipped members' settings (recipes/shipped.toml, which also names
    them): a bare `python -m train` trains what ships. Tests pass `tiny_cnn` explicitly.
    """

    backbone: str = "efficientnet_lite0"
    image_size: int = 224  # 0: the backbone's default
    epochs: int = 8
    head_epochs: int = 1
    finetune_blocks: int = 8
    batch_size: int = 32
    learning_rate: float = 1e-3
    finetune_learning_rate: float = 3e-4
    more_epochs: int = 0
    more_blocks: int = 12
    more_learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    # >0: validate, keep and continue from a moving average of the weights (not in a head stage)
    ema_momentum: float = 0.0
    dropout: float = 0.2
    label_smoothing: float = 0.05
    # > 0: add this weight x the binary cross-entropy of P(malignant) (train.model.losses)
    malignant_loss_weight: float = 0.0
    # "" or a step of contract.colour_constancy.STEPS on every input image; into the card
    colour_constancy: str = ""
    max_class_weight: float = 20.0
    # "sampling": train.data.pipeline.TrainingBatches; "logit_adjust": train.model.losses
    balance: str = "sampling"
    augment: bool = True
    distill_from: str = ""  # a teacher run (train.model.distill); "" trains on the labels only
    distill_weight: float = 0.5  # the teacher's share of each training target
    distill_temperature: float = 2.0
    # a finished run whose network this one starts from instead of the backbone's pretrained
    # weights (same backbone and colour step): a short fine-tune at another resolution, or longer
    init_from: str = ""
    seed: int = 1337
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    max_images_per_class: int = 0  # 0: all; >0: a small subset (whole groups) for smoke runs
    target_sensitivity: float = 0.95

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# Options a run's saved hparams.json may still hold from earlier versions, each with the value
# that means what this version does; a run saved with another value cannot be resumed.
RETIRED = {"distill_model": ""}  # a teacher as a .tflite beside a run of only its card


def validate(hp: HParams) -> None:
    """ValueError naming the option (as `python -m train` spells it) that cannot be trained."""
    from train.model.backbones import BACKBONES

    if hp.backbone not in BACKBONES:
        raise ValueError(f"--backbone must be one of {', '.join(sorted(BACKBONES))}")
    for name in ("epochs", "batch_size"):
        if getattr(hp, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if hp.image_size and not 32 <= hp.image_size <= 1024:
        raise ValueError("--image-size must be between 32 and 1024 (or 0 for the backbone default)")
    if hp.balance not in BALANCING:
        raise ValueError(f"--balance must be one of {', '.join(BALANCING)}")
    spec = BACKBONES[hp.backbone]
    if spec.set_trainable_top_blocks is not None:
        for name in ("finetune_blocks", "more_blocks"):
            if not 0 <= getattr(hp, name) <= spec.blocks:
                option = "--" + name.replace("_", "-")
                raise ValueError(f"{option} must be between 0 and {spec.blocks} for {spec.name}")
    if hp.more_epochs < 0:
        raise ValueError("--more-epochs must be at least 0")
    if hp.malignant_loss_weight < 0:
        raise ValueError("--malignant-loss-weight must be at least 0")
    if hp.colour_constancy and hp.colour_constancy not in STEPS:
        raise ValueError(f"--colour-constancy must be one of {', '.join(STEPS)} (or none)")
    if not 0.0 <= hp.ema_momentum < 1.0:
        raise ValueError("--ema-momentum must be at least 0 and below 1")
    if not 0.0 <= hp.distill_weight <= 1.0:
        raise ValueError("--distill-weight must be between 0 and 1")
    if hp.distill_temperature <= 0:
        raise ValueError("--distill-temperature must be above 0")
    if hp.distill_from and not Path(hp.distill_from).is_dir():
        raise ValueError(f"--distill-from {hp.distill_from}: no such run folder")
    if hp.init_from:
        check_init_from(hp)
    if hp.more_epochs and not spec.pretrained:
        raise ValueError(
            f"--more-epochs: {hp.backbone} trains in one stage; a third stage "
            "needs a pretrained backbone"
        )


def init_weights(hp: HParams) -> Path | None:
    """The network file `init_from` names (None: start from the backbone's own weights)."""
    return Path(hp.init_from).expanduser() / MODEL_KERAS if hp.init_from else None


def check_init_from(hp: HParams) -> None:
    """ValueError unless `init_from` is a finished run of the same backbone and colour step:
    the weights load by layer, and a network trained on corrected colours needs them."""
    run = init_weights(hp).parent
    try:
        check_run_folder(run)
    except RunFolderError as error:
        message = f"--init-from {hp.init_from}: not a finished run folder ({error})"
        raise ValueError(message) from None
    card = read_model_card(run)
    theirs = {"backbone": card.backbone, "colour_constancy": card.input.colour_constancy or ""}
    for name, value in theirs.items():
        if value != getattr(hp, name):
            option = "--" + name.replace("_", "-")
            raise ValueError(
                f"--init-from {hp.init_from}: trained with {option} {value!r}, "
                f"this run asks for {getattr(hp, name)!r}"
            )
