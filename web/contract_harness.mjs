// Runs the page's on-device modules in Node on inputs chosen by the Python side, and prints
// what they give: tests/demo_server/test_ondevice_contract.py compares that with the Python
// contract on the same inputs, so either side drifting fails the test.
//
//   node web/contract_harness.mjs request.json > answer.json
//
// request: {models: [path], gates: [path], screening: [{model, raw, form, unsure_below}],
//           messages, resize: [{width, height, out_width, out_height, pixels}],
//           quantize: [{spec, values}], segmenters: [path],
//           framing: [{output, spec, image_size, width, height, rule}],
//           crop: [{width, height, pixels, box, out_size}], round: [[x, digits]],
//           photo_check: {rule, messages, photos: [{width, height, pixels, area_fraction}]},
//           colour: [{step, pixels}]}
// (pixels: base64 of row-major RGB bytes; output: base64 of a segmenter's raw output tensor)
import { readFile } from "node:fs/promises";
import * as colour from "../demo_server/static/colour.mjs";
import * as framing from "../demo_server/static/framing.mjs";
import * as modelfile from "../demo_server/static/modelfile.mjs";
import * as photocheck from "../demo_server/static/photocheck.mjs";
import { resizeBilinear } from "../demo_server/static/pixels.mjs";
import { pythonRound } from "../demo_server/static/rounding.mjs";
import * as screening from "../demo_server/static/screening.mjs";
import * as segmentation from "../demo_server/static/segmentation.mjs";

const request = JSON.parse(await readFile(process.argv[2], "utf8"));
const bytesOf = async (path) => new Uint8Array(await readFile(path));
const strip = ({ signature, ...spec }) => spec;

const classifiers = {};
for (const path of request.models || []) {
  const meta = await modelfile.readClassifier(await bytesOf(path));
  classifiers[path] = { meta, spec: screening.screeningSpec(meta) };
}

const bytesOf64 = (b64) => new Uint8Array(Buffer.from(b64, "base64"));
const TYPED = { uint8: Uint8Array, int8: Int8Array, float32: Float32Array };

const answer = {
  models: {}, gates: {}, screening: [], resize: [], quantize: [],
  framing_rule: framing.DEFAULT_RULE, segmenters: {}, framing: [], crop: [], round: [],
};
for (const [path, { meta, spec }] of Object.entries(classifiers)) {
  answer.models[path] = {
    name: meta.name,
    version: meta.version,
    labels: meta.labels,
    display_names: meta.displayNames,
    malignant_labels: meta.malignantLabels,
    temperature: spec.temperature,
    threshold: spec.thresholds.anyDomain,
    thresholds_by_domain: spec.thresholds.byDomain,
    answers_thresholds: spec.answers
      ? { any: spec.answers.thresholds.anyDomain, by_domain: spec.answers.thresholds.byDomain }
      : null,
    input: strip(meta.input),
    output: strip(meta.output),
    questions: spec.answers ? Object.keys(spec.answers.questions) : null,
    colour_constancy: meta.colourConstancy,
    pinned_input: strip(modelfile.tensorSpecs(modelfile.pinDynamicInputs(await bytesOf(path)))
      .inputs[0]).shape,
  };
}
for (const path of request.gates || []) {
  const gate = await modelfile.readGate(await bytesOf(path));
  answer.gates[path] = {
    threshold: gate.threshold,
    image_size: gate.imageSize,
    input: strip(gate.input),
    output: strip(gate.output),
  };
}
for (const item of request.screening || []) {
  const { spec } = classifiers[item.model];
  try {
    const effect = screening.answersFor(spec.answers, item.form);
    const domain = screening.requestDomain(spec, item.form);
    answer.screening.push(screening.screen(spec, item.raw, item.unsure_below, request.messages,
      effect, domain));
  } catch (err) {
    if (!(err instanceof screening.AnswerError)) throw err;
    answer.screening.push({ error: err.code, message: err.message });
  }
}
for (const item of request.resize || []) {
  const pixels = bytesOf64(item.pixels);
  const out = resizeBilinear(pixels, item.width, item.height, item.out_width, item.out_height);
  answer.resize.push(Buffer.from(out).toString("base64"));
}
for (const item of request.quantize || []) {
  answer.quantize.push({
    table: modelfile.inputTable(item.spec),
    dequantized: modelfile.dequantizeOutput(item.values, item.spec),
  });
}
for (const path of request.segmenters || []) {
  const segmenter = await segmentation.readSegmenter(await bytesOf(path));
  answer.segmenters[path] = {
    image_size: segmenter.imageSize,
    rule: segmenter.rule,
    crop_before_classifying: segmenter.cropBeforeClassifying,
    input: strip(segmenter.input),
    output: strip(segmenter.output),
  };
}
// The device's steps from the segmenter's output tensor to the `lesion` field (ondevice.mjs).
for (const item of request.framing || []) {
  const raw = new TYPED[item.spec.dtype](bytesOf64(item.output).buffer);
  const map = segmentation.probabilityMap(modelfile.dequantizeOutput(raw, item.spec),
    item.image_size);
  const framed = framing.frame(map, item.width, item.height, item.rule || framing.DEFAULT_RULE);
  answer.framing.push({
    lesion: segmentation.lesionJson(framed, false, request.messages.lesion),
    area_fraction: framed.areaFraction,
    crop: framed.crop && framing.boxJson(framed.crop),
  });
}
for (const item of request.crop || []) {
  const photo = { rgb: bytesOf64(item.pixels), width: item.width, height: item.height };
  const seen = framing.crop(photo, item.box);
  const out = resizeBilinear(seen.rgb, seen.width, seen.height, item.out_size, item.out_size);
  answer.crop.push(Buffer.from(out).toString("base64"));
}
answer.round = (request.round || []).map(([x, digits]) => pythonRound(x, digits));
// A model's input pixels after its card's colour-constancy step (colour.mjs), and the gains.
answer.colour = (request.colour || []).map(({ step, pixels }) => {
  const rgb = bytesOf64(pixels);
  const out = colour.applyStep(rgb, step);
  return { gains: colour.gains(rgb), pixels: Buffer.from(out).toString("base64") };
});
// The photo check of each photo as the page makes it (photocheck.mjs).
const photoCheck = request.photo_check || { photos: [] };
answer.photo_check = photoCheck.photos.map((item) => {
  const photo = { rgb: bytesOf64(item.pixels), width: item.width, height: item.height };
  return photocheck.check(photocheck.measure(photo), item.area_fraction, photoCheck.rule,
    photoCheck.messages);
});
process.stdout.write(JSON.stringify(answer));
