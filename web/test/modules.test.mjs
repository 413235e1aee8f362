// Node's own tests of the page's on-device modules (npm test --prefix web). The comparison with
// the Python contract on shared inputs is tests/demo_server/test_ondevice_contract.py.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import * as modelfile from "../../demo_server/static/modelfile.mjs";
import { resizeBilinear } from "../../demo_server/static/pixels.mjs";
import * as screening from "../../demo_server/static/screening.mjs";

const root = new URL("../../", import.meta.url);
const read = async (path) => new Uint8Array(await readFile(new URL(path, root)));
const SHIPPED = "models/skin_lesion_int8_mixed.tflite";
const GATE = "models/lesion_gate.tflite";
const shipped = existsSync(new URL(SHIPPED, root));

test("the tiny test model's packed files and tensors", async () => {
  const meta = await modelfile.readClassifier(await read("tests/fixtures/tiny_uint8.tflite"));
  assert.deepEqual(meta.labels, ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]);
  assert.equal(meta.card.name, "tiny-test-model");
  assert.equal(meta.input.dtype, "uint8");
  assert.equal(meta.output.shape.at(-1), 7);
  assert.equal(screening.screeningSpec(meta).answers, null);
});

test("the shipped classifier and gate", { skip: !shipped && "models/ is not here" }, async () => {
  const bytes = await read(SHIPPED);
  const meta = await modelfile.readClassifier(bytes);
  const { height, width } = meta.card.input; // the tensor is the size the card states
  assert.ok(height >= 224 && width >= 224);
  assert.deepEqual(meta.input.shape, [1, height, width, 3]);
  assert.deepEqual(meta.input.signature.values, [-1, height, width, 3]); // a dynamic batch
  const pinned = modelfile.tensorSpecs(modelfile.pinDynamicInputs(bytes)).inputs[0];
  assert.deepEqual(pinned.signature.values, [1, height, width, 3]);
  assert.equal(bytes[0], modelfile.pinDynamicInputs(bytes)[0]); // the rest is the same
  const spec = screening.screeningSpec(meta);
  const threshold = spec.thresholds.anyDomain;
  assert.ok(spec.temperature > 0 && threshold > 0 && threshold < 1);
  assert.ok(spec.answers && spec.answers.defaultDomain === "phone");
  const gate = await modelfile.readGate(await read(GATE));
  assert.equal(gate.imageSize, 128);
  assert.equal(gate.input.dtype, "float32");
});

test("a stated kind of photo gets its own threshold, an unstated one the lowest", () => {
  const thresholds = screening.triageThresholds({
    malignant_threshold: 0.05,
    by_domain: { dermoscopic: { own_threshold: 0.15 }, phone: { own_threshold: 0.05 } },
  });
  assert.equal(screening.thresholdFor(thresholds, "dermoscopic"), 0.15);
  assert.equal(screening.thresholdFor(thresholds, null), 0.05);
  assert.equal(screening.thresholdFor(thresholds, "toString"), 0.05); // not the prototype's
  assert.throws(() => screening.triageThresholds({ by_domain: { phone: 0.2 } }), /own_threshold/);
  assert.equal(screening.statedDomain({ domain: "phone" }, screening.DOMAINS), "phone");
  assert.equal(screening.statedDomain({}, screening.DOMAINS), null);
  assert.throws(() => screening.statedDomain({ domain: "x" }, screening.DOMAINS),
    screening.AnswerError);
});

test("not a TFLite file", async () => {
  await assert.rejects(modelfile.readAssociatedFiles(new Uint8Array(16)), modelfile.ModelFileError);
});

test("the resize keeps a same-size image and a flat colour", () => {
  const flat = new Uint8Array(40 * 30 * 3).fill(77);
  assert.deepEqual(resizeBilinear(flat, 40, 30, 40, 30), flat);
  const out = resizeBilinear(flat, 40, 30, 224, 224);
  assert.equal(out.length, 224 * 224 * 3);
  assert.ok(out.every((v) => v === 77));
});

test("calibration: probabilities sum to one; no answer used is the photo-only result", async () => {
  const meta = await modelfile.readClassifier(
    await read("tests/fixtures/tiny_uint8_answers.tflite"));
  const spec = screening.screeningSpec(meta);
  const raw = [0.1, 0.2, 0.05, 0, 0.3, 0.3, 0.05];
  const messages = { triage: { see_dermatologist: "refer", low_concern: "watch" }, unsure: "?" };
  const photo = screening.screen(spec, raw, 0.5, messages, screening.answersFor(spec.answers, {}));
  const sum = photo.raw.probabilities.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - 1) < 1e-12);
  assert.equal(photo.calibration.source, "photo_only");
  // The dermatoscope's model does not ask about itching: the answer changes nothing.
  const unused = screening.screen(spec, raw, 0.5, messages,
    screening.answersFor(spec.answers, { itch: "yes", domain: "dermoscopic" }));
  assert.deepEqual(unused.raw.probabilities, photo.raw.probabilities);
  assert.deepEqual(unused.answers.not_used, ["itch"]);
  assert.throws(() => screening.answersFor(spec.answers, { age: "200" }),
    (err) => err.code === "invalid_answer");
});
