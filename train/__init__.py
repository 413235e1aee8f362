"""Training stage: data, the network, evaluation and statistics, the answers' model, the gate.

From Python, in the spirit of Model Maker's `create(...)`:

    from train import HParams, create
    card = create("runs/NAME", HParams(backbone="efficientnet_lite0"), data=["DATA/ham10000"])

or a whole recipe file (several networks averaged, the answers' model): `train.recipe.run_recipe`.
The command modules here (`python -m train`, `train.recipe`, `train.evaluate`, ...) are thin
layers over the subpackages `data`, `model`, `evaluation`, `answers` and `gate`.
"""

from train.model.hparams import HParams
from train.model.training import create

__all__ = ["HParams", "create"]
