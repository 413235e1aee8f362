// On-device mode: the shipped .tflite files run in this browser with LiteRT.js (WebAssembly
// with XNNPACK, or WebGPU), and the page gets the same answer the server's API gives.
//
// The same steps as POST /api/v1/classify, in the same order: decode the photo upright
// (pixels.mjs), the "not a skin-lesion photo" gate on its 128 px input, the lesion segmenter
// on its input (where the spot is: framing.mjs, segmentation.mjs), the classifier on the input
// its card states (the crop around the spot when the segmenter file says so), then the card's
// calibration, answers and triage (screening.mjs). The photo never leaves the page: nothing
// here sends a request but GETs of the runtime and the models.
import { applyStep } from "./colour.mjs";
import { crop, frame, ONE } from "./framing.mjs";
import * as modelfile from "./modelfile.mjs";
import * as photocheck from "./photocheck.mjs";
import { decodeToRgb, resizeBilinear } from "./pixels.mjs";
import * as screening from "./screening.mjs";
import { pythonRound } from "./rounding.mjs";
import { lesionJson, probabilityMap, readSegmenter } from "./segmentation.mjs";

export const ENGINE_NAMES = {
  wasm: "WebAssembly",
  webgpu: "WebGPU",
  "webgpu+wasm": "WebGPU and WebAssembly",
};
const TENSOR_DTYPES = new Set(["uint8", "float32", "int32"]); // what LiteRT.js can feed
const STEADY_RUNS = 10; // steady state: the median of the last runs after the first
const MODEL_KINDS = ["classifier", "lesion_gate", "lesion_segmenter"]; // config entries
const TYPED_ARRAYS = { uint8: Uint8Array, float32: Float32Array, int32: Int32Array };
export const MAX_PICKED_BYTES = 512 * 2 ** 20; // a larger picked file is refused unread
const BENCH_BUDGET_MS = 60_000; // a benchmark stops counting runs after this long...
const MIN_RUNS = 5; // ...once it has this many
const MB = 2 ** 20;
// LiteRT.js 2.5.3 hangs the page when it frees a model compiled with threads while other
// threaded models live (its thread pool joins on the main thread), so with threads the page
// keeps each picked model (the same file picked again reuses it), at most this many a visit.
const MAX_KEPT_PICKED = 3;

const now = () => performance.now();
const ms = (x) => Math.round(x * 100) / 100;

function nativeLog(text) {
  if (/^(INFO|VERBOSE)\b/.test(text)) console.info(text);
  else if (/^WARNING\b/.test(text)) console.warn(text);
  else console.error(text);
}

// numpy's percentile (linear), as export.bench reports p50 / p90.
export function percentile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q / 100;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function engineLabel(engine, threads) {
  const name = ENGINE_NAMES[engine] || engine;
  return engine === "wasm" && threads > 1 ? `${name}, ${threads} threads` : name;
}

async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

// p50 / p90 of `runOnce()` (it returns the ms it took) like export.bench: `runs` runs after
// `warmup` that are not counted; a slow model stops after BENCH_BUDGET_MS of counted runs
// (MIN_RUNS at least), and `runs` says how many were counted.
async function timeRuns(runOnce, runs, warmup, onProgress) {
  const times = [];
  let spent = 0;
  for (let i = 0; i < warmup + runs; i++) {
    const took = await runOnce();
    if (i >= warmup) {
      times.push(took);
      spent += took;
      if (spent > BENCH_BUDGET_MS && times.length >= MIN_RUNS) break;
    }
    onProgress(i + 1, warmup + runs);
  }
  return {
    runs: times.length,
    warmup,
    p50_ms: ms(percentile(times, 50)),
    p90_ms: ms(percentile(times, 90)),
    mean_ms: ms(times.reduce((a, b) => a + b, 0) / times.length),
    min_ms: ms(Math.min(...times)),
  };
}

// The bytes at a URL, kept in the page's cache (the service worker reads the same cache when
// offline); a plain fetch where the Cache API is missing (pages not served over https or
// localhost).
async function cachedBytes(cacheName, url) {
  let response = null;
  let cache = null;
  if (self.caches) {
    cache = await caches.open(cacheName);
    response = await cache.match(url);
  }
  if (!response) {
    response = await fetch(url);
    if (!response.ok) throw new Error(`Could not load ${url} (HTTP ${response.status}).`);
    if (cache) {
      const copy = response.clone();
      cache.put(url, copy).catch((err) => console.warn(`Not kept for offline use: ${url}`, err));
    }
  }
  return new Uint8Array(await response.arrayBuffer());
}

// Keep the page, its modules, the samples and the runtime's WebAssembly for offline visits.
export async function keepForOffline(config) {
  if (!self.caches) return false;
  const cache = await caches.open(config.cache);
  const fetched = performance.getEntriesByType("resource")
    .map((entry) => entry.name)
    .filter((name) => new URL(name).pathname.startsWith(config.runtime.wasm));
  const models = MODEL_KINDS.map((kind) => config[kind] && config[kind].url).filter(Boolean);
  const urls = [...new Set([...config.shell, ...fetched, ...models])];
  const missing = [];
  for (const url of urls) {
    if (!(await cache.match(url))) missing.push(url);
  }
  await Promise.all(missing.map((url) => cache.add(url).catch(() => null)));
  // Models of another version are no longer needed.
  const current = new Set(models);
  for (const request of await cache.keys()) {
    const path = new URL(request.url).pathname;
    if (path.includes("/ondevice/models/") && !current.has(path)) await cache.delete(request);
  }
  return true;
}

// demo_server/explain.py's heatmap_png, drawn here: the positive drops scaled to the largest,
// as alpha up to max_alpha, stretched to size x size by Pillow's bilinear (pixels.mjs).
export function heatmapDataUrl(drops, { size, rgb, max_alpha: maxAlpha }) {
  const grid = Math.round(Math.sqrt(drops.length));
  const positive = drops.map((d) => Math.max(d, 0));
  const peak = Math.max(...positive);
  const alpha = new Uint8Array(drops.length * 3);
  positive.forEach((v, i) => alpha.fill(pythonRound((peak > 0 ? v / peak : v) * maxAlpha),
    3 * i, 3 * i + 3));
  const stretched = resizeBilinear(alpha, grid, grid, size, size);
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const context = canvas.getContext("2d");
  const image = context.createImageData(size, size);
  for (let i = 0; i < size * size; i++) image.data.set([...rgb, stretched[3 * i]], 4 * i);
  context.putImageData(image, 0, 0);
  return canvas.toDataURL("image/png");
}

export class Device {
  // accelerator: "wasm" or "webgpu" (WebAssembly is used when WebGPU cannot run the model);
  // maxThreads: at most this many WebAssembly threads (default 4; 1 = the single-threaded build).
  constructor(config, { accelerator = "wasm", maxThreads = 4 } = {}) {
    this.config = config;
    this.wanted = accelerator;
    this.maxThreads = maxThreads;
    this.engine = null; // "wasm" or "webgpu", once loaded
    this.threads = 1;
    this.timing = { runtime_ms: null, models_ms: null, load_ms: null, first_run_ms: null };
    this.runtimeHeap = 0; // WebAssembly memory once the runtime is loaded, before any model
    this.classifierRuns = []; // every classifier invoke, ms
    this.lastInput = null;
    this.lastRaw = null;
    this.lastPhoto = null; // the decoded photo last classified, for "Where did it look?"
    this.loading = null;
    this.picked = new Map(); // SHA-256 -> loadPicked's answer, for the picked files kept
  }

  load() {
    if (!this.loading) this.loading = this.loadOnce();
    return this.loading;
  }

  async loadOnce() {
    const start = now();
    // The models download while the runtime's WebAssembly compiles.
    const cache = this.config.cache;
    const downloads = MODEL_KINDS.map((kind) => {
      const entry = this.config[kind];
      if (!entry) return Promise.resolve(null);
      const bytes = cachedBytes(cache, entry.url);
      bytes.catch(() => null); // reported when awaited below
      return bytes;
    });
    const core = await import(this.config.runtime.module);
    this.core = core;
    const threads = this.maxThreads > 1 && self.crossOriginIsolated &&
      navigator.hardwareConcurrency > 1 &&
      await core.supportsFeature("relaxedSimd") && await core.supportsFeature("threads");
    // The runtime's native log lines all go to console.error; keep only errors there.
    self.Module = { printErr: nativeLog };
    await core.loadLiteRt(this.config.runtime.wasm, threads ? { threads: true } : {});
    this.threads = threads ? Math.min(this.maxThreads, navigator.hardwareConcurrency) : 1;
    this.timing.runtime_ms = ms(now() - start);
    this.runtimeHeap = this.heapBytes();

    const modelsStart = now();
    const bytes = await downloads[0];
    this.meta = await modelfile.readClassifier(bytes);
    this.spec = screening.screeningSpec(this.meta);
    for (const t of [this.meta.input, this.meta.output]) {
      if (!TENSOR_DTYPES.has(t.dtype)) {
        throw new Error(`This browser runtime cannot feed a ${t.dtype} tensor.`);
      }
    }
    this.classifier = await this.compile(modelfile.pinDynamicInputs(bytes));
    if (this.config.lesion_gate) {
      const gateBytes = await downloads[1];
      this.gate = await modelfile.readGate(gateBytes);
      this.gateModel = await this.compile(modelfile.pinDynamicInputs(gateBytes), true);
    }
    if (this.config.lesion_segmenter) {
      const segmenterBytes = await downloads[2];
      this.segmenter = await readSegmenter(segmenterBytes);
      this.segmenterModel = await this.compile(modelfile.pinDynamicInputs(segmenterBytes), true);
    }
    this.timing.models_ms = ms(now() - modelsStart);
    this.timing.load_ms = ms(now() - start);
    return this;
  }

  // Only the classifier may try WebGPU (and names the engine); the gate and the segmenter
  // (`helper`) run on WebAssembly.
  async compile(bytes, helper = false) {
    const { model, engine } = await this.compileOn(bytes, helper ? "wasm" : this.wanted);
    if (!helper) this.engine = engine;
    return model;
  }

  // The compiled model and the engine that runs it: WebGPU when wanted and it compiles.
  async compileOn(bytes, wanted) {
    if (wanted === "webgpu" && this.core.isWebGPUSupported()) {
      try {
        const model = await this.core.loadAndCompile(bytes, { accelerator: "webgpu" });
        // Operators WebGPU cannot run fall back to WebAssembly: say so.
        return { model, engine: model.isFullyAccelerated === false ? "webgpu+wasm" : "webgpu" };
      } catch (err) {
        console.warn("WebGPU could not compile the model; using WebAssembly.", err);
      }
    }
    const options = { accelerator: "wasm", cpuOptions: { numThreads: this.threads } };
    return { model: await this.core.loadAndCompile(bytes, options), engine: "wasm" };
  }

  get engineName() {
    return engineLabel(this.engine, this.threads);
  }

  // The runtime's WebAssembly memory now (it grows, never shrinks: a high-water mark).
  heapBytes() {
    return this.core.getGlobalLiteRt().liteRtWasm.HEAPU8.buffer.byteLength;
  }

  // WebAssembly memory in MB, and what it grew by since `since` (bytes).
  memory(since) {
    const heap = this.heapBytes();
    return { wasm_mb: ms(heap / MB), grown_mb: ms((heap - since) / MB) };
  }

  // One invoke: uint8 pixels in, dequantized outputs and the time it took out.
  async invoke(model, input, output, pixels) {
    const tensor = new this.core.Tensor(modelfile.quantizeInput(pixels, input), input.shape);
    const start = now();
    let outputs;
    try {
      outputs = await model.run(tensor);
      const values = await outputs[0].data();
      return { values: modelfile.dequantizeOutput(values, output), ms: now() - start };
    } finally {
      tensor.delete();
      for (const t of outputs || []) t.delete();
    }
  }

  // The first invoke pays one-time costs (allocation, WebAssembly tier-up): "first run" is
  // that one, "steady state" the runs after it.
  async runClassifier(pixels) {
    const { input, output } = this.meta;
    const result = await this.invoke(this.classifier, input, output, pixels);
    this.classifierRuns.push(ms(result.ms));
    if (this.timing.first_run_ms === null) this.timing.first_run_ms = this.classifierRuns[0];
    return result;
  }

  // The median of the last runs after the first (null before a second run).
  steadyMs() {
    const later = this.classifierRuns.slice(1).slice(-STEADY_RUNS);
    return later.length ? ms(percentile(later, 50)) : null;
  }

  async checkGate(photo) {
    if (!this.gateModel) return null;
    const size = this.gate.imageSize;
    const pixels = resizeBilinear(photo.rgb, photo.width, photo.height, size, size);
    const result = await this.invoke(this.gateModel, this.gate.input, this.gate.output, pixels);
    const distance = result.values[0];
    return {
      json: {
        is_lesion: distance <= this.gate.threshold,
        distance: Number(distance.toFixed(3)),
        threshold: this.gate.threshold,
      },
      ms: result.ms,
    };
  }

  // Where the spot is (contract.framing's verdict, outline, box and crop, in the photo's own
  // pixels), from the segmenter on the whole photo stretched to its input; null without one.
  async segment(photo) {
    if (!this.segmenterModel) return null;
    const start = now(); // resize, run and framing, as the server's timing_ms.segment
    const { imageSize, input, output, rule } = this.segmenter;
    const pixels = resizeBilinear(photo.rgb, photo.width, photo.height, imageSize, imageSize);
    const result = await this.invoke(this.segmenterModel, input, output, pixels);
    const map = probabilityMap(result.values, imageSize);
    return { framing: frame(map, photo.width, photo.height, rule), ms: now() - start };
  }

  // The answer for a photo (Blob) with the person's answers ({name: value}), shaped like the
  // API's; throws when the browser cannot decode the photo.
  async classify(blob, form) {
    await this.load();
    const start = now();
    const effect = this.answerEffect(form); // before decoding: a bad answer is cheap to refuse
    const domain = screening.requestDomain(this.spec, form || {});
    const photo = await decodeToRgb(blob);
    this.lastPhoto = photo;
    const decodeMs = now() - start;
    // The photo check is measured before the gate (contract.photo_check; the page shows a
    // retake first), the spot's size added once the segmenter has run.
    const measureStart = now();
    const measures = photocheck.measure(photo);
    const measureMs = ms(now() - measureStart);
    const photoCheck = (area) => photocheck.check(measures, area, this.config.photo_check,
      this.config.messages.photo_check);
    const check = await this.checkGate(photo);
    const base = {
      mode: "device",
      engine: this.engineName,
      lesion_check: check ? check.json : null,
      model: { name: this.meta.name, version: this.meta.version },
      image: { width: photo.width, height: photo.height, strips: photo.strips },
      disclaimer: this.config.messages.disclaimer,
    };
    if (check && !check.json.is_lesion) {
      this.lastRaw = null;
      return {
        ...base,
        verdict: "not_a_lesion",
        message: this.config.messages.not_a_lesion,
        photo_check: photoCheck(null),
        timing_ms: { decode: ms(decodeMs), photo_check: measureMs, gate: ms(check.ms),
          total: ms(now() - start) },
      };
    }
    const located = await this.segment(photo);
    // The classifier sees the crop around the one spot when the segmenter file says so.
    const cropped = Boolean(located && this.segmenter.cropBeforeClassifying &&
      located.framing.crop);
    const seen = cropped ? crop(photo, located.framing.crop) : photo;
    const [height, width] = [this.meta.input.shape[1], this.meta.input.shape[2]];
    this.lastInput = applyStep(resizeBilinear(seen.rgb, seen.width, seen.height, width, height),
      this.meta.colourConstancy);
    const run = await this.runClassifier(this.lastInput);
    this.lastRaw = run.values;
    const area = located && located.framing.verdict === ONE ? located.framing.areaFraction : null;
    this.lastBase = { ...base, photo_check: photoCheck(area) };
    if (located) {
      this.lastBase.lesion = lesionJson(located.framing, cropped, this.config.messages.lesion);
    }
    return {
      ...this.lastBase,
      verdict: "classified",
      ...screening.screen(this.spec, run.values, this.config.unsure_below, this.config.messages,
        effect, domain),
      timing_ms: {
        decode: ms(decodeMs),
        photo_check: measureMs,
        gate: check ? ms(check.ms) : null,
        inference: ms(run.ms),
        ...(located ? { segment: ms(located.ms) } : {}),
        total: ms(now() - start),
        first_run: this.timing.first_run_ms,
        steady: this.steadyMs(),
        load: this.timing.load_ms,
      },
    };
  }

  // "Where did it look?" as POST /api/v1/explain answers it (demo_server/explain.py), from
  // the last photo: the whole photo at the classifier's input (no crop), then grid x grid
  // runs, each with one cell painted grey; the drop of the top class's raw probability per
  // cell, and the same heatmap.
  async explain(settings) {
    const found = await this.occlusion(settings);
    if (!found) return null;
    const flat = found.grid.flat();
    return {
      verdict: "classified",
      method: "occlusion",
      target: {
        code: this.meta.labels[found.target],
        display_name: this.meta.displayNames[found.target],
        probability: found.base_probability,
      },
      grid_size: settings.grid,
      grid: found.grid,
      max_drop: Math.max(...flat),
      heatmap_png: heatmapDataUrl(flat, settings),
      timing_ms: { total: found.ms, runs: settings.grid ** 2 + 1 },
    };
  }

  async occlusion({ grid, grey }) {
    if (!this.lastPhoto) return null;
    const start = now();
    const { input, output } = this.meta;
    const [height, width] = [input.shape[1], input.shape[2]];
    const photo = this.lastPhoto;
    const pixels = applyStep(resizeBilinear(photo.rgb, photo.width, photo.height, width, height),
      this.meta.colourConstancy);
    const base = (await this.invoke(this.classifier, input, output, pixels)).values;
    const target = base.indexOf(Math.max(...base));
    const edges = (size) => Array.from({ length: grid + 1 }, (_, i) =>
      (i === grid ? size : pythonRound(i * (size / grid)))); // numpy's linspace, rounded
    const [rows, cols] = [edges(height), edges(width)];
    const drops = [];
    for (let r = 0; r < grid; r++) {
      const row = [];
      for (let c = 0; c < grid; c++) {
        const covered = new Uint8Array(pixels);
        for (let y = rows[r]; y < rows[r + 1]; y++) {
          covered.fill(grey, (y * width + cols[c]) * 3, (y * width + cols[c + 1]) * 3);
        }
        const run = await this.invoke(this.classifier, input, output, covered);
        row.push(base[target] - run.values[target]);
      }
      drops.push(row);
    }
    return { target, base_probability: base[target], grid: drops, ms: ms(now() - start) };
  }

  answerEffect(form) {
    return screening.answersFor(this.spec.answers, form);
  }

  // New answers for the photo already checked: only the formulas run again, not the model.
  rescreen(form) {
    if (!this.lastRaw) return null;
    const effect = this.answerEffect(form);
    const domain = screening.requestDomain(this.spec, form || {});
    return {
      ...this.lastBase,
      verdict: "classified",
      ...screening.screen(this.spec, this.lastRaw, this.config.unsure_below, this.config.messages,
        effect, domain),
      timing_ms: { inference: 0, total: 0, first_run: this.timing.first_run_ms,
        steady: this.steadyMs(), load: this.timing.load_ms, rescreened: true },
    };
  }

  // Run the classifier `runs` times on the last photo's input (grey before any photo), after
  // `warmup` runs that are not counted: p50 / p90 like export.bench, the models' loading time
  // and the memory they took (the gate and segmenter included).
  async benchmark(runs = 50, warmup = 10, onProgress = () => {}) {
    await this.load();
    const shape = this.meta.input.shape;
    const pixels = this.lastInput || new Uint8Array(shape[1] * shape[2] * 3).fill(128);
    const runOnce = async () => (await this.runClassifier(pixels)).ms;
    return {
      ...(await timeRuns(runOnce, runs, warmup, onProgress)),
      engine: this.engineName,
      load_ms: this.timing.load_ms,
      memory: this.memory(this.runtimeHeap),
      sha256: this.config.classifier.sha256,
    };
  }

  // The same figures for a .tflite picked on this phone (a File: read here, sent nowhere), run
  // by the same runtime and engine on constant inputs (mid-grey for uint8, zeros otherwise).
  async benchmarkFile(file, runs = 50, warmup = 10, onProgress = () => {}) {
    if (file.size > MAX_PICKED_BYTES) {
      throw new modelfile.ModelFileError(`${file.name} is over ${MAX_PICKED_BYTES / MB} MB.`);
    }
    await this.load();
    const bytes = new Uint8Array(await file.arrayBuffer());
    const sha256 = await sha256Hex(bytes);
    const loaded = this.picked.get(sha256) || await this.loadPicked(bytes);
    const model = loaded.model;
    try {
      const details = model.getInputDetails();
      const values = details.map(({ dtype, shape }) =>
        new TYPED_ARRAYS[dtype](shape.reduce((a, b) => a * b, 1)).fill(dtype === "uint8" ? 128 : 0));
      const runOnce = async () => {
        const tensors = details.map((d, i) => new this.core.Tensor(values[i], Array.from(d.shape)));
        const t0 = now();
        let outputs;
        try {
          outputs = await model.run(tensors);
          for (const output of outputs) await output.data();
          return now() - t0;
        } finally {
          for (const t of [...tensors, ...(outputs || [])]) t.delete();
        }
      };
      return {
        ...(await timeRuns(runOnce, runs, warmup, onProgress)),
        engine: engineLabel(loaded.engine, this.threads),
        load_ms: loaded.loadMs,
        memory: this.memory(loaded.heapBefore),
        sha256,
        name: file.name,
        size_bytes: bytes.length,
      };
    } finally {
      if (this.threads > 1) this.picked.set(sha256, loaded);
      else model.delete();
    }
  }

  // Compile a picked file: the model, its engine, its loading time and the WebAssembly memory
  // before it (what the memory grew by after its runs is what it took).
  async loadPicked(bytes) {
    const { inputs } = modelfile.tensorSpecs(bytes); // throws for a file that is no .tflite
    const unfed = inputs.find((t) => !TENSOR_DTYPES.has(t.dtype));
    if (unfed) {
      throw new modelfile.ModelFileError(`This browser runtime cannot feed its ${unfed.dtype} ` +
        "input (LiteRT.js takes uint8, int32 and float32 tensors).");
    }
    if (this.threads > 1 && this.picked.size >= MAX_KEPT_PICKED) {
      throw new modelfile.ModelFileError(`This page keeps the ${MAX_KEPT_PICKED} models ` +
        "benchmarked so far (with threads they cannot be freed safely): reload the page to " +
        "benchmark another file.");
    }
    const heap = this.heapBytes();
    const start = now();
    const { model, engine } = await this.compileOn(modelfile.pinDynamicInputs(bytes), this.wanted);
    return { model, engine, loadMs: ms(now() - start), heapBefore: heap };
  }
}
