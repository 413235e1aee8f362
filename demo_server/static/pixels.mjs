// From a photo to the model's input pixels in the browser: contract/images.py's three steps.
//
// 1. EXIF orientation: the browser's decoder applies it (createImageBitmap, imageOrientation
//    "from-image"); colour profiles are not applied (colorSpaceConversion "none"), as Pillow
//    ignores them.
// 2. 8-bit RGB, alpha composited on white: the photo is drawn over a white canvas.
// 3. The whole image stretched to height x width with Pillow's bilinear resampling, reproduced
//    here to the bit (`resizeBilinear`): the same filter support, the same fixed-point
//    coefficients and rounding, and the same order of the two passes as Pillow 13 (the version
//    constraints.txt pins), so equal RGB pixels in give equal model input out. Only step 1's
//    decoding can differ from Pillow's (docs/on_device.md).
//
// `resizeBilinear` is pure (Node tests it against Pillow); `decodeToRgb` needs a browser.

const PRECISION_BITS = 32 - 8 - 2;
// Browsers limit a canvas's area (iOS Safari: 16,777,216 pixels); larger photos are read in
// strips (decodeToRgb).
export const MAX_CANVAS_PIXELS = 16_777_216;

// Pillow's precompute_coeffs for the bilinear (triangle) filter, support 1.
function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1.0);
  const support = 1.0 * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const weights = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1.0 / filterScale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss);
      const w = t < 1.0 ? 1.0 - t : 0.0;
      weights[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0.0 ? weights[x] / ww : weights[x];
      // normalize_coeffs_8bpc: to fixed point, rounding half away from zero
      kk[xx * ksize + x] = w < 0
        ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS))
        : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(value) {
  if (value >= (1 << PRECISION_BITS) * 256) return 255;
  if (value <= 0) return 0;
  return Math.floor(value / (1 << PRECISION_BITS));
}

// Fixed-point sums stay exact in doubles: |sum| < 2^53 for 8-bit pixels and 22-bit weights.
function horizontal(src, width, rows, firstRow, outWidth, c) {
  const out = new Uint8Array(outWidth * rows * 3);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < rows; y++) {
    const rowStart = (y + firstRow) * width * 3;
    for (let xx = 0; xx < outWidth; xx++) {
      const xmin = c.bounds[xx * 2];
      const xmax = c.bounds[xx * 2 + 1];
      const k = xx * c.ksize;
      let s0 = half;
      let s1 = half;
      let s2 = half;
      for (let x = 0; x < xmax; x++) {
        const w = c.kk[k + x];
        const p = rowStart + (x + xmin) * 3;
        s0 += src[p] * w;
        s1 += src[p + 1] * w;
        s2 += src[p + 2] * w;
      }
      const o = (y * outWidth + xx) * 3;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return out;
}

function vertical(src, width, outHeight, c, boundsShift) {
  const out = new Uint8Array(width * outHeight * 3);
  const half = 1 << (PRECISION_BITS - 1);
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = c.bounds[yy * 2] - boundsShift;
    const ymax = c.bounds[yy * 2 + 1];
    const k = yy * c.ksize;
    for (let xx = 0; xx < width; xx++) {
      let s0 = half;
      let s1 = half;
      let s2 = half;
      for (let y = 0; y < ymax; y++) {
        const w = c.kk[k + y];
        const p = ((y + ymin) * width + xx) * 3;
        s0 += src[p] * w;
        s1 += src[p + 1] * w;
        s2 += src[p + 2] * w;
      }
      const o = (yy * width + xx) * 3;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return out;
}

// Pillow's Image.resize((outWidth, outHeight), Image.BILINEAR) of an RGB image given as
// width x height x 3 uint8 (row-major): a Uint8Array of outHeight x outWidth x 3.
export function resizeBilinear(rgb, width, height, outWidth, outHeight) {
  if (width === outWidth && height === outHeight) return new Uint8Array(rgb);
  const needHorizontal = width !== outWidth;
  const needVertical = height !== outHeight;
  const ch = coefficients(width, outWidth);
  const cv = coefficients(height, outHeight);
  // Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many
  // pixels as the width (the passes' roundings then differ from horizontal first).
  const shrink = height - outHeight;
  if (shrink > 0 && shrink > (width - outWidth) * 2) {
    const rows = vertical(rgb, width, outHeight, cv, 0);
    return needHorizontal ? horizontal(rows, width, outHeight, 0, outWidth, ch) : rows;
  }
  // The rows the vertical pass reads: the horizontal pass does only those.
  const firstRow = cv.bounds[0];
  const lastRow = cv.bounds[outHeight * 2 - 2] + cv.bounds[outHeight * 2 - 1];
  let pixels = rgb;
  let shift = 0;
  if (needHorizontal) {
    pixels = horizontal(rgb, width, lastRow - firstRow, firstRow, outWidth, ch);
    shift = firstRow;
  }
  if (needVertical) return vertical(pixels, outWidth, outHeight, cv, shift);
  return pixels;
}

// RGBA (canvas ImageData, already composited on white) to packed RGB.
export function rgbaToRgb(rgba) {
  const n = rgba.length / 4;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    rgb[j] = rgba[i * 4];
    rgb[j + 1] = rgba[i * 4 + 1];
    rgb[j + 2] = rgba[i * 4 + 2];
  }
  return rgb;
}

function canvasOf(width, height) {
  const canvas = typeof OffscreenCanvas !== "undefined"
    ? new OffscreenCanvas(width, height)
    : Object.assign(document.createElement("canvas"), { width, height });
  const context = canvas.getContext("2d", { willReadFrequently: true, alpha: false });
  if (!context) throw new Error("This browser cannot draw the photo.");
  return context;
}

// Rows [top, top + rows) of the upright bitmap over a white background (alpha composited on
// white, as contract.images.to_rgb), copied into `rgb` at that row: no resampling, the source
// and the canvas have the same scale.
function drawRows(rgb, bitmap, top, rows) {
  const width = bitmap.width;
  const context = canvasOf(width, rows);
  context.fillStyle = "#fff";
  context.fillRect(0, 0, width, rows);
  context.drawImage(bitmap, 0, top, width, rows, 0, 0, width, rows);
  rgb.set(rgbaToRgb(context.getImageData(0, 0, width, rows).data), top * width * 3);
}

// A photo (Blob) as upright RGB pixels at its full size: {rgb, width, height, strips}. Throws
// when the browser cannot decode it (HEIC on most browsers): the page then offers the server.
// Photos larger than a canvas may be (MAX_CANVAS_PIXELS) are copied out in horizontal strips.
export async function decodeToRgb(blob) {
  const bitmap = await createImageBitmap(blob, {
    imageOrientation: "from-image", colorSpaceConversion: "none", premultiplyAlpha: "none",
  });
  const { width, height } = bitmap;
  const rgb = new Uint8Array(width * height * 3);
  const rows = Math.max(1, Math.floor(MAX_CANVAS_PIXELS / width));
  let strips = 0;
  try {
    for (let top = 0; top < height; top += rows, strips++) {
      drawRows(rgb, bitmap, top, Math.min(rows, height - top));
    }
  } finally {
    bitmap.close();
  }
  return { rgb, width, height, strips };
}
