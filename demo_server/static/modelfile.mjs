// Reading what a .tflite says about itself, in the browser: the JavaScript twin of
// contract/model_file.py and of the tensor details contract/tensors.py reads from LiteRT.
//
// The export stage appends an uncompressed zip after the flatbuffer (labels.txt, labels_en.txt,
// model_card.json; lesion_gate.json for the gate). The tensors' dtype, shape and (scale, zero
// point) come from the flatbuffer itself, because the browser runtime does not report the
// quantization. Pure functions over a Uint8Array: no DOM, so Node runs the same code in tests.
import { stepOf } from "./colour.mjs";
import { pythonRound } from "./rounding.mjs";

export const LABELS_FILE = "labels.txt";
export const DISPLAY_NAMES_FILE = "labels_en.txt";
export const MODEL_CARD_FILE = "model_card.json";
export const GATE_FILE = "lesion_gate.json";
// contract.taxonomy: the malignant classes, for a card that does not list them.
export const DEFAULT_MALIGNANT = ["akiec", "bcc", "mel"];

// The TFLite schema's TensorType numbers (tensorflow/lite/schema/schema.fbs).
const TENSOR_TYPES = {
  0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
  7: "int16", 9: "int8",
};

export class ModelFileError extends Error {}

export function checkTflite(bytes) {
  const id = String.fromCharCode(...bytes.subarray(4, 8));
  if (bytes.length < 8 || id !== "TFL3") {
    throw new ModelFileError("not a TFLite model: the flatbuffer file identifier is not 'TFL3'");
  }
}

// --- the packed files (a zip after the flatbuffer) -----------------------------------------

async function inflateRaw(data) {
  const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// name -> bytes of every file packed after the flatbuffer; {} when there is no zip.
// Offsets are taken relative to where the central directory really is, as Python's zipfile
// does, so a zip whose offsets count from its own start or from the file's start both read.
export async function readAssociatedFiles(bytes) {
  checkTflite(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let end = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (view.getUint32(i, true) === 0x06054b50) {
      end = i;
      break;
    }
  }
  if (end < 0) return {};
  const count = view.getUint16(end + 10, true);
  const cdSize = view.getUint32(end + 12, true);
  const cdOffset = view.getUint32(end + 16, true);
  const shift = end - cdSize - cdOffset; // bytes before the zip's own offset 0
  if (shift < 0) throw new ModelFileError("the packed files cannot be read: bad zip directory");
  const files = {};
  let pos = cdOffset + shift;
  const decoder = new TextDecoder();
  for (let n = 0; n < count; n++) {
    if (view.getUint32(pos, true) !== 0x02014b50) {
      throw new ModelFileError("the packed files cannot be read: bad central directory entry");
    }
    const method = view.getUint16(pos + 10, true);
    const size = view.getUint32(pos + 20, true);
    const nameLength = view.getUint16(pos + 28, true);
    const extraLength = view.getUint16(pos + 30, true);
    const commentLength = view.getUint16(pos + 32, true);
    const local = view.getUint32(pos + 42, true) + shift;
    const name = decoder.decode(bytes.subarray(pos + 46, pos + 46 + nameLength));
    if (view.getUint32(local, true) !== 0x04034b50) {
      throw new ModelFileError(`the packed files cannot be read: bad local header of ${name}`);
    }
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const data = bytes.subarray(start, start + size);
    if (method === 0) files[name] = data;
    else if (method === 8) files[name] = await inflateRaw(data);
    else throw new ModelFileError(`the packed file ${name} uses compression method ${method}`);
    pos += 46 + nameLength + extraLength + commentLength;
  }
  return files;
}

function lines(data) {
  return new TextDecoder().decode(data).split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
}

// A packed JSON file that must be an object (ModelFileError otherwise).
export function jsonFile(files, name) {
  if (!(name in files)) throw new ModelFileError(`the model's packed files lack ${name}`);
  let value;
  try {
    value = JSON.parse(new TextDecoder().decode(files[name]));
  } catch (err) {
    throw new ModelFileError(`${name} is not valid JSON: ${err.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ModelFileError(`${name} is not a JSON object`);
  }
  return value;
}

// What a classifier file says about itself, as contract.model_file.read_metadata reads it
// (name, version, labels, display names, malignant labels, card). The formulas' numbers
// (temperature, threshold, answers) are read from the card by screening.mjs.
export async function readClassifier(bytes) {
  const files = await readAssociatedFiles(bytes);
  if (!Object.keys(files).length) {
    throw new ModelFileError("the model has no associated files (labels.txt is missing)");
  }
  if (!(LABELS_FILE in files)) {
    throw new ModelFileError("the model's associated files lack labels.txt");
  }
  const labels = lines(files[LABELS_FILE]);
  const card = MODEL_CARD_FILE in files ? jsonFile(files, MODEL_CARD_FILE) : {};
  const displayNames = DISPLAY_NAMES_FILE in files
    ? lines(files[DISPLAY_NAMES_FILE])
    : (card.display_names || labels).map(String);
  const tensors = tensorSpecs(bytes);
  const input = tensors.inputs[0];
  const output = tensors.outputs[0];
  if (input.shape.length !== 4 || input.shape[3] !== 3) {
    throw new ModelFileError(`expected an input of shape 1xHxWx3, got [${input.shape}]`);
  }
  if (output.shape[output.shape.length - 1] !== labels.length ||
      displayNames.length !== labels.length) {
    throw new ModelFileError(
      `${labels.length} labels and ${displayNames.length} display names for ` +
      `${output.shape[output.shape.length - 1]} model outputs`);
  }
  let colourConstancy;
  try {
    colourConstancy = stepOf(card);
  } catch (err) {
    throw new ModelFileError(`model_card.json: ${err.message}`);
  }
  return {
    name: String(card.name ?? "model"),
    version: String(card.version ?? "unknown"),
    labels,
    displayNames,
    malignantLabels: (card.malignant_labels || DEFAULT_MALIGNANT).map(String),
    card,
    input,
    output,
    colourConstancy, // colour.mjs: a step on the input pixels, or null
  };
}

// The gate's lesion_gate.json: its threshold and square input size (contract.read_gate_info).
export async function readGate(bytes) {
  let info;
  try {
    info = jsonFile(await readAssociatedFiles(bytes), GATE_FILE);
  } catch (err) {
    throw new ModelFileError(`the gate has no usable ${GATE_FILE}: ${err.message}`);
  }
  const threshold = Number(info.threshold);
  const imageSize = Number(info.image_size);
  if (!Number.isFinite(threshold) || !Number.isInteger(imageSize)) {
    throw new ModelFileError(`the gate has no usable ${GATE_FILE}: threshold or image_size`);
  }
  const tensors = tensorSpecs(bytes);
  return { threshold, imageSize, input: tensors.inputs[0], output: tensors.outputs[0] };
}

// --- the flatbuffer: tensor details of the first subgraph ----------------------------------

class FlatBuffer {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  root() {
    return this.view.getUint32(0, true);
  }
  // Absolute position of a table's field, or 0 when the field is absent.
  field(table, id) {
    const vtable = table - this.view.getInt32(table, true);
    const size = this.view.getUint16(vtable, true);
    const slot = 4 + 2 * id;
    const offset = slot < size ? this.view.getUint16(vtable + slot, true) : 0;
    return offset ? table + offset : 0;
  }
  indirect(pos) {
    return pos + this.view.getUint32(pos, true);
  }
  // [start, length] of the vector in a table's field ([0, 0] when absent).
  vector(table, id) {
    const pos = this.field(table, id);
    if (!pos) return [0, 0];
    const vec = this.indirect(pos);
    return [vec + 4, this.view.getUint32(vec, true)];
  }
  tables(table, id) {
    const [start, length] = this.vector(table, id);
    return Array.from({ length }, (_, i) => this.indirect(start + 4 * i));
  }
  int32s(table, id) {
    const [start, length] = this.vector(table, id);
    return Array.from({ length }, (_, i) => this.view.getInt32(start + 4 * i, true));
  }
}

function tensorSpec(fb, tensor) {
  const typePos = fb.field(tensor, 1);
  const type = typePos ? fb.view.getInt8(typePos) : 0;
  let scale = 0;
  let zeroPoint = 0;
  const quant = fb.field(tensor, 4);
  if (quant) {
    const table = fb.indirect(quant);
    const [scales, nScales] = fb.vector(table, 2);
    const [zeros, nZeros] = fb.vector(table, 3);
    if (nScales) scale = fb.view.getFloat32(scales, true);
    if (nZeros) zeroPoint = Number(fb.view.getBigInt64(zeros, true));
  }
  const [sigStart, sigLength] = fb.vector(tensor, 7);
  return {
    shape: fb.int32s(tensor, 0),
    dtype: TENSOR_TYPES[type] || `type ${type}`,
    scale,
    zeroPoint,
    // Where the shape signature's ints are in the file (a -1 marks a dynamic dimension).
    signature: { start: sigStart, values: fb.int32s(tensor, 7), length: sigLength },
  };
}

// {inputs, outputs}: shape, dtype, scale and zero point of the first subgraph's tensors, the
// same numbers LiteRT's get_input_details() / get_output_details() give contract.tensors.
export function tensorSpecs(bytes) {
  checkTflite(bytes);
  const fb = new FlatBuffer(bytes);
  const subgraph = fb.tables(fb.root(), 2)[0];
  if (subgraph === undefined) throw new ModelFileError("the model has no subgraph");
  const tensors = fb.tables(subgraph, 0);
  const spec = (index) => tensorSpec(fb, tensors[index]);
  return { inputs: fb.int32s(subgraph, 1).map(spec), outputs: fb.int32s(subgraph, 2).map(spec) };
}

// A copy of the model whose inputs' dynamic dimensions (-1 in the shape signature) are pinned
// to the static shape (batch 1): LiteRT.js refuses a tensor for a [-1, H, W, 3] input. Only
// those few ints change; weights and operators are the same bytes.
export function pinDynamicInputs(bytes) {
  const copy = new Uint8Array(bytes);
  const view = new DataView(copy.buffer);
  for (const input of tensorSpecs(bytes).inputs) {
    input.signature.values.forEach((value, i) => {
      if (value < 0) view.setInt32(input.signature.start + 4 * i, input.shape[i], true);
    });
  }
  return copy;
}

// --- contract.tensors: quantize the input, dequantize the output ---------------------------

const INT_RANGES = { uint8: [0, 255], int8: [-128, 127], int32: [-(2 ** 31), 2 ** 31 - 1] };

// The quantized value of each pixel value 0-255 (contract.tensors._input_table).
export function inputTable(spec) {
  let { scale, zeroPoint } = spec;
  if (scale === 0) [scale, zeroPoint] = [1, spec.dtype === "int8" ? -128 : 0];
  const [lo, hi] = INT_RANGES[spec.dtype];
  return Array.from({ length: 256 }, (_, v) =>
    Math.min(hi, Math.max(lo, pythonRound(v / scale + zeroPoint))));
}

// Raw 0-255 RGB pixels to the input tensor's values (a typed array of the tensor's dtype).
export function quantizeInput(pixels, spec) {
  if (spec.dtype === "float32") return Float32Array.from(pixels);
  const Out = { uint8: Uint8Array, int8: Int8Array, int32: Int32Array }[spec.dtype];
  if (!Out) throw new ModelFileError(`unsupported input dtype ${spec.dtype}`);
  const table = inputTable(spec);
  const out = new Out(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = table[pixels[i]];
  return out;
}

// Output tensor values to floats (integer softmax outputs without parameters step in 1/256).
export function dequantizeOutput(values, spec) {
  if (spec.dtype === "float32" || spec.dtype === "float16") return Array.from(values, Number);
  let { scale, zeroPoint } = spec;
  if (scale === 0) [scale, zeroPoint] = [1 / 256, spec.dtype === "int8" ? -128 : 0];
  return Array.from(values, (v) => (v - zeroPoint) * scale);
}
