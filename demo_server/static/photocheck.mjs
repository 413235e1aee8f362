// The photo check before a result is shown (contract/photo_check.py, step for step): sharpness
// (variance of the Laplacian), exposure (mean grey level, clipped shadows and highlights) on the
// photo stretched to SIZE x SIZE by Pillow's bilinear (pixels.mjs), and the spot's share of the
// frame from the segmenter. The rule's numbers and the messages come from the page's
// configuration (demo_server/pages.py embeds contract.photo_check's); nothing here is a threshold.
// tests/demo_server/test_photo_check_parity.py compares this module with the contract.
import { resizeBilinear } from "./pixels.mjs";

export const SIZE = 256;
export const HIGHLIGHT = 250;
export const SHADOW = 5;
export const REASONS = ["blurry", "dark", "bright", "small"];

// The measures of uint8 RGB pixels already SIZE x SIZE (integer sums, as the contract's).
export function measurePixels(rgb, width = SIZE, height = SIZE) {
  const grey = new Int32Array(width * height);
  let greySum = 0;
  let shadows = 0;
  let highlights = 0;
  for (let i = 0; i < grey.length; i++) {
    const g = Math.floor((299 * rgb[3 * i] + 587 * rgb[3 * i + 1] + 114 * rgb[3 * i + 2] + 500) /
      1000);
    grey[i] = g;
    greySum += g;
    if (g <= SHADOW) shadows++;
    if (g >= HIGHLIGHT) highlights++;
  }
  let sum = 0;
  let sumSq = 0;
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      const i = y * width + x;
      const v = 4 * grey[i] - grey[i - width] - grey[i + width] - grey[i - 1] - grey[i + 1];
      sum += v;
      sumSq += v * v;
    }
  }
  const n = (width - 2) * (height - 2);
  const mean = sum / n;
  const count = width * height;
  return {
    sharpness: sumSq / n - mean * mean,
    brightness: greySum / count,
    shadows: shadows / count,
    highlights: highlights / count,
  };
}

// The measures of a decoded photo ({rgb, width, height}: pixels.mjs decodeToRgb).
export function measure(photo) {
  return measurePixels(resizeBilinear(photo.rgb, photo.width, photo.height, SIZE, SIZE));
}

// The API's `photo_check` field: the reasons to retake (REASONS order) and their messages.
export function check(measures, areaFraction, rule, messages) {
  const failed = {
    blurry: measures.sharpness < rule.min_sharpness,
    dark: measures.brightness < rule.min_brightness || measures.shadows > rule.max_shadows,
    bright: measures.highlights > rule.max_highlights,
    small: areaFraction !== null && areaFraction !== undefined &&
      areaFraction < rule.min_area_fraction,
  };
  const reasons = REASONS.filter((reason) => failed[reason]);
  return {
    retake: reasons.length > 0,
    reasons,
    messages: reasons.map((reason) => messages[reason]),
    ...measures,
    area_fraction: areaFraction ?? null,
  };
}
