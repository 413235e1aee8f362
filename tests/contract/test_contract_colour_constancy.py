"""contract.colour_constancy: Shades of Grey (p = 6) on a model's input pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contract.colour_constancy import (
    MAX_GAIN,
    SHADES_OF_GREY_P6,
    ColourConstancyError,
    apply,
    gains,
    shades_of_grey,
)
from contract.images import model_input

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "sample_images").glob("*.jpg"))


def _scene(seed: int = 0) -> np.ndarray:
    """A lesion-like scene under white light: skin, a darker spot, noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:96, 0:128]
    spot = np.exp(-((x - 60) ** 2 + (y - 50) ** 2) / 400)[..., None]
    skin = np.array([190.0, 150.0, 130.0]) * (1 - 0.6 * spot)
    return np.clip(skin + rng.normal(0, 6, (96, 128, 3)), 0, 255).astype(np.uint8)


def _cast(pixels: np.ndarray, gains_) -> np.ndarray:
    return np.clip(np.round(pixels * np.array(gains_)), 0, 255).astype(np.uint8)


def _reference_gains(pixels: np.ndarray) -> np.ndarray:
    """The ISIC 2018 entries' float formula: e = mean(v ** 6) ** (1 / 6) per channel, gains
    1 / (sqrt(3) e / |e|)."""
    e = np.mean(pixels.reshape(-1, 3).astype(np.float64) ** 6, axis=0) ** (1 / 6)
    return 1 / (np.sqrt(3) * e / np.linalg.norm(e))


@pytest.mark.parametrize("path", SAMPLES[:6], ids=lambda p: p.stem)
def test_gains_are_the_float_formula_in_16_bit_fixed_point(path: Path):
    pixels = model_input(path, 224)
    assert np.abs(gains(pixels) / 65536 - _reference_gains(pixels)).max() <= 0.5 / 65536 + 1e-12


def test_a_colour_cast_is_removed():
    """The same scene under three lights comes out alike but for one overall brightness (the
    corrected light keeps the length of each input's own): within the rounding of the cast
    itself, where uncorrected the channels are tens of levels apart."""
    scene = _scene()
    seen = [_cast(scene, light) for light in [(1.0, 1.0, 1.0), (1.15, 0.95, 0.7), (0.8, 0.95, 1.2)]]
    corrected = [shades_of_grey(s).astype(float) for s in seen]
    scaled = [c * corrected[0].mean() / c.mean() for c in corrected]
    raw = [s.astype(float) * seen[0].mean() / s.mean() for s in seen]
    assert min(np.abs(r - raw[0]).mean() for r in raw[1:]) > 15
    for c in scaled[1:]:
        assert np.abs(c - scaled[0]).mean() < 2.0
    # The corrected light is grey: the three channels' 6-norms agree.
    norms = np.mean(corrected[1].reshape(-1, 3) ** 6, axis=0) ** (1 / 6)
    assert norms.max() - norms.min() < 1.5


def test_brightness_is_kept():
    """The estimated light keeps its Euclidean length: only the cast goes."""
    pixels = _cast(_scene(1), (1.1, 0.9, 0.6))
    e = np.mean(pixels.reshape(-1, 3).astype(float) ** 6, axis=0) ** (1 / 6)
    out = shades_of_grey(pixels)
    f = np.mean(out.reshape(-1, 3).astype(float) ** 6, axis=0) ** (1 / 6)
    assert abs(np.linalg.norm(f) - np.linalg.norm(e)) < 1.0


def test_grey_and_black_images_are_left_alone():
    grey = np.random.default_rng(2).integers(0, 256, (40, 30, 1), dtype=np.uint8).repeat(3, -1)
    assert (gains(grey) == 65536).all()
    assert shades_of_grey(grey).tobytes() == grey.tobytes()
    black = np.zeros((8, 8, 3), np.uint8)
    assert shades_of_grey(black).tobytes() == black.tobytes()


def test_a_missing_channel_stays_black_and_gains_are_capped():
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = np.arange(256, dtype=np.uint8).reshape(16, 16)
    red[0, 0, 1] = 1  # one green pixel: a huge gain, capped; it saturates
    g = gains(red)
    assert g[2] == g[1] == MAX_GAIN
    out = shades_of_grey(red)
    assert (out[..., 2] == 0).all() and out[0, 0, 1] == 255
    assert out.dtype == np.uint8


def test_apply_names_the_step_and_corrects_a_batch_image_by_image():
    batch = np.stack([_cast(_scene(s), (1.2, 1.0, 0.8)) for s in range(3)])
    assert apply(batch, None) is batch
    expected = [shades_of_grey(image) for image in batch]
    out = apply(batch.copy(), SHADES_OF_GREY_P6)
    assert all(np.array_equal(o, e) for o, e in zip(out, expected, strict=True))
    assert np.array_equal(apply(batch[0], SHADES_OF_GREY_P6), expected[0])
    with pytest.raises(ColourConstancyError, match="unknown"):
        apply(batch, "grey_world")
    with pytest.raises(ValueError, match="uint8"):
        gains(batch[0].astype(np.float32))
