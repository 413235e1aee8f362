// colour.mjs on its own (npm test --prefix web); its bytes against contract/colour_constancy.py
// are compared in tests/demo_server/test_ondevice_contract.py.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as colour from "../../demo_server/static/colour.mjs";

const image = (pixels) => Uint8Array.from(pixels.flat());

test("a grey image is left alone, a black one too", () => {
  const grey = image(Array.from({ length: 50 }, (_, i) => [i * 5, i * 5, i * 5]));
  assert.deepEqual(colour.gains(grey), [65536, 65536, 65536]);
  assert.deepEqual(colour.shadesOfGrey(grey), grey);
  const black = new Uint8Array(30);
  assert.deepEqual(colour.shadesOfGrey(black), black);
});

test("a cast is taken out: the channels' 6-norms come out equal", () => {
  const cast = image(Array.from({ length: 400 }, (_, i) => [
    40 + (i % 200), 30 + ((i * 7) % 150), 20 + ((i * 13) % 90),
  ]));
  const out = colour.shadesOfGrey(cast);
  const norm = (rgb, c) => {
    let sum = 0;
    for (let i = c; i < rgb.length; i += 3) sum += rgb[i] ** 6;
    return (sum / (rgb.length / 3)) ** (1 / 6);
  };
  const norms = [0, 1, 2].map((c) => norm(out, c));
  assert.ok(Math.max(...norms) - Math.min(...norms) < 1.5, String(norms));
  assert.ok(norm(cast, 0) - norm(cast, 2) > 50);
});

test("the card's switch: absent is none, the known step by name, anything else refused", () => {
  assert.equal(colour.stepOf({}), null);
  assert.equal(colour.stepOf({ input: { height: 224 } }), null);
  assert.equal(colour.stepOf({ input: { colour_constancy: "shades_of_grey_p6" } }),
    colour.SHADES_OF_GREY_P6);
  assert.throws(() => colour.stepOf({ input: { colour_constancy: "grey_world" } }),
    colour.ColourConstancyError);
  const rgb = image([[10, 20, 30]]);
  assert.equal(colour.applyStep(rgb, null), rgb);
  assert.throws(() => colour.applyStep(rgb, "grey_world"), colour.ColourConstancyError);
});
