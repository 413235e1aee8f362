"""The 8 flips and right-angle rotations of a square image: a test-time ensemble.

A skin lesion has no up or left, so a model's outputs averaged over these views are a cheap
ensemble. One list says which views and in what order; `python -m train.evaluate --flips N`
averages them outside a file (`flipped_views`, numpy) and `python -m export --flips N` folds
the same views into the file's graph (export.flips), so a client gets them without knowing.
"""

from __future__ import annotations

import argparse
from typing import NamedTuple

import numpy as np


class View(NamedTuple):
    """One view of an (N, H, W, C) batch: rows reversed, then columns, then H and W swapped."""

    upside_down: bool
    mirrored: bool
    transposed: bool


# The image as it is; mirrored; both flipped upside down; all four transposed. The first 2 or
# 4 are the cheaper averages (--flips 2, 4).
VIEWS = tuple(View(u, m, t) for t in (False, True) for u in (False, True) for m in (False, True))
FLIPS = (1, 2, 4, 8)


def check_flips(flips: int) -> None:
    if flips not in FLIPS:
        raise ValueError(f"flips must be one of {FLIPS}, got {flips}")


def flipped_views(pixels: np.ndarray, flips: int) -> list[np.ndarray]:
    """The first `flips` of `VIEWS` of (N, H, W, C) images. Numpy views, not copies: a split's
    8 copies would take 8 times its pixels' memory."""
    check_flips(flips)
    return [view_of(pixels, view) for view in VIEWS[:flips]]


def view_of(pixels, view: View, flip=np.flip, transpose=np.transpose):
    """One view of an (N, H, W, C) batch, with the array library's `flip(x, axis)` and
    `transpose(x, axes)`: numpy's here, keras.ops' where the export folds views into a graph
    (export.flips), so both apply each view the same way."""
    if view.upside_down:
        pixels = flip(pixels, axis=1)
    if view.mirrored:
        pixels = flip(pixels, axis=2)
    return transpose(pixels, (0, 2, 1, 3)) if view.transposed else pixels


def add_flips_option(parser: argparse.ArgumentParser, where: str) -> None:
    """`--flips N`, for every command that averages views; `where` says where they average."""
    parser.add_argument(
        "--flips",
        type=int,
        choices=FLIPS,
        default=1,
        help="average each image's outputs over this many flips and right-angle rotations "
        f"({where})",
    )
