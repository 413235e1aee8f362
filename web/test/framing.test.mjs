// Node's own tests of the segmenter step (framing.mjs, segmentation.mjs, rounding.mjs). Their
// agreement with contract/framing.py on shared maps is tests/demo_server/test_ondevice_framing.py.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import * as framing from "../../demo_server/static/framing.mjs";
import { ModelFileError } from "../../demo_server/static/modelfile.mjs";
import { pythonRound } from "../../demo_server/static/rounding.mjs";
import * as segmentation from "../../demo_server/static/segmentation.mjs";

const root = new URL("../../", import.meta.url);
const read = async (path) => new Uint8Array(await readFile(new URL(path, root)));
const SHIPPED = "models/lesion_segmenter.tflite";

// A size x size probability map: 1 where inside(row, column), else 0.
function map(size, inside) {
  const values = new Float64Array(size * size);
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) values[r * size + c] = inside(r, c) ? 1 : 0;
  }
  return { values, width: size, height: size };
}

test("the tiny segmenter files say their size, rule and crop", async () => {
  const plain = await segmentation.readSegmenter(
    await read("tests/fixtures/segmenter/tiny_segmenter.tflite"));
  assert.equal(plain.imageSize, 64);
  assert.deepEqual(plain.rule, framing.DEFAULT_RULE);
  assert.equal(plain.cropBeforeClassifying, false);
  assert.deepEqual(plain.output.shape, [1, 64, 64, 1]);
  const crop = await segmentation.readSegmenter(
    await read("tests/fixtures/segmenter/tiny_segmenter_crop.tflite"));
  assert.equal(crop.cropBeforeClassifying, true);
});

test("the shipped segmenter", { skip: !existsSync(new URL(SHIPPED, root)) && "no models/" },
  async () => {
    const segmenter = await segmentation.readSegmenter(await read(SHIPPED));
    // What export wrote beside the file (models/lesion_segmenter_report.json) says the same.
    const report = JSON.parse(await readFile(new URL("models/lesion_segmenter_report.json", root)));
    assert.equal(segmenter.imageSize, report.image_size);
    assert.deepEqual(segmenter.output.shape, [1, report.image_size, report.image_size, 1]);
    assert.equal(segmenter.input.dtype, "uint8");
  });

test("a classifier is not a segmenter", async () => {
  await assert.rejects(segmentation.readSegmenter(await read("tests/fixtures/tiny_uint8.tflite")),
    (err) => err instanceof ModelFileError && /lesion_segmenter\.json/.test(err.message));
});

test("one spot: its box and outline in the photo's pixels, and the crop around it", () => {
  const spot = map(64, (r, c) => r >= 10 && r < 20 && c >= 30 && c < 50);
  const found = framing.frame(spot, 640, 320);
  assert.equal(found.verdict, framing.ONE);
  assert.equal(found.lesions, 1);
  assert.deepEqual(found.box, { left: 300, top: 50, right: 500, bottom: 100 });
  assert.equal(found.areaFraction, 200 / 4096);
  assert.deepEqual(found.outline[0], [305, 52.5]); // the top-left pixel's centre, first
  assert.equal(found.outline.length, 56); // every boundary pixel of the 20 x 10 rectangle
  assert.deepEqual(found.crop, { left: 200, top: 0, right: 600, bottom: 320 }); // clipped
});

test("no spot, several spots, and a speck beside one spot", () => {
  assert.equal(framing.frame(map(64, () => false), 100, 100).verdict, framing.NO_LESION);
  const two = map(64, (r, c) => (r < 8 && c < 8) || (r > 50 && c > 50 && r < 57 && c < 57));
  const several = framing.frame(two, 64, 64);
  assert.equal(several.verdict, framing.SEVERAL);
  assert.equal(several.crop, null);
  const speck = map(64, (r, c) => (r < 20 && c < 20) || (r > 60 && c > 60));
  const one = framing.frame(speck, 64, 64);
  assert.deepEqual([one.verdict, one.lesions], [framing.ONE, 2]);
});

test("a ring is one spot: the outer boundary, the hole not counted", () => {
  const d = (r, c) => Math.hypot(r - 32, c - 32);
  const ring = map(64, (r, c) => d(r, c) <= 20 && d(r, c) > 10);
  const found = framing.frame(ring, 64, 64);
  assert.equal(found.lesions, 1);
  const inside = ring.values.reduce((a, b) => a + b, 0);
  assert.equal(found.areaFraction, inside / 4096);
  const radii = found.outline.map(([x, y]) => Math.hypot(x - 32.5, y - 32.5));
  assert.ok(radii.every((r) => r > 18 && r < 22), "every vertex on the outer edge");
});

test("corners join (8-connected); a single pixel is its own outline", () => {
  const diagonal = map(16, (r, c) => r === c);
  assert.equal(framing.findLesions(framing.binaryMask(diagonal)).length, 1);
  const dot = framing.binaryMask(map(16, (r, c) => r === 3 && c === 4));
  assert.deepEqual(framing.traceBoundary(dot, [3, 4]), [[3, 4]]);
});

test("the lesion field, as the API words it", () => {
  const found = framing.frame(map(8, () => false), 10, 10);
  const messages = { no_lesion: "closer, please" };
  assert.deepEqual(segmentation.lesionJson(found, false, messages), {
    verdict: "no_lesion", found: 0, area_fraction: 0, box: null, outline: [],
    message: "closer, please", cropped: false,
  });
  assert.throws(() => segmentation.probabilityMap(new Array(10).fill(0), 4));
});

test("the crop copies the box's rows", () => {
  const rgb = Uint8Array.from({ length: 4 * 3 * 3 }, (_, i) => i);
  const cut = framing.crop({ rgb, width: 4, height: 3 }, { left: 1, top: 1, right: 3, bottom: 3 });
  assert.deepEqual([cut.width, cut.height], [2, 2]);
  assert.deepEqual([...cut.rgb], [15, 16, 17, 18, 19, 20, 27, 28, 29, 30, 31, 32]);
});

test("Python's round: exact ties go to the even neighbour", () => {
  assert.equal(pythonRound(0.25, 1), 0.2);
  assert.equal(pythonRound(0.75, 1), 0.8);
  assert.equal(pythonRound(2.5), 2);
  assert.equal(pythonRound(3.5), 4);
  assert.equal(pythonRound(-2.5), -2);
  assert.equal(pythonRound(1 / 128, 6), 0.007812); // toFixed says 0.007813
  assert.equal(pythonRound(2.675, 2), 2.67); // not a tie: 2.675 is 2.67499999...
  assert.equal(pythonRound(0.1 + 0.2, 6), 0.3);
});
