"""Measure training speed (images per second) on this machine's Keras backend and devices.

    KERAS_BACKEND=jax python -m train.throughput --backbone efficientnet_lite0 --image-size 224
    KERAS_BACKEND=tensorflow python -m train.throughput --backbone efficientnet_lite0

The step measured is the real one: `train.data.pipeline.TrainingBatches` (JPEG recompression
on the CPU) into `train.model.network.training_model` (augmentation on the device, then the
classifier), AdamW, the shipped recipe's fine-tuning stage (the top 8 blocks trainable), on
random pixels. The first steps compile and are not counted. docs/backends.md has the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m train.throughput", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="steps timed (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=2, help="steps not timed (compilation)")
    parser.add_argument(
        "--top-blocks", type=int, default=8, help="trainable top blocks (pretrained backbones)"
    )
    parser.add_argument("--devices", type=int, default=0, help="as python -m train --devices")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from train.data.pipeline import TrainingBatches, one_hot
    from train.model.backbones import get_spec
    from train.model.devices import placement
    from train.model.network import build_classifier, set_trainable_stage, training_model

    keras.utils.set_random_seed(0)
    spec = get_spec(args.backbone)
    where = placement(args.devices)
    steps = args.warmup + args.steps
    n = steps * args.batch_size
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (n, args.image_size, args.image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, 7, n)
    data = TrainingBatches(
        pixels,
        one_hot(labels),
        np.ones(n, np.float32),
        args.batch_size,
        True,
        0,
        multiple_of=where.replicas,
    )
    ends: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if logs is not None:  # make the step finish before reading the clock
                float(logs.get("loss", 0.0))
            ends.append(time.perf_counter())

    with where.scope():
        model = build_classifier(spec, args.image_size, 0.2)
        set_trainable_stage(model, spec, args.top_blocks if spec.pretrained else None)
        trainer = training_model(model, True, 0)
        trainer.compile(
            optimizer=keras.optimizers.AdamW(1e-4),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.05),
            weighted_metrics=["accuracy"],
        )
        started = time.perf_counter()
        trainer.fit(data, epochs=1, verbose=0, callbacks=[Clock()])
    timed = ends[args.warmup - 1 :] if args.warmup else [started, *ends]
    seconds = timed[-1] - timed[0]
    return {
        "backend": where.backend,
        "devices": where.devices,
        "backbone": spec.name,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "steps_timed": args.steps,
        "warmup_seconds": round(ends[args.warmup - 1] - started, 1) if args.warmup else 0.0,
        "seconds_per_step": round(seconds / args.steps, 3),
        "images_per_second": round(args.steps * args.batch_size / seconds, 2),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1:
        print(
            "python -m train.throughput: --steps and --batch-size must be at least 1",
            file=sys.stderr,
        )
        return 2
    result = measure(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['backend']} on {', '.join(result['devices'])}: {result['backbone']} at "
            f"{result['image_size']} px, batch {result['batch_size']}: "
            f"{result['images_per_second']} images/s ({result['seconds_per_step']} s a step; "
            f"{result['warmup_seconds']} s to compile and warm up)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
