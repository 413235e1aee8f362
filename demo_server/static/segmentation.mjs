// The lesion segmenter step in the browser: the JavaScript twin of contract/segmentation.py
// (reading the file's packed lesion_segmenter.json, its output as a probability map) and of
// the `lesion` field demo_server/segmenter.py adds to the classify answer.
//
// The file is the whole contract, as for the classifier: its input size, the framing rule and
// whether to crop before classifying are read from the .tflite itself, never from the server.
import { DEFAULT_RULE, boxJson } from "./framing.mjs";
import { ModelFileError, jsonFile, readAssociatedFiles, tensorSpecs } from "./modelfile.mjs";
import { pythonRound } from "./rounding.mjs";

export const SEGMENTER_FILE = "lesion_segmenter.json";

function unusable(reason) {
  return new ModelFileError(`the segmenter has no usable ${SEGMENTER_FILE}: ${reason}`);
}

// {imageSize, rule, cropBeforeClassifying, input, output} of a segmenter file
// (contract.segmentation.read_segmenter_info, and the server's checks of its tensors).
export async function readSegmenter(bytes) {
  let info;
  try {
    info = jsonFile(await readAssociatedFiles(bytes), SEGMENTER_FILE);
  } catch (err) {
    throw unusable(err.message);
  }
  const imageSize = Number(info.image_size);
  if (!Number.isInteger(imageSize)) throw unusable("image_size");
  const given = info.rule || {};
  const rule = Object.fromEntries(Object.entries(DEFAULT_RULE).map(
    ([name, value]) => [name, name in given ? Number(given[name]) : value]));
  const { inputs, outputs } = tensorSpecs(bytes);
  const [input, output] = [inputs[0], outputs[0]];
  if (String(input.shape) !== String([1, imageSize, imageSize, 3])) {
    throw new ModelFileError(`input shape [${input.shape}] does not match image_size ${imageSize}`);
  }
  if (output.shape.reduce((a, b) => a * b, 1) !== imageSize * imageSize) {
    throw new ModelFileError(`output shape [${output.shape}] is not 1x${imageSize}x${imageSize}`);
  }
  return {
    imageSize,
    rule,
    cropBeforeClassifying: Boolean(info.crop_before_classifying),
    input,
    output,
  };
}

// The dequantized output of one image (S x S values) as the map framing.mjs reads.
export function probabilityMap(values, imageSize) {
  if (values.length !== imageSize * imageSize) {
    throw new Error(`expected ${imageSize}x${imageSize} outputs, got ${values.length}`);
  }
  return { values: Float64Array.from(values), width: imageSize, height: imageSize };
}

// The classify answer's `lesion` field (demo_server.segmenter.lesion_json); `messages` maps a
// verdict to the server's request for a closer photo.
export function lesionJson(framing, cropped, messages) {
  return {
    verdict: framing.verdict,
    found: framing.lesions,
    area_fraction: pythonRound(framing.areaFraction, 6),
    box: framing.box ? boxJson(framing.box) : null,
    outline: framing.outline,
    message: messages[framing.verdict] ?? null,
    cropped,
  };
}
