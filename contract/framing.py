"""From a segmenter's lesion mask to what the app says and shows: the lesions found, the outline
of the one lesion, and the square crop around it (numpy and Pillow only).

Training, evaluation and serving all call these functions, so a photo is judged "one lesion",
"no lesion" or "several" and cropped the same way everywhere:

1. `find_lesions`: the mask (P(lesion) >= threshold) split into 8-connected components; those
   covering at least `min_area_fraction` of the image count as lesions, largest first.
2. `verdict`: `no_lesion` when none counts; `several` when a second lesion is at least
   `several_ratio` times the largest's area (two spots of similar size: which one is asked
   about?); otherwise `one` (smaller specks beside a clear main lesion are ignored).
3. `outline`: the main lesion's boundary as a polygon (Moore-neighbour tracing, at most
   `max_points` vertices), in the coordinates of the photo as uploaded (after EXIF rotation).
4. `crop_box`: a square around the main lesion's bounding box, its side `1 + 2 * margin` times
   the box's longer side and at least `min_side_fraction` of the photo's shorter side, moved
   (not shrunk) to lie inside the photo, and clipped to the photo when larger than it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

ONE, NO_LESION, SEVERAL = "one", "no_lesion", "several"
VERDICTS = (ONE, NO_LESION, SEVERAL)


@dataclass(frozen=True)
class FramingRule:
    """The numbers of the rule; the segmenter file carries its own (contract.segmentation)."""

    threshold: float = 0.5
    min_area_fraction: float = 0.001
    several_ratio: float = 0.25
    margin: float = 0.5
    min_side_fraction: float = 0.2
    max_points: int = 64


@dataclass(frozen=True)
class Box:
    """Pixel box [left, right) x [top, bottom)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def as_json(self) -> dict[str, int]:
        return {"left": self.left, "top": self.top, "width": self.width, "height": self.height}

    def scaled(self, sx: float, sy: float, width: int, height: int) -> Box:
        """The box in a grid sx, sy times larger (rounded outwards, inside width x height)."""
        return Box(
            max(0, int(np.floor(self.left * sx))),
            max(0, int(np.floor(self.top * sy))),
            min(width, int(np.ceil(self.right * sx))),
            min(height, int(np.ceil(self.bottom * sy))),
        )


@dataclass(frozen=True)
class Lesion:
    """One connected component of the mask, in mask pixels."""

    area: int
    box: Box
    seed: tuple[int, int]  # (row, column) of a pixel inside it: where its outline starts


def binary_mask(probabilities: np.ndarray, threshold: float = FramingRule.threshold) -> np.ndarray:
    """P(lesion) per pixel (H, W) to a boolean mask."""
    return np.asarray(probabilities).reshape(np.shape(probabilities)[:2]) >= threshold


def find_lesions(mask: np.ndarray, rule: FramingRule = FramingRule()) -> list[Lesion]:
    """Components of at least `min_area_fraction` of the mask, largest first (8-connected)."""
    min_area = max(1, rule.min_area_fraction * mask.size)
    lesions = [lesion for lesion in _components(mask) if lesion.area >= min_area]
    return sorted(lesions, key=lambda lesion: (-lesion.area, lesion.seed))


def _components(mask: np.ndarray) -> list[Lesion]:
    """8-connected components, from the mask's horizontal runs joined by union-find."""
    mask = np.asarray(mask, dtype=bool)
    height, width = mask.shape
    padded = np.zeros((height, width + 2), np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)
    rows, starts = np.nonzero(steps == 1)
    _, ends = np.nonzero(steps == -1)  # row-major order: the k-th end closes the k-th start
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    row_first = np.searchsorted(rows, np.arange(height + 1))
    for row in range(1, height):
        above = range(row_first[row - 1], row_first[row])
        here = range(row_first[row], row_first[row + 1])
        if not above or not here:
            continue
        j = above.start
        for i in here:  # runs touch (8-connected) when they overlap once widened by a pixel
            while j < above.stop and ends[j] < starts[i]:
                j += 1
            k = j
            while k < above.stop and starts[k] <= ends[i]:
                a, b = root(i), root(k)
                if a != b:
                    parent[max(a, b)] = min(a, b)
                k += 1
    found: dict[int, list[int]] = {}
    for i in range(len(rows)):
        found.setdefault(root(i), []).append(i)
    lesions = []
    for first, members in found.items():  # the root is the component's first run
        index = np.array(members)
        box = Box(
            int(starts[index].min()),
            int(rows[index].min()),
            int(ends[index].max()),
            int(rows[index].max()) + 1,
        )
        area = int((ends[index] - starts[index]).sum())
        lesions.append(Lesion(area, box, (int(rows[first]), int(starts[first]))))
    return lesions


def verdict(lesions: list[Lesion], rule: FramingRule = FramingRule()) -> str:
    if not lesions:
        return NO_LESION
    if len(lesions) > 1 and lesions[1].area >= rule.several_ratio * lesions[0].area:
        return SEVERAL
    return ONE


_NEIGHBOURS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))  # clockwise


def trace_boundary(mask: np.ndarray, seed: tuple[int, int]) -> list[tuple[int, int]]:
    """The outer boundary of the component holding `seed` (its top-most, left-most pixel), as
    (row, column) pixels in clockwise order (Moore-neighbour tracing, Jacob's stop rule)."""
    height, width = mask.shape

    def inside(r: int, c: int) -> bool:
        return 0 <= r < height and 0 <= c < width and bool(mask[r, c])

    start = seed
    boundary = [start]
    direction = 6  # we arrived from above: start searching from the pixel to the north-west
    current = start
    first_step: tuple[tuple[int, int], int] | None = None
    for _ in range(4 * mask.size):
        for turn in range(8):
            d = (direction + turn) % 8
            r, c = current[0] + _NEIGHBOURS[d][0], current[1] + _NEIGHBOURS[d][1]
            if inside(r, c):
                break
        else:
            return boundary  # a single pixel
        step = ((r, c), d)
        if first_step is None:
            first_step = step
        elif current == start and step == first_step:
            boundary.pop()
            return boundary
        current = (r, c)
        boundary.append(current)
        direction = (d + 6) % 8  # back two: the neighbour after the background we came past
    return boundary


def outline(
    mask: np.ndarray, lesion: Lesion, width: int, height: int, max_points: int = 64
) -> list[list[float]]:
    """The lesion's boundary as [x, y] vertices in a width x height image (pixel centres),
    thinned evenly to at most `max_points`."""
    pixels = trace_boundary(mask, lesion.seed)
    if len(pixels) > max_points:
        keep = np.linspace(0, len(pixels), max_points, endpoint=False).astype(int)
        pixels = [pixels[i] for i in keep]
    sx, sy = width / mask.shape[1], height / mask.shape[0]
    return [[round((c + 0.5) * sx, 1), round((r + 0.5) * sy, 1)] for r, c in pixels]


def crop_box(lesion_box: Box, width: int, height: int, rule: FramingRule = FramingRule()) -> Box:
    """The square crop around a lesion box (in the photo's pixels); see the module docstring."""
    side = max(lesion_box.width, lesion_box.height) * (1 + 2 * rule.margin)
    side = max(side, rule.min_side_fraction * min(width, height))
    side_x, side_y = min(int(round(side)), width), min(int(round(side)), height)
    centre_x = (lesion_box.left + lesion_box.right) / 2
    centre_y = (lesion_box.top + lesion_box.bottom) / 2
    left = int(round(min(max(centre_x - side_x / 2, 0), width - side_x)))
    top = int(round(min(max(centre_y - side_y / 2, 0), height - side_y)))
    return Box(left, top, left + side_x, top + side_y)


@dataclass(frozen=True)
class Framing:
    """What the segmenter's mask says about one photo, in the photo's own pixels."""

    verdict: str
    lesions: int
    area_fraction: float  # the main lesion's share of the photo (0 without one)
    box: Box | None  # the main lesion's bounding box
    outline: list[list[float]]  # its boundary polygon, [x, y] vertices
    crop: Box | None  # the square crop around it; None unless the verdict is one


def frame(
    probabilities: np.ndarray, width: int, height: int, rule: FramingRule = FramingRule()
) -> Framing:
    """The verdict, outline, box and crop for a photo of width x height pixels whose segmenter
    output (P(lesion) per pixel, any grid size) is `probabilities`."""
    mask = binary_mask(probabilities, rule.threshold)
    lesions = find_lesions(mask, rule)
    decided = verdict(lesions, rule)
    if not lesions:
        return Framing(decided, 0, 0.0, None, [], None)
    main = lesions[0]
    sx, sy = width / mask.shape[1], height / mask.shape[0]
    box = main.box.scaled(sx, sy, width, height)
    return Framing(
        verdict=decided,
        lesions=len(lesions),
        area_fraction=main.area / mask.size,
        box=box,
        outline=outline(mask, main, width, height, rule.max_points),
        crop=crop_box(box, width, height, rule) if decided == ONE else None,
    )


def crop(image: Image.Image, box: Box | None) -> Image.Image:
    """The photo cut to `box` (the whole photo when None)."""
    if box is None:
        return image
    return image.crop((box.left, box.top, box.right, box.bottom))
