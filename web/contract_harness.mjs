// Runs the page's on-device modules in Node on inputs chosen by the Python side, and prints
// what they give: tests/demo_server/test_ondevice_contract.py compares that with the Python
// contract on the same inputs, so either side drifting fails the test.
//
//   node web/contract_harness.mjs request.json > answer.json
//
// request: {models: [path], gates: [path], screening: [{model, raw, form, unsure_below}],
//           messages, resize: [{width, height, out_width, out_height, pixels}],
//           quantize: [{spec, values}]}  (pixels: base64 of row-major RGB bytes)
import { readFile } from "node:fs/promises";
import * as modelfile from "../demo_server/static/modelfile.mjs";
import { resizeBilinear } from "../demo_server/static/pixels.mjs";
import * as screening from "../demo_server/static/screening.mjs";

const request = JSON.parse(await readFile(process.argv[2], "utf8"));
const bytesOf = async (path) => new Uint8Array(await readFile(path));
const strip = ({ signature, ...spec }) => spec;

const classifiers = {};
for (const path of request.models || []) {
  const meta = await modelfile.readClassifier(await bytesOf(path));
  classifiers[path] = { meta, spec: screening.screeningSpec(meta) };
}

const answer = { models: {}, gates: {}, screening: [], resize: [], quantize: [] };
for (const [path, { meta, spec }] of Object.entries(classifiers)) {
  answer.models[path] = {
    name: meta.name,
    version: meta.version,
    labels: meta.labels,
    display_names: meta.displayNames,
    malignant_labels: meta.malignantLabels,
    temperature: spec.temperature,
    threshold: spec.threshold,
    input: strip(meta.input),
    output: strip(meta.output),
    questions: spec.answers ? Object.keys(spec.answers.questions) : null,
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
    answer.screening.push(screening.screen(spec, item.raw, item.unsure_below, request.messages,
      effect));
  } catch (err) {
    if (!(err instanceof screening.AnswerError)) throw err;
    answer.screening.push({ error: err.code, message: err.message });
  }
}
for (const item of request.resize || []) {
  const pixels = new Uint8Array(Buffer.from(item.pixels, "base64"));
  const out = resizeBilinear(pixels, item.width, item.height, item.out_width, item.out_height);
  answer.resize.push(Buffer.from(out).toString("base64"));
}
for (const item of request.quantize || []) {
  answer.quantize.push({
    table: modelfile.inputTable(item.spec),
    dequantized: modelfile.dequantizeOutput(item.values, item.spec),
  });
}
process.stdout.write(JSON.stringify(answer));
