// From the segmenter's P(lesion) per pixel to the verdict, outline, box and crop, in the
// browser: the JavaScript twin of contract/framing.py, step for step, so that a photo is "one
// lesion", "no lesion" or "several" and outlined the same on the device as on the server
// (tests/demo_server/test_ondevice_framing.py compares the two on the same maps).
//
// 1. findLesions: the mask (P >= threshold) split into 8-connected components; those covering
//    at least min_area_fraction of the mask count, largest first.
// 2. verdict: no_lesion without one; several when the second is at least several_ratio times
//    the largest; otherwise one.
// 3. outline: the main lesion's boundary (Moore-neighbour tracing), at most max_points vertices,
//    in the photo's pixels.
// 4. cropBox: the square around the main lesion's box that the classifier may see instead.
//
// A mask or a probability map is {values, width, height}, row-major; a box is
// {left, top, right, bottom} ([left, right) x [top, bottom)). Pure: no DOM.
import { pythonRound } from "./rounding.mjs";

export const ONE = "one";
export const NO_LESION = "no_lesion";
export const SEVERAL = "several";
// contract.framing.FramingRule's defaults (the segmenter file carries its own numbers).
export const DEFAULT_RULE = Object.freeze({
  threshold: 0.5,
  min_area_fraction: 0.001,
  several_ratio: 0.25,
  margin: 0.5,
  min_side_fraction: 0.2,
  max_points: 64,
});

export function boxJson(box) {
  return {
    left: box.left,
    top: box.top,
    width: box.right - box.left,
    height: box.bottom - box.top,
  };
}

// The box in a grid sx, sy times larger (rounded outwards, inside width x height).
function scaledBox(box, sx, sy, width, height) {
  return {
    left: Math.max(0, Math.floor(box.left * sx)),
    top: Math.max(0, Math.floor(box.top * sy)),
    right: Math.min(width, Math.ceil(box.right * sx)),
    bottom: Math.min(height, Math.ceil(box.bottom * sy)),
  };
}

export function binaryMask(probabilities, threshold = DEFAULT_RULE.threshold) {
  const { values, width, height } = probabilities;
  return { values: Uint8Array.from(values, (p) => (p >= threshold ? 1 : 0)), width, height };
}

// Each row's runs of mask pixels, in row-major order: [row, start, end) as three arrays.
function runs(mask) {
  const { values, width, height } = mask;
  const rows = [];
  const starts = [];
  const ends = [];
  for (let row = 0; row < height; row++) {
    let start = -1;
    for (let col = 0; col <= width; col++) {
      const on = col < width && values[row * width + col] !== 0;
      if (on && start < 0) start = col;
      if (!on && start >= 0) {
        rows.push(row);
        starts.push(start);
        ends.push(col);
        start = -1;
      }
    }
  }
  return { rows, starts, ends };
}

// 8-connected components, from the mask's runs joined by union-find; each component's root is
// its first run, so its seed is its top-most, left-most pixel.
function components(mask) {
  const { rows, starts, ends } = runs(mask);
  const parent = Int32Array.from(rows, (_, i) => i);
  const root = (i) => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]];
      i = parent[i];
    }
    return i;
  };
  const rowFirst = new Int32Array(mask.height + 1); // the first run of each row (and the end)
  for (let row = 0, i = 0; row <= mask.height; row++) {
    while (i < rows.length && rows[i] < row) i++;
    rowFirst[row] = i;
  }
  for (let row = 1; row < mask.height; row++) {
    const [aboveStart, aboveStop] = [rowFirst[row - 1], rowFirst[row]];
    if (aboveStart === aboveStop || rowFirst[row] === rowFirst[row + 1]) continue;
    let j = aboveStart;
    for (let i = rowFirst[row]; i < rowFirst[row + 1]; i++) {
      // runs touch (8-connected) when they overlap once widened by a pixel
      while (j < aboveStop && ends[j] < starts[i]) j++;
      for (let k = j; k < aboveStop && starts[k] <= ends[i]; k++) {
        const [a, b] = [root(i), root(k)];
        if (a !== b) parent[Math.max(a, b)] = Math.min(a, b);
      }
    }
  }
  const found = new Map();
  for (let i = 0; i < rows.length; i++) {
    const first = root(i);
    let lesion = found.get(first);
    if (!lesion) {
      lesion = {
        area: 0,
        box: { left: Infinity, top: Infinity, right: -Infinity, bottom: -Infinity },
        seed: [rows[first], starts[first]],
      };
      found.set(first, lesion);
    }
    lesion.area += ends[i] - starts[i];
    lesion.box.left = Math.min(lesion.box.left, starts[i]);
    lesion.box.top = Math.min(lesion.box.top, rows[i]);
    lesion.box.right = Math.max(lesion.box.right, ends[i]);
    lesion.box.bottom = Math.max(lesion.box.bottom, rows[i] + 1);
  }
  return [...found.values()];
}

// Components of at least min_area_fraction of the mask, largest first (then by seed).
export function findLesions(mask, rule = DEFAULT_RULE) {
  const minArea = Math.max(1, rule.min_area_fraction * mask.values.length);
  return components(mask)
    .filter((lesion) => lesion.area >= minArea)
    .sort((a, b) => b.area - a.area || a.seed[0] - b.seed[0] || a.seed[1] - b.seed[1]);
}

export function verdict(lesions, rule = DEFAULT_RULE) {
  if (!lesions.length) return NO_LESION;
  if (lesions.length > 1 && lesions[1].area >= rule.several_ratio * lesions[0].area) {
    return SEVERAL;
  }
  return ONE;
}

// [row, column] steps to the 8 neighbours, clockwise from east.
const NEIGHBOURS = [[0, 1], [1, 1], [1, 0], [1, -1], [0, -1], [-1, -1], [-1, 0], [-1, 1]];

// The outer boundary of the component holding `seed` (its top-most, left-most pixel), as
// [row, column] pixels in clockwise order (Moore-neighbour tracing, Jacob's stop rule).
export function traceBoundary(mask, seed) {
  const { values, width, height } = mask;
  const inside = (r, c) => r >= 0 && r < height && c >= 0 && c < width &&
    values[r * width + c] !== 0;
  const boundary = [seed];
  let direction = 6; // we arrived from above: start searching from the pixel to the north-west
  let current = seed;
  let firstStep = null; // [row, column, direction] of the first move
  for (let n = 0; n < 4 * values.length; n++) {
    let step = null;
    for (let turn = 0; turn < 8 && !step; turn++) {
      const d = (direction + turn) % 8;
      const [r, c] = [current[0] + NEIGHBOURS[d][0], current[1] + NEIGHBOURS[d][1]];
      if (inside(r, c)) step = [r, c, d];
    }
    if (!step) return boundary; // a single pixel
    const [r, c, d] = step;
    if (firstStep === null) {
      firstStep = step;
    } else if (current[0] === seed[0] && current[1] === seed[1] &&
      r === firstStep[0] && c === firstStep[1] && d === firstStep[2]) {
      boundary.pop();
      return boundary;
    }
    current = [r, c];
    boundary.push(current);
    direction = (d + 6) % 8; // back two: the neighbour after the background we came past
  }
  return boundary;
}

// The lesion's boundary as [x, y] vertices in a width x height image (pixel centres), thinned
// evenly to at most maxPoints (numpy's linspace(0, n, maxPoints, endpoint=False) as ints).
export function outline(mask, lesion, width, height, maxPoints = DEFAULT_RULE.max_points) {
  let pixels = traceBoundary(mask, lesion.seed);
  if (pixels.length > maxPoints) {
    const step = pixels.length / maxPoints;
    pixels = Array.from({ length: maxPoints }, (_, i) => pixels[Math.trunc(i * step)]);
  }
  const [sx, sy] = [width / mask.width, height / mask.height];
  return pixels.map(([r, c]) => [pythonRound((c + 0.5) * sx, 1), pythonRound((r + 0.5) * sy, 1)]);
}

// The square crop around a lesion box (in the photo's pixels): its side 1 + 2 * margin times
// the box's longer side, at least min_side_fraction of the photo's shorter side, moved (not
// shrunk) inside the photo, clipped to the photo when larger.
export function cropBox(lesionBox, width, height, rule = DEFAULT_RULE) {
  const boxWidth = lesionBox.right - lesionBox.left;
  const boxHeight = lesionBox.bottom - lesionBox.top;
  let side = Math.max(boxWidth, boxHeight) * (1 + 2 * rule.margin);
  side = Math.max(side, rule.min_side_fraction * Math.min(width, height));
  const sideX = Math.min(pythonRound(side), width);
  const sideY = Math.min(pythonRound(side), height);
  const centreX = (lesionBox.left + lesionBox.right) / 2;
  const centreY = (lesionBox.top + lesionBox.bottom) / 2;
  const left = pythonRound(Math.min(Math.max(centreX - sideX / 2, 0), width - sideX));
  const top = pythonRound(Math.min(Math.max(centreY - sideY / 2, 0), height - sideY));
  return { left, top, right: left + sideX, bottom: top + sideY };
}

// The verdict, outline, box and crop for a photo of width x height pixels whose segmenter
// output (P(lesion) per pixel, any grid size) is `probabilities`: {verdict, lesions,
// areaFraction, box, outline, crop}, box and crop null without one lesion to frame.
export function frame(probabilities, width, height, rule = DEFAULT_RULE) {
  const mask = binaryMask(probabilities, rule.threshold);
  const lesions = findLesions(mask, rule);
  const decided = verdict(lesions, rule);
  if (!lesions.length) {
    return { verdict: decided, lesions: 0, areaFraction: 0, box: null, outline: [], crop: null };
  }
  const main = lesions[0];
  const box = scaledBox(main.box, width / mask.width, height / mask.height, width, height);
  return {
    verdict: decided,
    lesions: lesions.length,
    areaFraction: main.area / mask.values.length,
    box,
    outline: outline(mask, main, width, height, rule.max_points),
    crop: decided === ONE ? cropBox(box, width, height, rule) : null,
  };
}

// The photo ({rgb, width, height}, packed RGB rows) cut to `box` (the whole photo when null),
// as Pillow's Image.crop.
export function crop(photo, box) {
  if (!box) return photo;
  const width = box.right - box.left;
  const height = box.bottom - box.top;
  const rgb = new Uint8Array(width * height * 3);
  for (let row = 0; row < height; row++) {
    const from = ((box.top + row) * photo.width + box.left) * 3;
    rgb.set(photo.rgb.subarray(from, from + width * 3), row * width * 3);
  }
  return { rgb, width, height };
}
