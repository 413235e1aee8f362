// Colour constancy in the browser: contract/colour_constancy.py, step for step.
//
// Shades of Grey, p = 6, on the classifier's input pixels after the resize (and after the crop
// around the lesion), right before they are fed, when the model's card names the step
// (input.colour_constancy; no key: the pixels are fed unchanged). Each channel's light is the
// 6-norm of its values; the channel is multiplied by |e| / (sqrt(3) e_c). The sums of v ** 6
// are exact (BigInt over a 256-bin histogram), the gains are 16-bit fixed point and each pixel
// is (v * gain + 2 ** 15) >> 16 in integers, as in Python, so both give the same bytes
// (tests/demo_server/test_ondevice_contract.py).

export const SHADES_OF_GREY_P6 = "shades_of_grey_p6";
export const STEPS = [SHADES_OF_GREY_P6];
const POWER = 6;
const ONE = 2 ** 16; // a gain of 1.0 in 16-bit fixed point
const MAX_GAIN = 255 * ONE; // already sends every non-zero value to 255
const POWERS = Array.from({ length: 256 }, (_, v) => BigInt(v) ** BigInt(POWER));

export class ColourConstancyError extends Error {}

// The step a model's card asks for (null: feed the pixels unchanged).
export function stepOf(card) {
  const step = (card.input || {}).colour_constancy;
  if (step === undefined || step === null) return null;
  if (!STEPS.includes(step)) {
    throw new ColourConstancyError(
      `input.colour_constancy is ${JSON.stringify(step)}; known: ${STEPS.join(", ")} ` +
      "(or no key for none)");
  }
  return step;
}

// The three fixed-point channel gains of packed RGB pixels (a Uint8Array, 3 bytes a pixel).
export function gains(rgb) {
  const count = rgb.length / 3;
  const histograms = [new Uint32Array(256), new Uint32Array(256), new Uint32Array(256)];
  for (let i = 0; i < rgb.length; i += 3) {
    histograms[0][rgb[i]]++;
    histograms[1][rgb[i + 1]]++;
    histograms[2][rgb[i + 2]]++;
  }
  const estimate = histograms.map((histogram) => {
    let total = 0n;
    for (let v = 0; v < 256; v++) total += BigInt(histogram[v]) * POWERS[v];
    return count ? Math.pow(Number(total) / count, 1 / POWER) : 0;
  });
  const length = Math.sqrt(
    estimate[0] * estimate[0] + estimate[1] * estimate[1] + estimate[2] * estimate[2]);
  if (length === 0) return [ONE, ONE, ONE]; // all black: nothing to correct
  return estimate.map((e) => (e === 0
    ? MAX_GAIN
    : Math.min(MAX_GAIN, Math.floor((length / (Math.sqrt(3) * e)) * ONE + 0.5))));
}

// Packed RGB pixels with their colour cast removed (a new Uint8Array).
export function shadesOfGrey(rgb) {
  const tables = gains(rgb).map((gain) => Uint8Array.from({ length: 256 }, (_, v) =>
    Math.min(255, Math.floor((v * gain + ONE / 2) / ONE))));
  const out = new Uint8Array(rgb.length);
  for (let i = 0; i < rgb.length; i += 3) {
    out[i] = tables[0][rgb[i]];
    out[i + 1] = tables[1][rgb[i + 1]];
    out[i + 2] = tables[2][rgb[i + 2]];
  }
  return out;
}

// A model's input pixels after `step` (stepOf its card); the same array when it is null.
export function applyStep(rgb, step) {
  if (step === null) return rgb;
  if (step !== SHADES_OF_GREY_P6) {
    throw new ColourConstancyError(`unknown colour-constancy step ${JSON.stringify(step)}`);
  }
  return shadesOfGrey(rgb);
}
