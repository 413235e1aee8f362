// The phone-app side. Two modes, and the page says which one answered:
// - on this device (the default where the browser can): the model runs in the page with
//   LiteRT.js (ondevice.mjs) and the photo never leaves the phone;
// - on the server (the fallback): downsize the photo, upload it, draw the API's answer.
// Both draw the same answer: bars, calibrated probabilities, answers, triage, unsure and
// not-a-lesion states.

import * as history from "./history.mjs";

const MAX_SIDE = 1024;
const JPEG_QUALITY = 0.9;
const VISIBLE_DROP = 0.02; // smaller occlusion drops than this are noise
const BENCH_RUNS = 50;
const EXPLAIN_NOTES = {
  found: "Red shows where covering the photo lowered the model's score for its top answer most.",
  none: "Covering any single part of the photo barely changed the answer: no region stands out.",
};
const CALIBRATION_NOTES = {
  photo_only: "Calibrated on the photo alone: no answer was used.",
  photo_and_answers: "Calibrated on the photo plus your answers",
};
const WHERE = {
  device: "The photo is checked on this device: it never leaves it.",
  server: "The photo is checked on the server and is not stored.",
};
const RETAKE_WORDS = {
  blurry: "too blurry", dark: "too dark", bright: "too bright", small: "move closer",
};
const MODE_USED = {
  device: "Checked on this device: the photo did not leave it.",
  server: "Checked on the server.",
};
let current = null; // the photo last checked (server mode: the downsized JPEG sent)
let original = null; // the photo as chosen, for on-device checks and a switch of mode
let mode = "server";
let device = null; // the on-device model (ondevice.mjs), once chosen
// Settles once the model has loaded or on-device mode failed; never waits for the service
// worker or the offline copies (issue 36: a check that waited on them could wait for ever).
let deviceStarting = null;
let config = { available: false, reason: "" };
let checkAnyway = false; // the person chose to see this photo's result despite a retake
// What the page last showed, for tests and the curious: window.skinSpotCheck.lastResult.
const state = (window.skinSpotCheck = { lastResult: null, mode: () => mode, device: () => device });

const $ = (id) => document.getElementById(id);

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
  if (!isError) $("use-server").hidden = true;
}

// Longest side at most MAX_SIDE, re-encoded as JPEG; the browser applies EXIF orientation.
// Formats the browser cannot decode (HEIC on most) go up unchanged: the server decodes them.
// (A smaller side and quality make the spot history's thumbnails.)
async function downsize(blob, maxSide = MAX_SIDE, quality = JPEG_QUALITY) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: "from-image" });
  } catch (err) {
    return blob;
  }
  const scale = Math.min(1, maxSide / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return new Promise((resolve) => {
    canvas.toBlob((out) => resolve(out || blob), "image/jpeg", quality);
  });
}

// The answered questions the chosen domain's model uses (blank = "don't know", not sent).
// Answers stay in the page and in the one request; nothing stores them.
function answerFields() {
  const fields = [];
  const box = $("answer-fields");
  if (!box) return fields;
  for (const input of box.querySelectorAll("[name]")) {
    const label = input.closest(".question");
    if (label && label.hidden) continue;
    if (!input.validity.valid) {
      throw new Error((label ? label.firstChild.textContent.trim() + ": " : "") +
        input.validationMessage);
    }
    if (input.value !== "") fields.push([input.name, input.value]);
  }
  return fields;
}

// What the request sends besides the photo: the kind of photo (it picks the triage threshold,
// and the answers' model), then the answers.
function requestFields() {
  return [["domain", $("domain").value], ...answerFields()];
}

// Show only the questions the chosen domain's model uses.
function showDomainQuestions() {
  const domain = $("domain").value;
  for (const label of document.querySelectorAll("#answer-fields .question")) {
    label.hidden = !label.dataset.domains.split(" ").includes(domain);
  }
}

// The model the page was opened with (?model=ID); the API answers with the same one.
const MODEL_QUERY = document.body.dataset.model
  ? "?model=" + encodeURIComponent(document.body.dataset.model)
  : "";

async function post(path, blob, fields) {
  path += MODEL_QUERY;
  const form = new FormData();
  form.append("image", blob, "photo.jpg");
  for (const [name, value] of fields || []) form.append(name, value);
  const response = await fetch(path, { method: "POST", body: form });
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    throw new Error("The server sent an unexpected answer (HTTP " + response.status + ").");
  }
  if (!response.ok) {
    throw new Error(body && body.error ? body.error.message : "HTTP " + response.status);
  }
  return body;
}

function percent(p) {
  return p >= 0.995 ? "99%+" : p < 0.005 ? "<1%" : Math.round(p * 100) + "%";
}

function milliseconds(x) {
  if (x === null || x === undefined) return "–";
  return x >= 1000 ? (x / 1000).toFixed(1) + " s" : (x >= 100 ? Math.round(x) : x.toFixed(1)) +
    " ms";
}

function renderScores(scores) {
  const list = $("scores");
  list.replaceChildren();
  for (const score of scores) {
    const item = document.createElement("li");
    const label = document.createElement("div");
    label.className = "score-label";
    const name = document.createElement("span");
    name.textContent = score.display_name;
    if (score.malignant) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = "(malignant type)";
      name.append(tag);
    }
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = percent(score.probability);
    label.append(name, pct);
    const bar = document.createElement("div");
    bar.className = score.malignant ? "bar malignant" : "bar";
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", score.display_name + ": " + percent(score.probability));
    const fill = document.createElement("span");
    fill.style.width = (score.probability * 100).toFixed(1) + "%";
    bar.append(fill);
    item.append(label, bar);
    list.append(item);
  }
}

// Where the advice changes, and whether this kind of photo has a threshold of its own.
function thresholdNote(triage) {
  if (triage.referred_by_photo) {
    return "(the photo alone is reason enough: your answers can add a reason, never remove one)";
  }
  const own = triage.threshold_domain ? ", the threshold for this kind of photo" : "";
  return `(a dermatologist is advised from ${percent(triage.threshold)}${own})`;
}

function renderCalibration(result) {
  const note = $("calibration-note");
  const source = result.calibration && result.calibration.source;
  note.hidden = !source;
  if (!source) return;
  let text = CALIBRATION_NOTES[source] || source;
  if (source === "photo_and_answers" && result.answers) {
    text += " (" + result.answers.answered + " of " + result.answers.questions + " answered).";
  }
  note.textContent = text;
}

function renderTiming(result) {
  const used = result.mode === "device" ? "device" : "server";
  $("mode-used").textContent = MODE_USED[used];
  $("mode-used").className = "mode-used " + used;
  const model = "Model " + result.model.name + " " + result.model.version;
  const t = result.timing_ms;
  if (used === "server") {
    $("timing").textContent = model + " · " + Math.round(t.total) + " ms on the server";
    return;
  }
  const lines = [];
  if (t.rescreened) {
    lines.push("Answers applied on this device; the model did not need to run again.");
  } else if (t.inference !== undefined) {
    lines.push(`Ran on this device in ${milliseconds(t.inference)} (${result.engine}).`);
  }
  if (!t.rescreened) {
    const gate = t.gate !== null && t.gate !== undefined
      ? `, lesion check ${milliseconds(t.gate)}` : "";
    const spot = t.segment !== undefined ? `, spot outline ${milliseconds(t.segment)}` : "";
    lines.push(`Whole check ${milliseconds(t.total)}: photo ${milliseconds(t.decode)}${gate}` +
      `${spot}.`);
  }
  lines.push(`First run ${milliseconds(t.first_run)}; steady state ` +
    (t.steady === null ? "after the next photo or the benchmark" : milliseconds(t.steady)) + ".");
  lines.push(`Models loaded in ${milliseconds(t.load)} (once; kept for offline use).`);
  $("timing").replaceChildren(...lines.flatMap((line, i) =>
    i ? [document.createElement("br"), line] : [line]));
  $("timing").prepend(model + " · ");
}

function showResult() {
  $("result").hidden = false;
  $("result").scrollIntoView({ behavior: "smooth", block: "start" });
}

// Where the segmenter (when the server loads one; on the device or on the server) found the
// spot: its outline over the photo, in the photo's own pixel coordinates, and its request for a
// closer photo of one spot if any.
function renderLesion(result) {
  const lesion = result.lesion;
  const outline = lesion && lesion.outline && lesion.outline.length >= 3 ? lesion.outline : null;
  $("outline").toggleAttribute("hidden", !outline); // an SVG element has no .hidden property
  if (outline) {
    $("outline").setAttribute("viewBox", `0 0 ${result.image.width} ${result.image.height}`);
    $("outline-shape").setAttribute("points", outline.map(([x, y]) => `${x},${y}`).join(" "));
  }
  $("lesion-note").hidden = !(lesion && lesion.message);
  $("lesion-message").textContent = (lesion && lesion.message) || "";
}

// The photo check asks for a retake (before any verdict, the gate's included): say why, and
// let the person check anyway.
function renderRetake(result) {
  renderLesion(result); // what the segmenter found, if it ran (a far spot's small outline)
  $("retake-messages").replaceChildren(...result.photo_check.messages.map((message) => {
    const item = document.createElement("li");
    item.textContent = message;
    return item;
  }));
  $("retake").hidden = false;
  $("not-lesion").hidden = true;
  $("diagnosis").hidden = true;
  $("save-check").hidden = true;
  renderTiming(result);
  showResult();
  setStatus("Retake suggested: " + result.photo_check.reasons.map((r) => RETAKE_WORDS[r] || r)
    .join(", ") + ".");
}

// The lesion gate turned the photo away: say so, and show no classes, percentages or triage.
function renderNotALesion(result) {
  renderLesion({});
  $("not-lesion-message").textContent = result.message;
  $("not-lesion").hidden = false;
  $("diagnosis").hidden = true;
  renderTiming(result);
  showResult();
  setStatus("Done — this does not look like a skin-lesion photo.");
}

function render(result) {
  state.lastResult = result;
  // How many answers the page has drawn (tests wait for the next one).
  $("result").dataset.count = String(Number($("result").dataset.count || 0) + 1);
  if (result.photo_check && result.photo_check.retake && !checkAnyway) {
    renderRetake(result);
    return;
  }
  $("retake").hidden = true;
  $("save-check").hidden = Boolean($("save-check").dataset.off);
  $("save-status").textContent = "";
  if (result.verdict === "not_a_lesion") {
    renderNotALesion(result);
    return;
  }
  $("not-lesion").hidden = true;
  $("diagnosis").hidden = false;
  renderLesion(result);
  const refer = result.triage.level === "see_dermatologist";
  $("triage").className = "card triage " + (refer ? "refer" : "watch");
  $("triage-message").textContent = result.triage.message;
  $("p-malignant").textContent = percent(result.p_malignant);
  $("threshold-note").textContent = thresholdNote(result.triage);
  $("unsure").hidden = !result.unsure;
  $("unsure-message").textContent = result.unsure_message || "";
  renderScores(result.scores);
  renderCalibration(result);
  renderTiming(result);
  showResult();
  setStatus(result.unsure ? "Done — the model is unsure." : "Done.");
}

async function check(blob) {
  setStatus("Preparing the photo…");
  $("result").hidden = true;
  $("heatmap").hidden = true;
  $("explain-note").hidden = true;
  $("explain").disabled = false;
  original = blob;
  current = null;
  checkAnyway = false;
  const photo = $("photo");
  if (photo.src.startsWith("blob:")) URL.revokeObjectURL(photo.src);
  photo.src = URL.createObjectURL(blob);
  try {
    await classify();
  } catch (err) {
    showError(err);
  }
}

function showError(err) {
  setStatus(err.message, true);
  // A photo this browser cannot decode: the server can, but only if the person says so.
  $("use-server").hidden = !(err.cannotDecode && config.available);
}

async function classify() {
  if (mode === "device") {
    if (!device) {
      setStatus("Loading the model into this browser…");
      await deviceStarting;
    }
    if (mode !== "device" || !device) {
      const error = new Error("On-device mode could not start in this browser.");
      error.cannotDecode = true; // offer the server, but only if the person says so
      throw error;
    }
    setStatus(device.timing.load_ms === null ? "Loading the model into this browser…"
      : "Checking on this device…");
    const fields = Object.fromEntries(requestFields());
    let result;
    try {
      result = await device.classify(original, fields);
    } catch (err) {
      if (err.name === "InvalidStateError" || err.name === "EncodingError") {
        const error = new Error("This browser cannot read this photo's format, so it cannot be " +
          "checked on this device. Check it on the server instead, or choose a JPEG or PNG.");
        error.cannotDecode = true;
        throw error;
      }
      throw err;
    }
    render(result);
    return;
  }
  if (!current) current = await downsize(original);
  setStatus("Checking…");
  render({ ...(await post("api/v1/classify", current, requestFields())), mode: "server" });
}

// A changed answer or kind of photo re-checks the photo already shown (the heatmap uses
// neither).
async function recheck() {
  if (!original || $("result").hidden) return;
  try {
    if (mode === "device" && device.lastRaw) {
      const result = device.rescreen(Object.fromEntries(requestFields()));
      render(result);
      return;
    }
    await classify();
  } catch (err) {
    showError(err);
  }
}

// Occlusion: grid x grid runs of the classifier with one cell covered; on the device (the
// photo stays here) or on the server, the same answer.
async function explain() {
  if (!original) return;
  $("explain").disabled = true;
  setStatus("Looking where the model looked…");
  try {
    let result;
    if (mode === "device") {
      const runs = config.explain.grid ** 2 + 1;
      setStatus(`Looking where the model looked: ${runs} runs on this device…`);
      result = await device.explain(config.explain);
      if (!result) throw new Error("Check a photo first.");
    } else {
      if (!current) current = await downsize(original);
      result = await post("api/v1/explain", current);
      if (result.verdict === "not_a_lesion") {
        renderNotALesion({ ...result, mode: "server" });
        return;
      }
    }
    state.lastExplanation = result;
    const found = result.max_drop >= VISIBLE_DROP;
    $("heatmap").src = result.heatmap_png;
    $("heatmap").hidden = !found;
    $("explain-note").textContent = (found ? EXPLAIN_NOTES.found : EXPLAIN_NOTES.none) +
      (mode === "device" ? ` (${result.timing_ms.runs} runs on this device, ` +
        `${milliseconds(result.timing_ms.total)}.)` : "");
    $("explain-note").hidden = false;
    setStatus("Done.");
  } catch (err) {
    $("explain").disabled = false;
    setStatus(err.message, true);
  }
}

async function trySample(button) {
  setStatus("Loading the sample…");
  try {
    const response = await fetch(button.dataset.src);
    if (!response.ok) throw new Error("The sample could not be loaded.");
    await check(await response.blob());
  } catch (err) {
    setStatus(err.message, true);
  }
}

// --- the mode: on this device or on the server -------------------------------------------

function showMode() {
  $("where").textContent = WHERE[mode];
  for (const radio of document.querySelectorAll("input[name=mode]")) {
    radio.checked = radio.value === mode;
  }
  $("bench").hidden = mode !== "device";
}

// The service worker serves the page, its scripts, the runtime and the models when offline.
// Resolves true once it is active (the next visit is then served by it), false without one:
// always settles, where navigator.serviceWorker.ready would wait for ever (registration
// refused, or the worker failed to install).
async function registerServiceWorker() {
  if (!("serviceWorker" in navigator) || !config.service_worker) return false;
  try {
    const registration = await navigator.serviceWorker.register(config.service_worker,
      { scope: "./" });
    const worker = registration &&
      (registration.active || registration.waiting || registration.installing);
    while (worker && worker.state !== "activated" && worker.state !== "redundant") {
      await new Promise((resolve) => worker.addEventListener("statechange", resolve,
        { once: true }));
    }
    return Boolean(worker) && worker.state === "activated";
  } catch (err) {
    console.warn("No service worker: the page will not work offline.", err);
    return false;
  }
}

async function startDevice() {
  $("device-status").textContent = "Loading the model into this browser (once)…";
  // ?engine=webgpu tries WebGPU; ?threads=1 keeps WebAssembly to one thread (benchmarks).
  const params = new URLSearchParams(location.search);
  const accelerator = params.get("engine") || "wasm";
  const maxThreads = Number(params.get("threads")) || 4;
  let ondevice;
  // The worker registers while the model loads; the page keeps what it loads in the worker's
  // cache itself (keepForOffline), so nothing waits for the worker to take control.
  const registering = registerServiceWorker();
  try {
    ondevice = await import("./ondevice.mjs");
    device = new ondevice.Device(config, { accelerator, maxThreads });
    await device.load();
  } catch (err) {
    console.error(err);
    device = null;
    setMode("server", `On-device mode could not start here (${err.message}); ` +
      "photos are checked on the server.");
    return;
  }
  announceReady(registering, ondevice.keepForOffline); // not awaited: see deviceStarting
}

// Once the worker is active (or known absent) and the files are kept for offline visits: the
// model is ready, and whether it works offline.
async function announceReady(registering, keepForOffline) {
  const offline = (await registering) && (await keepForOffline(config).catch(() => false));
  $("device-status").textContent = `Model ready in this browser (${device.engineName}), ` +
    `loaded in ${milliseconds(device.timing.load_ms)}` +
    (offline ? "; it also works offline now." : ".");
  $("bench-run").disabled = $("bench-file").disabled = false;
}

function setMode(wanted, note) {
  mode = wanted === "device" && config.available ? "device" : "server";
  showMode();
  $("mode-note").textContent = note || (config.available ? ""
    : `On-device mode is not available from this server: ${config.reason}.`);
  if (mode === "device" && !device && !deviceStarting) {
    deviceStarting = startDevice();
  }
}

function chooseMode(event) {
  try {
    localStorage.setItem("mode", event.target.value);
  } catch (err) {
    // private browsing: the choice lasts for this page only
  }
  setMode(event.target.value);
  if (original && !$("result").hidden) {
    check(original);
  }
}

function initialMode() {
  const asked = new URLSearchParams(location.search).get("mode");
  if (asked) return asked;
  try {
    return localStorage.getItem("mode") || "device";
  } catch (err) {
    return "device";
  }
}

// --- the spot history, kept on this phone (history.mjs: IndexedDB, never sent) -------------

function historyEntry(check) {
  const item = document.createElement("li");
  if (check.thumbnail) {
    const image = document.createElement("img");
    image.src = check.thumbnail;
    image.alt = `Photo of ${check.spot}, ${new Date(check.date).toLocaleDateString()}`;
    item.append(image);
  }
  const date = document.createElement("div");
  date.textContent = new Date(check.date).toLocaleString();
  const verdict = document.createElement("div");
  if (check.verdict === "classified") {
    verdict.className = check.triage === "see_dermatologist" ? "refer" : "watch";
    verdict.textContent = `${check.advice} (chance of a malignant type ` +
      `${percent(check.p_malignant)}; most like ${check.top})`;
  } else {
    verdict.textContent = check.advice || check.verdict;
  }
  const share = document.createElement("div");
  share.textContent = check.area_fraction === null ? "Spot's share of the photo: not measured"
    : `Spot's share of the photo: ${(100 * check.area_fraction).toFixed(1)}%`;
  item.append(date, verdict, share);
  if (check.retake.length) {
    const retake = document.createElement("div");
    retake.textContent = "Checked anyway: " + check.retake.map((r) => RETAKE_WORDS[r] || r)
      .join(", ");
    item.append(retake);
  }
  return item;
}

// Show the spots saved on this phone; `spot` (else the one checked last) is shown.
async function showHistory(spot) {
  let names;
  try {
    names = await history.spots();
  } catch (err) { // no IndexedDB here (some private modes): nothing can be saved
    $("history-empty").textContent = "This browser keeps no history here (" + err.message + ").";
    $("save-check").dataset.off = "1";
    return;
  }
  $("history-empty").hidden = names.length > 0;
  $("history-body").hidden = names.length === 0;
  $("history-delete-confirm").hidden = true;
  $("spot-names").replaceChildren(...names.map((name) => new Option(name)));
  const chosen = names.includes(spot) ? spot : names[0];
  $("history-spot").replaceChildren(...names.map((name) => new Option(name, name, false,
    name === chosen)));
  const checks = chosen ? await history.checksOf(chosen) : [];
  $("history-checks").replaceChildren(...checks.map(historyEntry));
  $("history").dataset.count = String(Number($("history").dataset.count || 0) + 1);
}

async function saveCheck(event) {
  event.preventDefault();
  const spot = $("spot-name").value.trim();
  if (!spot || !state.lastResult || !original) return;
  try {
    const small = await downsize(original, history.THUMB_SIDE, history.THUMB_QUALITY);
    const thumb = small.type === "image/jpeg" ? await history.dataUrl(small) : null;
    await history.save(spot, state.lastResult, thumb);
    $("save-status").textContent = `Saved on this phone under "${spot}".`;
    await showHistory(spot);
  } catch (err) {
    $("save-status").textContent = "Not saved: " + err.message;
  }
}

async function exportHistory() {
  const blob = new Blob([await history.exportJson()], { type: "application/json" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `skin-spot-history-${new Date().toISOString().slice(0, 10)}.json`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

async function deleteHistory() {
  await history.deleteAll();
  setStatus("Every saved check was deleted from this phone.");
  await showHistory();
}

// --- the on-device benchmark ---------------------------------------------------------------

// export.bench's figures for a model file (by its SHA-256), where the server knows them.
function nativeText(sha256) {
  const native = (config.native_benches || {})[sha256];
  if (!native) {
    return "No native figures for this file here: python -m export.bench FILE measures it " +
      "on a computer.";
  }
  const rows = native.rows.map((r) =>
    `${r.threads} thread${r.threads > 1 ? "s" : ""}: p50 ${r.p50_ms.toFixed(2)} ms, ` +
    `p90 ${r.p90_ms.toFixed(2)} ms`);
  return `Native LiteRT (XNNPACK) for ${native.model}, measured by export.bench on the ` +
    `project's machine (${native.machine}, ${native.runs} runs): ` + rows.join("; ") + ".";
}

function benchText(result) {
  const memory = result.memory;
  return `This device (${result.engine}): p50 ${result.p50_ms.toFixed(1)} ms, p90 ` +
    `${result.p90_ms.toFixed(1)} ms over ${result.runs} runs (after ${result.warmup} warm-up ` +
    `runs); loaded in ${milliseconds(result.load_ms)}; WebAssembly memory ` +
    `${memory.wasm_mb.toFixed(0)} MB (${memory.grown_mb.toFixed(0)} MB of it for ` +
    `${result.name ? "this file" : "the page's models"}).`;
}

// One benchmark at a time: both buttons wait for it. The figures go to
// window.skinSpotCheck[key] (null after an error), then the output's data-count goes up.
async function benchmarkWith(output, native, key, run) {
  $("bench-run").disabled = $("bench-file").disabled = true;
  try {
    const result = await run((i, n) => {
      $(output).textContent = `Running ${i} of ${n}…`;
    });
    state[key] = result;
    $(output).textContent = (result.name ? `${result.name} (${(result.size_bytes / 1e6)
      .toFixed(2)} MB, read on this device). ` : "") + benchText(result);
    $(native).textContent = nativeText(result.sha256);
  } catch (err) {
    state[key] = null;
    $(output).textContent = err.message;
    $(native).textContent = "";
  } finally {
    $("bench-run").disabled = $("bench-file").disabled = false;
    $(output).dataset.count = String(Number($(output).dataset.count || 0) + 1);
  }
}

function benchmark() {
  return benchmarkWith("bench-result", "bench-native", "lastBenchmark",
    (progress) => device.benchmark(BENCH_RUNS, 10, progress));
}

async function benchmarkPicked(event) {
  const file = event.target.files && event.target.files[0];
  event.target.value = "";
  if (!file) return;
  await benchmarkWith("bench-file-result", "bench-file-native", "lastPickedBenchmark",
    (progress) => device.benchmarkFile(file, BENCH_RUNS, 10, progress));
}

function start() {
  const data = $("ondevice-config");
  config = data ? JSON.parse(data.textContent) : config;
  for (const id of ["camera", "gallery"]) {
    $(id).addEventListener("change", (event) => {
      const file = event.target.files && event.target.files[0];
      if (file) check(file);
      event.target.value = "";
    });
  }
  for (const button of document.querySelectorAll(".sample")) {
    button.addEventListener("click", () => trySample(button));
  }
  $("explain").addEventListener("click", explain);
  $("domain").addEventListener("change", recheck);
  if ($("answer-fields")) {
    $("domain").addEventListener("change", showDomainQuestions);
    showDomainQuestions();
    $("answer-fields").addEventListener("change", recheck);
  }
  for (const radio of document.querySelectorAll("input[name=mode]")) {
    radio.addEventListener("change", chooseMode);
  }
  $("use-server").addEventListener("click", () => {
    setMode("server");
    check(original);
  });
  $("check-anyway").addEventListener("click", () => {
    checkAnyway = true;
    if (state.lastResult) render(state.lastResult);
  });
  $("save-check").addEventListener("submit", saveCheck);
  $("history-spot").addEventListener("change", (event) => showHistory(event.target.value));
  $("history-export").addEventListener("click", exportHistory);
  $("history-delete").addEventListener("click", () => {
    $("history-delete-confirm").hidden = false;
  });
  $("history-delete-confirm").addEventListener("click", deleteHistory);
  showHistory();
  $("bench-run").addEventListener("click", benchmark);
  $("bench-file").addEventListener("change", benchmarkPicked);
  $("bench-run").textContent = `Benchmark this device (${BENCH_RUNS} runs)`;
  $("mode").hidden = !config.available;
  $("bench-native").textContent = config.available ? nativeText(config.classifier.sha256) : "";
  setMode(initialMode());
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
